"""The run store: every learner's runs on disk, so that no reload, restart or crash loses them.

Layout under the root (`SIMPLECNN_RUNS_DIR`, default `runs/`)::

    learners/<learner key>/learner.json          alias, first and last seen
    learners/<learner key>/<run id>/run.json     format version, config, status, message (the server writes it)
    learners/<learner key>/<run id>/history.json curves and position (the training process writes it)
    learners/<learner key>/<run id>/state.pt     the trainer's full state: where Resume goes on from
    learners/<learner key>/<run id>/latest.pt    the newest weights, as a normal checkpoint
    learners/<learner key>/<run id>/epochs/epoch-NNN.pt   weights after epoch NNN
    learners/<learner key>/<run id>/init.pt, examples.pt   a fine-tune's start (simplecnn.handwriting)
    learners/<learner key>/handwriting/d-*.pt    labelled drawings (simplecnn.handwriting)
    learners/<learner key>/<run id>/snapshots/step-NNNNNNN.pt   weights after step N of epoch 1 (replay)

Every file is written atomically (temporary file, fsync, rename), so a reader sees the old version
or the new one, never half of one. Each file has one writer: run.json the web server, the rest the
training process. The learner key is a hash of the learner's secret token, so the token itself is
never a path. Reading a damaged run gives a `RunRecord` with `error` set; it never raises.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .files import atomic_write_json, read_json

RUNS_DIR_ENV = "SIMPLECNN_RUNS_DIR"
FORMAT = "simplecnn-run"
FORMAT_VERSION = 1
RUN_ID = re.compile(r"^run-(\d{1,6})$")
LEARNER_KEY = re.compile(r"^[0-9a-f]{16,64}$")
TOKEN = re.compile(r"^[0-9a-f]{32,64}$")  # a learner token: 128 to 256 random bits, hex


def default_root() -> Path:
    return Path(os.environ.get(RUNS_DIR_ENV) or Path(__file__).resolve().parent.parent / "runs")


def learner_key(token: str) -> str:
    """The directory name of a learner: a hash of their token (the token never appears on disk)."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def learner_alias(key: str) -> str:
    """A short name a teacher can read out without revealing the learner's link."""
    return f"learner-{key[:5]}"


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class RunDir:
    """The files of one run. Paths only; every read and write goes through here."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def learner_key(self) -> str:
        return self.path.parent.name

    meta_path = property(lambda self: self.path / "run.json")
    history_path = property(lambda self: self.path / "history.json")
    state_path = property(lambda self: self.path / "state.pt")
    latest_path = property(lambda self: self.path / "latest.pt")
    stop_path = property(lambda self: self.path / "stop.request")  # a Stop from another web server
    epochs_path = property(lambda self: self.path / "epochs")
    init_path = property(lambda self: self.path / "init.pt")  # a fine-tune's starting weights
    examples_path = property(lambda self: self.path / "examples.pt")  # a fine-tune's own examples
    snapshots_path = property(lambda self: self.path / "snapshots")  # replay weights within epoch 1

    def snapshot_path(self, step: int) -> Path:
        return self.snapshots_path / f"step-{step:07d}.pt"

    def epoch_path(self, epoch: int) -> Path:
        return self.epochs_path / f"epoch-{epoch:03d}.pt"

    # -- run.json (written by the web server) ------------------------------------------------------
    def read_meta(self) -> dict:
        meta = read_json(self.meta_path)
        if meta.get("format") != FORMAT:
            raise ValueError("run.json is not a SimpleCNN run")
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"run.json has format version {meta.get('version')!r}; this app reads {FORMAT_VERSION}")
        return meta

    def write_meta(self, meta: dict) -> None:
        atomic_write_json(self.meta_path, {**meta, "format": FORMAT, "version": FORMAT_VERSION,
                                           "updated": time.time()})

    def update_meta(self, **changes) -> dict:
        meta = {**self.read_meta(), **changes}
        self.write_meta(meta)
        return meta

    # -- history.json (written by the training process) --------------------------------------------
    def read_progress(self) -> dict:
        """{"history": History dict, "epoch": finished epochs, "batch": batches into the next, "saved": time}."""
        if not self.history_path.exists():
            return {}
        data = read_json(self.history_path)
        if data.get("version") != FORMAT_VERSION or not isinstance(data.get("history"), dict):
            raise ValueError("history.json has an unknown format")
        return data

    def write_progress(self, history: dict, epoch: int, batch: int) -> None:
        atomic_write_json(self.history_path, {"version": FORMAT_VERSION, "history": history, "epoch": epoch,
                                              "batch": batch, "saved": time.time()})

    def saved_epochs(self) -> list[int]:
        """Epochs whose weights are on disk, ascending."""
        found = []
        if self.epochs_path.is_dir():
            for p in self.epochs_path.iterdir():
                m = re.fullmatch(r"epoch-(\d{3,4})\.pt", p.name)
                if m:
                    found.append(int(m.group(1)))
        return sorted(found)

    def size_bytes(self) -> int:
        return dir_bytes(self.path)


@dataclass
class RunRecord:
    """One stored run as read from disk: its metadata, or the reason it cannot be read."""

    dir: RunDir
    meta: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def id(self) -> str:
        return self.dir.run_id


class RunStore:
    """All learners' runs under one root directory; safe to share between threads and processes."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.learners_root = self.root / "learners"
        self.learners_root.mkdir(parents=True, exist_ok=True)

    def learner_dir(self, key: str) -> Path:
        if not LEARNER_KEY.fullmatch(key):
            raise ValueError("not a learner key")
        return self.learners_root / key

    def learners(self) -> list[str]:
        return sorted(p.name for p in self.learners_root.iterdir() if p.is_dir() and LEARNER_KEY.fullmatch(p.name))

    def touch_learner(self, key: str, now: float | None = None) -> dict:
        """Record that the learner was here (alias, first and last seen)."""
        now = time.time() if now is None else now
        path = self.learner_dir(key) / "learner.json"
        try:
            info = read_json(path)
        except ValueError:
            info = {"alias": learner_alias(key), "first_seen": now}
        info["last_seen"] = now
        atomic_write_json(path, info)
        return info

    def learner_info(self, key: str) -> dict:
        try:
            return read_json(self.learner_dir(key) / "learner.json")
        except ValueError:
            return {"alias": learner_alias(key)}

    def run_dirs(self, key: str) -> list[RunDir]:
        """The learner's run directories, oldest first (by run number)."""
        base = self.learner_dir(key)
        if not base.is_dir():
            return []
        dirs = [(int(m.group(1)), p) for p in base.iterdir() if p.is_dir() and (m := RUN_ID.fullmatch(p.name))]
        return [RunDir(p) for _, p in sorted(dirs)]

    def run_dir(self, key: str, run_id: str) -> RunDir:
        if not RUN_ID.fullmatch(run_id):
            raise ValueError(f"not a run id: {run_id!r}")
        return RunDir(self.learner_dir(key) / run_id)

    def read(self, run: RunDir) -> RunRecord:
        try:
            return RunRecord(run, run.read_meta())
        except ValueError as exc:
            return RunRecord(run, error=f"{run.run_id} cannot be read: {exc}.")
        except OSError as exc:
            return RunRecord(run, error=f"{run.run_id} cannot be read: {exc.strerror or exc}.")

    def records(self, key: str) -> list[RunRecord]:
        return [self.read(d) for d in self.run_dirs(key)]

    def create(self, key: str, meta: dict) -> RunDir:
        """A new run directory with the next free number and its run.json; safe against races."""
        base = self.learner_dir(key)
        base.mkdir(parents=True, exist_ok=True)
        taken = [int(RUN_ID.fullmatch(d.run_id).group(1)) for d in self.run_dirs(key)]
        number = max(taken, default=0) + 1
        while True:
            path = base / f"run-{number}"
            try:
                path.mkdir()
                break
            except FileExistsError:
                number += 1
        run = RunDir(path)
        run.write_meta({**meta, "id": run.run_id, "created": time.time()})
        return run

    def delete(self, run: RunDir) -> None:
        """Remove a run and its files: renamed away first, so no reader sees half a run."""
        trash = run.path.parent / f".deleted-{run.run_id}-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(run.path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def learner_bytes(self, key: str) -> int:
        path = self.learner_dir(key)
        return dir_bytes(path) if path.is_dir() else 0

    def total_bytes(self) -> int:
        return dir_bytes(self.learners_root)
