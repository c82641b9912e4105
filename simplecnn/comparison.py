"""Small side-by-side trainings for a lesson, run like every other training: queued, in a worker process.

Lesson 12 compares a few regularisation settings on a tiny slice of MNIST. Training them on the page
thread would hold the web server's interpreter for as long as they take and bypass the class's
queue, so a `ComparisonJob` waits for a slot in the same `TrainingScheduler` as the Train page, then
runs `simplecnn.lessons.regularization.train_tiny` for each setting in a `python -m simplecnn.worker`
process and streams the results back. The finished result is written to the learner's folder, so a
reload shows it again.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path

from .jobs import TrainingScheduler, WorkerProcess
from .files import atomic_write_json, read_json
from .training import TrainConfig

MAX_COMPARISON_IMAGES = 200_000  # training images x epochs over all settings of one comparison
# What a comparison may run in the worker, by name: (module, function(label, config, dataset, progress)).
RUNNERS = {"overfitting": ("simplecnn.lessons.regularization", "train_tiny"),  # lesson 12
           "adam_bias": ("simplecnn.lessons.adam_bias", "train_adam_run")}  # lesson 8


def compare_in_child(conn: Connection, configs: dict[str, dict], dataset_name: str, stop: threading.Event,
                     runner: str = "overfitting") -> None:
    """In the worker process: train each setting in turn, report progress and each finished run."""
    import importlib

    from .data import load_dataset

    try:
        module, function = RUNNERS[runner]
        train_one = getattr(importlib.import_module(module), function)
        dataset = load_dataset(dataset_name)
        for i, (label, config) in enumerate(configs.items()):
            if stop.is_set():
                break

            def progress(fraction: float, text: str, i: int = i) -> None:
                conn.send(("progress", (i + fraction) / len(configs), text))

            run = train_one(label, TrainConfig.from_dict(config), dataset, progress)
            conn.send(("run", asdict(run)))
        conn.send(("done",))
    except BaseException as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class ComparisonJob:
    """A lesson's comparison: queued with the class's trainings, trained in a worker process."""

    def __init__(self, configs: dict[str, TrainConfig], scheduler: TrainingScheduler, result_path: Path,
                 settings: dict, dataset_name: str = "mnist", runner: str = "overfitting") -> None:
        if runner not in RUNNERS:
            raise ValueError(f"Unknown comparison {runner!r}")
        self.runner = runner
        images = 0
        for config in configs.values():
            config.validate()
            n = min(config.subset or 60_000, 60_000)
            images += (n - round(n * config.validation_split)) * config.epochs
        if images > MAX_COMPARISON_IMAGES:
            raise ValueError(f"This comparison would train on {images:,} images; at most "
                             f"{MAX_COMPARISON_IMAGES:,} are allowed here: fewer epochs or images.")
        self.id = "comparison"
        self.configs, self.scheduler, self.result_path = configs, scheduler, result_path
        self.settings, self.dataset_name = settings, dataset_name
        self.status, self.message, self.progress, self.progress_text = "queued", "", 0.0, "waiting for a free slot"
        self.runs: list[dict] = []
        self.cancel_requested = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simplecnn-comparison", daemon=True)
        self._thread.start()

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    def stop(self) -> None:
        self.cancel_requested = True
        self._stop.set()
        self.scheduler.wake()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        if not self.scheduler.acquire(self):
            self.status, self.message = "stopped", "Cancelled before it started."
            return
        try:
            self.status, self.progress_text = "running", "starting a training process…"
            self._train()
        except Exception as exc:
            self.status, self.message = "failed", f"The comparison failed: {type(exc).__name__}: {exc}"
        finally:
            self.scheduler.release(self)

    def _train(self) -> None:
        worker = WorkerProcess()
        stop_sent = False
        try:
            worker.send(("compare", {k: c.to_dict() for k, c in self.configs.items()}, self.dataset_name,
                         self.runner))
            while True:
                if self._stop.is_set() and not stop_sent:
                    worker.send("stop")
                    stop_sent = True
                message = worker.receive(0.25)
                if message is None:
                    continue
                if message[0] == "progress":
                    self.progress, self.progress_text = message[1], message[2]
                elif message[0] == "run":
                    self.runs.append(message[1])
                elif message[0] == "failed":
                    self.status, self.message = "failed", f"The comparison failed: {message[1]}"
                    return
                elif message[0] == "done":
                    done = len(self.runs) == len(self.configs)
                    if done:  # on disk before anyone is told it finished
                        atomic_write_json(self.result_path, {"settings": self.settings, "runs": self.runs,
                                                             "finished": time.time()})
                    self.status = "finished" if done else "stopped"
                    self.message = "" if done else "Stopped before every setting was trained."
                    return
        except (EOFError, OSError):
            self.status, self.message = "failed", "The training process ended unexpectedly."
        finally:
            worker.close()


def load_result(path: Path) -> dict | None:
    """A stored comparison ({"settings", "runs"}), or None if there is none or it cannot be read."""
    try:
        data = read_json(path)
    except ValueError:
        return None
    return data if isinstance(data.get("runs"), list) else None
