"""Background training jobs and a server-wide queue, for UIs that must never block.

A `TrainingJob` runs a `Trainer` in its own thread. The UI reads `job.snapshot()` (plain data)
and `job.model()` (an eval-mode copy of the latest published weights) from any thread; it never
touches the live model. A `TrainingScheduler` caps how many jobs train at once on the server and
queues the rest in FIFO order. A job whose owner stops sending heartbeats (the browser tab was
closed) cancels itself.
"""
from __future__ import annotations

import copy
import itertools
import os
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field

import torch

from .data import Dataset
from .model import SimpleCNN
from .training import BatchEvent, EpochEvent, History, StopTraining, TrainConfig, Trainer

MAX_TRAININGS_ENV = "SIMPLECNN_MAX_TRAININGS"  # trainings at once per server (default 1)
HEARTBEAT_TIMEOUT_ENV = "SIMPLECNN_HEARTBEAT_TIMEOUT"  # seconds without a heartbeat -> cancel (default 30)
PUBLISH_EVERY_S = 1.0  # how often the worker publishes a copy of the weights
_ids = itertools.count(1)


class TrainingScheduler:
    """At most `max_concurrent` jobs train at once; the others wait in FIFO order."""

    def __init__(self, max_concurrent: int | None = None) -> None:
        if max_concurrent is None:
            max_concurrent = int(os.environ.get(MAX_TRAININGS_ENV, "1") or 1)
        self.max_concurrent = max(1, max_concurrent)
        self._cond = threading.Condition()
        self._waiting: list["TrainingJob"] = []
        self._running: set["TrainingJob"] = set()

    def acquire(self, job: "TrainingJob") -> bool:
        """Block until `job` may run; False if it was cancelled while waiting."""
        with self._cond:
            self._waiting.append(job)
            try:
                while True:
                    if job.cancel_requested:
                        return False
                    if self._waiting[0] is job and len(self._running) < self.max_concurrent:
                        self._running.add(job)
                        return True
                    self._cond.wait(timeout=0.5)
            finally:
                self._waiting.remove(job)
                self._cond.notify_all()

    def release(self, job: "TrainingJob") -> None:
        with self._cond:
            self._running.discard(job)
            self._cond.notify_all()

    def position(self, job: "TrainingJob") -> int | None:
        """1-based place in the queue, or None when not waiting."""
        with self._cond:
            return self._waiting.index(job) + 1 if job in self._waiting else None

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)


@dataclass
class JobSnapshot:
    """What a UI needs to draw a job, copied so it can be read without locks."""

    id: str
    label: str
    status: str  # queued, running, stopping, stopped, finished, diverged, failed, cancelled
    message: str
    queue_position: int | None
    epoch: int  # finished epochs
    epochs: int
    latest: dict | None  # asdict(BatchEvent) of the newest batch report
    history: History
    weights_version: int  # bumps whenever new weights are published
    config: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running", "stopping")

    @property
    def can_resume(self) -> bool:
        return self.status in ("stopped", "cancelled") and self.epoch < self.epochs


class TrainingJob:
    """One training run in a background thread: start, stop, resume, watch."""

    def __init__(self, config: TrainConfig, dataset: Dataset, scheduler: TrainingScheduler,
                 label: str | None = None, heartbeat_timeout: float | None = None) -> None:
        self.id = f"run-{next(_ids)}"
        self.config = config.validate()
        self.label = label or config.label()
        self.scheduler = scheduler
        self.trainer = Trainer(config, dataset=dataset, callbacks=[self._on_event])
        if heartbeat_timeout is None:
            heartbeat_timeout = float(os.environ.get(HEARTBEAT_TIMEOUT_ENV, "30"))
        self.heartbeat_timeout = heartbeat_timeout
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status = "new"
        self._message = ""
        self._latest: BatchEvent | None = None
        self._weights = self._copy_weights()
        self._weights_version = 0
        self._epoch_weights: list[dict[str, torch.Tensor]] = []  # weights after each epoch
        self._last_publish = 0.0
        self._last_heartbeat = time.monotonic()
        self.cancel_requested = False

    # -- control (UI thread) ---------------------------------------------------------------------
    def start(self) -> bool:
        """Queue the job (or resume it after a stop). False if it is already active or done."""
        with self._lock:
            if self._status in ("queued", "running", "stopping") or self.trainer.finished:
                return False
            self.cancel_requested = False
            self._status, self._message = "queued", ""
            self._last_heartbeat = time.monotonic()
            self._thread = threading.Thread(target=self._run, name=f"simplecnn-{self.id}", daemon=True)
            self._thread.start()
            return True

    resume = start

    def stop(self, reason: str = "") -> bool:
        """Ask the job to stop after its current batch (or leave the queue). Idempotent."""
        with self._lock:
            if self._status == "queued":
                self.cancel_requested = True
                self._status = "stopping"
                self._message = reason
            elif self._status == "running":
                self._status = "stopping"
                self._message = reason
                self.trainer.request_stop()
            else:
                return False
        self.scheduler.wake()
        return True

    def heartbeat(self) -> None:
        """The owner is still there; called by the UI on every refresh."""
        self._last_heartbeat = time.monotonic()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- reading (any thread) -------------------------------------------------------------------
    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(
                id=self.id, label=self.label, status=self._status, message=self._message,
                queue_position=self.scheduler.position(self) if self._status in ("queued", "stopping") else None,
                epoch=self.trainer.epoch, epochs=self.config.epochs,
                latest=asdict(self._latest) if self._latest else None,
                history=self.trainer.history.copy(), weights_version=self._weights_version,
                config=self.config.to_dict())

    def model(self, epoch: int | None = None) -> SimpleCNN:
        """An eval-mode copy of the newest published weights (or those after `epoch`, 1-based)."""
        with self._lock:
            state = self._weights if epoch is None else self._epoch_weights[epoch - 1]
        model = SimpleCNN(self.trainer.dataset.num_classes, self.config.dropout1, self.config.dropout2,
                          self.config.batch_norm)
        model.load_state_dict(state)
        return model.eval()

    @property
    def epochs_done(self) -> int:
        with self._lock:
            return len(self._epoch_weights)

    @property
    def weights_version(self) -> int:
        return self._weights_version

    # -- worker thread --------------------------------------------------------------------------
    def _copy_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in self.trainer.model.state_dict().items()}

    def _publish(self, after_epoch: bool = False) -> None:
        weights = self._copy_weights()
        with self._lock:
            self._weights = weights
            self._weights_version += 1
            if after_epoch:
                self._epoch_weights.append(weights)
        self._last_publish = time.monotonic()

    def _on_event(self, event: object) -> None:
        if isinstance(event, BatchEvent):
            with self._lock:
                self._latest = event
            if time.monotonic() - self._last_publish >= PUBLISH_EVERY_S:
                self._publish()
        elif isinstance(event, EpochEvent):
            self._publish(after_epoch=True)
        if time.monotonic() - self._last_heartbeat > self.heartbeat_timeout:
            self.cancel_requested = True
            raise StopTraining("Cancelled: the browser tab that started this run was closed.")

    def _run(self) -> None:
        if not self.scheduler.acquire(self):
            with self._lock:
                self._status = "stopped"
                self._message = self._message or "Removed from the queue before it started."
            return
        try:
            with self._lock:
                if self._status == "queued":
                    self._status = "running"
            history = self.trainer.fit()
            self._publish()
            with self._lock:
                if self.cancel_requested and history.status == "stopped":
                    self._status = "cancelled"
                else:
                    self._status = history.status
                self._message = history.message
        except Exception as exc:  # never let a worker die silently: the UI shows the reason
            self.trainer.history.status = "failed"
            with self._lock:
                self._status = "failed"
                self._message = f"Training failed: {type(exc).__name__}: {exc}"
                self._traceback = traceback.format_exc()
        finally:
            self.scheduler.release(self)


def clone_model(model: SimpleCNN) -> SimpleCNN:
    """A detached eval-mode copy, so inspection never touches a model someone else uses."""
    return copy.deepcopy(model).eval()
