"""One server, a whole class: every learner's runs, the shared training queue, fair limits, recovery.

A `Classroom` is created once per server process. It owns the run store and the queue, knows every
live training job, and applies the limits that keep one learner from starving or crashing the others:
a per-run budget (training images x epochs), one queued-or-running run per learner, a cap on stored
runs and on disk per learner. It never depends on a browser tab: a run trains until it is done or
stopped, and runs of a learner who has been away for `SIMPLECNN_ABANDON_MINUTES` are stopped (saved,
resumable). On start it finds the runs a previous server left training and marks them interrupted,
with the position their last save holds. The teacher's controls (stop any run, move one to the front,
change the number of concurrent trainings and the budget) are methods here too.
"""
from __future__ import annotations

import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .jobs import ACTIVE, TrainingJob, TrainingScheduler
from .raybackend import ray_address
from .files import atomic_write_bytes, atomic_write_json, read_json
from .runstore import RunDir, RunRecord, RunStore
from .training import TrainConfig

MAX_RUN_IMAGES_ENV = "SIMPLECNN_MAX_RUN_IMAGES"  # training images x epochs per run (default 600,000)
MAX_RUNS_ENV = "SIMPLECNN_MAX_RUNS_PER_LEARNER"  # stored runs and uploads per learner (default 10)
MAX_LEARNER_MB_ENV = "SIMPLECNN_MAX_LEARNER_MB"  # disk per learner (default 500)
ABANDON_ENV = "SIMPLECNN_ABANDON_MINUTES"  # stop runs of learners away this long (default 20)
RAY_MAX_RUNS_ENV = "SIMPLECNN_RAY_MAX_RUNS"  # with Ray: runs handed to the cluster at once (default 64)
DEFAULT_SPEED = 1500.0  # images/s assumed before this server has measured a run (2-core VM, niced)
HOST = socket.gethostname()


class RunRefused(ValueError):
    """A start, resume or upload the limits do not allow; the message says what to change."""


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return value if math.isfinite(value) and value > 0 else default


@dataclass
class Limits:
    """What one learner may use; the teacher can change them while the server runs."""

    max_run_images: int = field(default_factory=lambda: int(_env_number(MAX_RUN_IMAGES_ENV, 600_000)))
    max_runs_per_learner: int = field(default_factory=lambda: int(_env_number(MAX_RUNS_ENV, 10)))
    max_learner_bytes: int = field(default_factory=lambda: int(_env_number(MAX_LEARNER_MB_ENV, 500) * 1e6))
    abandon_seconds: float = field(default_factory=lambda: _env_number(ABANDON_ENV, 20) * 60)


def split_sizes(config: TrainConfig, dataset_size: int = 60_000) -> tuple[int, int]:
    """(training images, validation images) a config uses; the same arithmetic as split_indices."""
    n = min(config.subset or dataset_size, dataset_size)
    n_val = int(round(n * config.validation_split))
    return n - n_val, n_val


@dataclass
class RunView:
    """One of a learner's runs as the pages see it: a trained run (with its job) or an upload."""

    record: RunRecord
    job: TrainingJob | None = None

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def kind(self) -> str:
        return self.record.meta.get("kind", "trained")

    @property
    def label(self) -> str:
        return self.record.meta.get("label", self.id)

    @property
    def dataset(self) -> str:
        return self.record.meta.get("dataset", "mnist")

    @property
    def error(self) -> str | None:
        return self.record.error

    def snapshot(self):
        """The job's JobSnapshot for a trained run; None for an upload or a damaged run."""
        return self.job.snapshot() if self.job is not None else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Classroom:
    """Every learner's runs and the server's training queue."""

    def __init__(self, store: RunStore | None = None, scheduler: TrainingScheduler | None = None,
                 limits: Limits | None = None, watch_every_s: float = 30.0) -> None:
        self.store = store or RunStore()
        self.make_worker = None  # the default: a local `python -m simplecnn.worker` process per start
        if ray_address():  # Ray's scheduler queues the runs cluster-wide; the local queue only counts them
            from .raybackend import RayWorker
            self.make_worker = RayWorker
            scheduler = scheduler or TrainingScheduler(int(_env_number(RAY_MAX_RUNS_ENV, 64)))
        self.scheduler = scheduler or TrainingScheduler()
        self.limits = limits or Limits()
        self.server_id = f"{HOST}:{os.getpid()}"
        self._lock = threading.RLock()
        self._jobs: dict[tuple[str, str], TrainingJob] = {}
        self._comparisons: dict[str, object] = {}  # learner -> their latest ComparisonJob
        self._last_seen: dict[str, float] = {}
        self._written_seen: dict[str, float] = {}
        self._settings_path = self.store.root / "server.json"
        self.speed = self._load_settings()
        self.recovered = self.recover()
        self._closed = threading.Event()
        if watch_every_s > 0:
            threading.Thread(target=self._watch, args=(watch_every_s,), name="simplecnn-classroom",
                             daemon=True).start()

    # -- settings that outlive the server --------------------------------------------------------
    def _load_settings(self) -> float | None:
        try:
            data = read_json(self._settings_path)
        except ValueError:
            return None
        if isinstance(data.get("max_concurrent"), int) and not os.environ.get("SIMPLECNN_MAX_TRAININGS"):
            self.scheduler.max_concurrent = data["max_concurrent"]
        if isinstance(data.get("max_run_images"), int) and not os.environ.get(MAX_RUN_IMAGES_ENV):
            self.limits.max_run_images = data["max_run_images"]
        speed = data.get("images_per_second")
        return float(speed) if isinstance(speed, (int, float)) and speed > 0 else None

    def _save_settings(self) -> None:
        try:
            atomic_write_json(self._settings_path, {
                "max_concurrent": self.scheduler.max_concurrent, "max_run_images": self.limits.max_run_images,
                "images_per_second": self.speed})
        except OSError:
            pass

    # -- learners ----------------------------------------------------------------------------------
    def touch(self, learner: str) -> None:
        """The learner is here (any page, any tab). Written to disk at most once a minute."""
        now = time.time()
        with self._lock:
            self._last_seen[learner] = now
            if now - self._written_seen.get(learner, 0) < 60:
                return
            self._written_seen[learner] = now
        try:
            self.store.touch_learner(learner, now)
        except OSError:
            pass

    def alias(self, learner: str) -> str:
        return self.store.learner_info(learner).get("alias", learner[:5])

    # -- runs --------------------------------------------------------------------------------------
    def runs(self, learner: str) -> list[RunView]:
        """The learner's runs, oldest first; damaged ones carry an error instead of breaking the list."""
        views = []
        for record in self.store.records(learner):
            views.append(self._view(learner, record))
        return views

    def run(self, learner: str, run_id: str) -> RunView | None:
        try:
            record = self.store.read(self.store.run_dir(learner, run_id))
        except ValueError:
            return None
        if not record.dir.path.is_dir():
            return None
        return self._view(learner, record)

    def _view(self, learner: str, record: RunRecord) -> RunView:
        """A trained run gets its job (live, or read from its files); a damaged one its reason."""
        if record.error is not None or record.meta.get("kind", "trained") != "trained":
            return RunView(record)
        try:
            return RunView(record, self._job_for(learner, record))
        except (ValueError, TypeError, KeyError) as exc:
            reason = str(exc).rstrip(".")
            return RunView(RunRecord(record.dir, record.meta, f"{record.id} cannot be read: {reason}."))

    def _job_for(self, learner: str, record: RunRecord) -> TrainingJob:
        key = (learner, record.id)
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                meta = record.meta
                config = TrainConfig.from_dict(meta.get("config") or {})
                job = TrainingJob(record.dir, config, self.scheduler, dataset_name=meta.get("dataset", "mnist"),
                                  num_classes=int(meta.get("num_classes", 10)), label=meta.get("label"),
                                  owner=learner, make_worker=self.make_worker)
                job.on_end = self._measure_speed
                self._jobs[key] = job
            return job

    def active_job(self, learner: str) -> TrainingJob | None:
        """The learner's queued or training run, wherever it trains (this server or another one
        sharing the run store)."""
        for run in self.store.run_dirs(learner):
            with self._lock:
                job = self._jobs.get((learner, run.run_id))
            if job is None:
                view = self.run(learner, run.run_id)
                job = view.job if view is not None else None
            if job is not None and job.active:
                return job
        return None

    # -- limits ------------------------------------------------------------------------------------
    def check_budget(self, config: TrainConfig, dataset_size: int = 60_000) -> None:
        n_train, _ = split_sizes(config, dataset_size)
        images = n_train * config.epochs
        budget = self.limits.max_run_images
        if images <= budget:
            return
        most_epochs = budget // max(n_train, 1)
        fix = (f"use at most {most_epochs} epoch{'s' if most_epochs != 1 else ''} with these {n_train:,} "
               "training images, or fewer training images") if most_epochs >= 1 else "use fewer training images"
        raise RunRefused(f"This run would train on {images:,} images ({n_train:,} × {config.epochs} epochs); "
                         f"this server allows {budget:,} per run (about {self.estimate_seconds_for(budget) / 60:.0f} "
                         f"minutes) so that everyone gets a turn: {fix}.")

    def check_room(self, learner: str) -> None:
        """Refuse a new stored run when the learner is at the cap of runs or disk."""
        count = len(self.store.run_dirs(learner))
        if count >= self.limits.max_runs_per_learner:
            raise RunRefused(f"You have {count} stored runs, the most this server keeps per learner: delete one "
                             "in Run history on the Train page first.")
        used = self.store.learner_bytes(learner)
        if used >= self.limits.max_learner_bytes:
            raise RunRefused(f"Your runs use {used / 1e6:.0f} MB of disk, the most this server keeps per learner "
                             f"({self.limits.max_learner_bytes / 1e6:.0f} MB): delete a run in Run history first.")

    def check_one_active(self, learner: str) -> None:
        job = self.active_job(learner)
        if job is not None:
            raise RunRefused(f"Your run {job.id} is {job.status}: one run per learner trains or waits at a time. "
                             "Stop it, or wait until it finishes.")

    def estimate_seconds_for(self, images: int, val_images: int = 0, epochs: int = 1) -> float:
        """Seconds to train `images` (and score `val_images` after each of `epochs`) on this server."""
        speed = self.speed or DEFAULT_SPEED
        return images / speed + epochs * val_images / (4 * speed) + 4.0  # ~4 s to start a training process

    def estimate_seconds(self, config: TrainConfig, dataset_size: int = 60_000) -> float:
        n_train, n_val = split_sizes(config, dataset_size)
        return self.estimate_seconds_for(n_train * config.epochs, n_val, config.epochs)

    # -- actions -------------------------------------------------------------------------------------
    def start_run(self, learner: str, config: TrainConfig, dataset_name: str, num_classes: int,
                  dataset_size: int = 60_000) -> TrainingJob:
        """Store a new run and queue it; RunRefused when a limit says no."""
        config.validate()
        with self._lock:
            self.check_one_active(learner)
            self.check_budget(config, dataset_size)
            self.check_room(learner)
            run = self.store.create(learner, {
                "kind": "trained", "label": config.label(), "dataset": dataset_name, "num_classes": num_classes,
                "config": config.to_dict(), "status": "new", "message": "", "server": self.server_id})
            job = self._job_for(learner, self.store.read(run))
            job.start()
        self.touch(learner)
        return job

    def resume(self, learner: str, run_id: str) -> TrainingJob:
        view = self.run(learner, run_id)
        if view is None or view.job is None:
            raise RunRefused(f"{run_id} is not one of your trained runs.")
        with self._lock:
            self.check_one_active(learner)
            try:
                view.job.run.update_meta(server=self.server_id)
            except (OSError, ValueError):
                pass
            if not view.job.start():
                raise RunRefused(f"{run_id} cannot be resumed: it is {view.job.status}.")
        return view.job

    def stop(self, learner: str, run_id: str, reason: str = "") -> bool:
        view = self.run(learner, run_id)
        return bool(view and view.job and view.job.stop(reason))

    def delete(self, learner: str, run_id: str) -> None:
        view = self.run(learner, run_id)
        if view is None:
            return
        if view.job is not None and view.job.active:
            raise RunRefused(f"{run_id} is {view.job.status}: stop it before deleting it.")
        with self._lock:
            self._jobs.pop((learner, run_id), None)
            self.store.delete(view.record.dir)

    def add_upload(self, learner: str, data: bytes, label: str, dataset_name: str, num_classes: int,
                   meta: dict) -> RunDir:
        """Keep an uploaded checkpoint (already validated by the caller) as one of the learner's runs."""
        with self._lock:
            self.check_room(learner)
            run = self.store.create(learner, {"kind": "uploaded", "label": label, "dataset": dataset_name,
                                              "num_classes": num_classes, "status": "uploaded",
                                              "config": meta.get("config") or {}, "message": ""})
            atomic_write_bytes(run.latest_path, data)
        return run

    # -- a lesson's comparison (queued like every training) ------------------------------------------
    def comparison_path(self, learner: str, name: str) -> Path:
        return self.store.learner_dir(learner) / f"{name}.json"

    def start_comparison(self, learner: str, name: str, configs: dict[str, TrainConfig], settings: dict,
                         runner: str = "overfitting"):
        """Queue a lesson's comparison for the learner; RunRefused while one is already on its way."""
        from .comparison import ComparisonJob

        with self._lock:
            current = self._comparisons.get(learner)
            if current is not None and current.active:
                raise RunRefused("Your comparison is still on its way: wait for it, or stop it.")
            try:
                job = ComparisonJob(configs, self.scheduler, self.comparison_path(learner, name), settings,
                                    runner=runner)
            except ValueError as exc:
                raise RunRefused(str(exc)) from None
            self._comparisons[learner] = job
        self.touch(learner)
        return job

    def comparison(self, learner: str):
        return self._comparisons.get(learner)

    # -- recovery and upkeep ---------------------------------------------------------------------------
    def recover(self) -> int:
        """Runs left queued or training by a server that is gone become "interrupted" (resumable)."""
        count = 0
        for learner in self.store.learners():
            for record in self.store.records(learner):
                if record.error or record.meta.get("status") not in ACTIVE:
                    continue
                server = str(record.meta.get("server", ""))
                host, _, pid = server.rpartition(":")
                if host == HOST and pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
                    continue  # another server on this machine is training it
                try:
                    progress = record.dir.read_progress()
                except ValueError:
                    progress = {}
                epoch, batch = int(progress.get("epoch", 0)), int(progress.get("batch", 0))
                if epoch == 0 and batch == 0:
                    message = "The server restarted before this run trained a batch. Press Resume to start it."
                else:
                    message = (f"The server restarted: interrupted at epoch {epoch + 1}, batch {batch}. "
                               "Press Resume to go on from there.")
                try:
                    record.dir.update_meta(status="interrupted", message=message, epoch=epoch, batch=batch)
                    count += 1
                except (OSError, ValueError):
                    pass
        return count

    def _watch(self, every_s: float) -> None:
        while not self._closed.wait(every_s):
            try:
                self.upkeep()
            except Exception:  # upkeep must never kill the watcher
                pass

    def upkeep(self, now: float | None = None) -> None:
        """Stop runs of learners who left long ago, remember the speed, forget idle jobs."""
        now = time.time() if now is None else now
        with self._lock:
            jobs = list(self._jobs.items())
        for (learner, _), job in jobs:
            seen = self._last_seen.get(learner, job.queued_at)
            if job.active and now - seen > self.limits.abandon_seconds:
                job.stop(f"Stopped because you were away for over {self.limits.abandon_seconds / 60:.0f} minutes; "
                         "nothing is lost: press Resume to go on.")
        with self._lock:
            for key, job in list(self._jobs.items()):
                if not job.active and not job.thread_alive and \
                        now - self._last_seen.get(key[0], 0) > self.limits.abandon_seconds:
                    del self._jobs[key]  # its files are the truth; a later visit reads them again
            for learner, comparison in list(self._comparisons.items()):
                if not comparison.active and now - self._last_seen.get(learner, 0) > self.limits.abandon_seconds:
                    del self._comparisons[learner]  # its result is on disk

    def _measure_speed(self, job: TrainingJob) -> None:
        """After each training process: fold its images/s into the server's speed (kept across restarts)."""
        history = job.history
        if history.seconds < 0.5 or history.images_seen <= 0:
            return  # too short to say anything
        measured = history.images_seen / history.seconds
        self.speed = measured if self.speed is None else 0.7 * self.speed + 0.3 * measured
        self._save_settings()

    def close(self) -> None:
        self._closed.set()

    # -- the teacher's view -------------------------------------------------------------------------------
    def live_jobs(self) -> list[tuple[str, TrainingJob]]:
        """(learner, job) of every queued or training run: running ones first, then the queue in order."""
        queue = self.scheduler.queue()
        with self._lock:
            items = [(learner, job) for (learner, _), job in self._jobs.items() if job.active]
        order = {id(job): i for i, job in enumerate(queue)}
        return sorted(items, key=lambda item: (id(item[1]) in order, order.get(id(item[1]), 0)))

    def set_max_concurrent(self, n: int) -> None:
        self.scheduler.max_concurrent = n
        self._save_settings()

    def set_max_run_images(self, n: int) -> None:
        self.limits.max_run_images = max(1000, int(n))
        self._save_settings()
