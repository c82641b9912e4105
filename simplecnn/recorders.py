"""What the training process records beside a run while it trains, besides weights and curves.

A recorder is attached to a `Trainer` in the training process (`simplecnn.jobs.train_in_child`,
which the local worker and the Ray actor both run). It sees every event the trainer reports and
writes its own files into the run's directory, so what it records survives the server like the
rest of the run. Recorders register by "module:function" in `RECORDER_FACTORIES`; each factory is
called as `factory(trainer, run)` and returns a recorder, or None when it has nothing to record
for that run. Recorders are extras: once training runs, one that fails (a full disk, a bug) is
reported on stderr and dropped, and the run itself trains and saves on.
"""
from __future__ import annotations

import importlib
import sys
from typing import Protocol

RECORDER_FACTORIES: tuple[str, ...] = (
    "simplecnn.health:recorder_for",
    "simplecnn.snapshots:recorder_for",
)


class Recorder(Protocol):
    def on_event(self, trainer, event: object) -> None:
        """Called with every BatchEvent / EpochEvent, in the training process, before the run is saved."""

    def close(self, trainer) -> None:
        """Called when training ends (finished, stopped or failed): write what is pending. May be called
        twice (once more after a failed final save), so it must be idempotent."""


def _factory(spec: str):
    module_name, _, name = spec.partition(":")
    return getattr(importlib.import_module(module_name), name)


def attach_recorders(trainer, run, factories: tuple[str, ...] = RECORDER_FACTORIES) -> list[Recorder]:
    """The recorders that want to record this run. A failing factory is an error, not a silent skip;
    the recorders attached before it are closed first, so none leaves its hooks behind."""
    found = []
    try:
        for spec in factories:
            recorder = _factory(spec)(trainer, run)
            if recorder is not None:
                found.append(recorder)
    except BaseException:
        close_recorders(found, trainer)
        raise
    return found


def _report(recorder, what: str, exc: Exception) -> None:
    print(f"simplecnn: recorder {type(recorder).__name__} failed in {what} and was dropped: "
          f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def notify_recorders(recorders: list[Recorder], trainer, event: object) -> None:
    """Pass `event` to every recorder; one that raises is reported, closed and removed from the list."""
    for recorder in list(recorders):
        try:
            recorder.on_event(trainer, event)
        except Exception as exc:
            _report(recorder, "on_event", exc)
            recorders.remove(recorder)
            close_recorders([recorder], trainer)


def close_recorders(recorders: list[Recorder], trainer) -> None:
    """Close every recorder; one that fails is reported and does not keep the others from writing."""
    for recorder in recorders:
        try:
            recorder.close(trainer)
        except Exception as exc:
            _report(recorder, "close", exc)
