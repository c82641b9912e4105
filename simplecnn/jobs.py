"""Background training jobs and a server-wide queue, for UIs that must never block.

A `TrainingJob` trains in a child process, so that the server's own Python work (page reruns,
figures, websockets) never competes with training for one interpreter lock: in the same process
a live Train page cut training to under half the command line's speed. A small thread per job
talks to the child over a pipe and keeps a mirror of the run (history, latest batch, weights).
The UI reads `job.snapshot()` (plain data) and `job.model()` (an eval-mode copy of the latest
published weights) from any thread. A stop ends the child after its current batch and brings its
exact state back, so a resume starts a new child that goes on from the same batch. A
`TrainingScheduler` caps how many jobs train at once on the server and queues the rest in FIFO
order. A job whose owner stops sending heartbeats (the browser tab was closed) cancels itself,
and its process, with its memory, is gone.
"""
from __future__ import annotations

import copy
import io
import itertools
import os
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import torch

from .data import Dataset, load_dataset
from .model import SimpleCNN
from .training import BatchEvent, EpochEvent, History, StopTraining, TrainConfig, Trainer

MAX_TRAININGS_ENV = "SIMPLECNN_MAX_TRAININGS"  # trainings at once per server (default 1)
HEARTBEAT_TIMEOUT_ENV = "SIMPLECNN_HEARTBEAT_TIMEOUT"  # seconds without a heartbeat -> cancel (default 30)
PUBLISH_EVERY_S = 1.0  # how often the child process publishes a copy of the weights
CANCELLED_MESSAGE = "Cancelled: the browser tab that started this run was closed."
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # where `python -m simplecnn.worker` finds the package
_ids = itertools.count(1)


def _pack(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _unpack(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=True)


def _weights_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def train_in_child(conn: Connection, config: dict, dataset_name: str, state: bytes, stop: threading.Event) -> None:
    """In the child process: continue a Trainer from `state`, report over `conn`, end after a stop."""
    try:
        trainer = None
        last_publish = [time.monotonic()]

        def report(event: object) -> None:
            if stop.is_set():
                raise StopTraining()
            h = trainer.history
            if isinstance(event, BatchEvent):
                conn.send(("batch", asdict(event), h.seconds, h.images_seen))
                if time.monotonic() - last_publish[0] >= PUBLISH_EVERY_S:
                    conn.send(("weights", _pack(_weights_of(trainer.model))))
                    last_publish[0] = time.monotonic()
            elif isinstance(event, EpochEvent):
                conn.send(("epoch", asdict(event), h.warning, _pack(_weights_of(trainer.model))))
                last_publish[0] = time.monotonic()

        trainer = Trainer(TrainConfig.from_dict(config), dataset=load_dataset(dataset_name), callbacks=[report])
        trainer.load_state_dict(_unpack(state))
        if not stop.is_set():  # a stop pressed while this process started trains nothing
            # The trainer checks its stop flag between batches: a stop costs at most one batch.
            threading.Thread(target=lambda: stop.wait() and trainer.request_stop(), daemon=True).start()
            trainer.fit()
        conn.send(("done", _pack(trainer.state_dict())))
    except BaseException as exc:  # the parent shows the reason; nothing else would see it
        conn.send(("failed", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        conn.close()


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
                    if job.cancel_requested or job.heartbeat_expired:
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
    """One training run in a child process: start, stop, resume, watch."""

    def __init__(self, config: TrainConfig, dataset: Dataset, scheduler: TrainingScheduler,
                 label: str | None = None, heartbeat_timeout: float | None = None) -> None:
        self.id = f"run-{next(_ids)}"
        self.config = config.validate()
        self.label = label or config.label()
        self.scheduler = scheduler
        # The parent's Trainer never trains: it holds the run's state between child processes and
        # mirrors the child's progress (history, epoch) for the UI.
        self.trainer = Trainer(config, dataset=dataset)
        if heartbeat_timeout is None:
            heartbeat_timeout = float(os.environ.get(HEARTBEAT_TIMEOUT_ENV, "30"))
        self.heartbeat_timeout = heartbeat_timeout
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()  # stop() or a lost heartbeat: tell the child
        self._status = "new"
        self._message = ""
        self._traceback = ""
        self.process_id: int | None = None  # pid of the training process while there is one
        self._latest: BatchEvent | None = None
        self._weights = _weights_of(self.trainer.model)
        self._weights_version = 0
        self._epoch_weights: list[dict[str, torch.Tensor]] = []  # weights after each epoch
        self._last_heartbeat = time.monotonic()
        self.cancel_requested = False  # stopped while queued
        self._orphaned = False  # the heartbeat stopped during this start

    # -- control (UI thread) ---------------------------------------------------------------------
    def start(self) -> bool:
        """Queue the job (or resume it after a stop). False if it is already active or done."""
        with self._lock:
            if self._status in ("queued", "running", "stopping") or self.trainer.finished:
                return False
            self.cancel_requested = self._orphaned = False
            self._status, self._message = "queued", ""
            self._last_heartbeat = time.monotonic()
            self._stop_requested = threading.Event()
            self._thread = threading.Thread(target=self._run, name=f"simplecnn-{self.id}", daemon=True)
            self._thread.start()
            return True

    resume = start

    def stop(self, reason: str = "") -> bool:
        """Ask the job to stop after its current batch (or leave the queue). Idempotent."""
        with self._lock:
            if self._status not in ("queued", "running"):
                return False
            if self._status == "queued":
                self.cancel_requested = True
            self._status = "stopping"
            self._message = reason
            self._stop_requested.set()
        self.scheduler.wake()
        return True

    def heartbeat(self) -> None:
        """The owner is still there; called by the UI on every refresh."""
        self._last_heartbeat = time.monotonic()

    @property
    def heartbeat_expired(self) -> bool:
        """No heartbeat for `heartbeat_timeout` seconds: the tab that owns the job is gone."""
        return time.monotonic() - self._last_heartbeat > self.heartbeat_timeout

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def thread_alive(self) -> bool:
        """True while the job's watcher thread (and so its training process) is alive."""
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

    # -- watcher thread -------------------------------------------------------------------------
    def _publish(self, weights: dict[str, torch.Tensor], after_epoch: bool = False) -> None:
        with self._lock:
            self._weights = weights
            self._weights_version += 1
            if after_epoch:
                self._epoch_weights.append(weights)

    def _on_message(self, message: tuple) -> None:
        """Mirror one report of the child into this job (its history, latest batch, weights)."""
        kind = message[0]
        if kind == "batch":
            _, event, seconds, images_seen = message
            with self._lock:
                h = self.trainer.history
                h.steps.append(event["step"])
                h.batch_losses.append(event["loss"])
                h.smoothed_losses.append(event["smoothed_loss"])
                h.seconds, h.images_seen, h.status = seconds, images_seen, "running"
                self._latest = BatchEvent(**event)
        elif kind == "weights":
            self._publish(_unpack(message[1]))
        elif kind == "epoch":
            _, event, warning, weights = message
            with self._lock:
                self.trainer.history.epochs.append(event)
                self.trainer.history.warning = warning
                self.trainer.epoch += 1
            self._publish(_unpack(weights), after_epoch=True)

    def _check_heartbeat(self) -> None:
        if not self._orphaned and self.heartbeat_expired:
            self._orphaned = True
            self._stop_requested.set()

    def _train_in_process(self) -> tuple[str, str]:
        """Run one child process (`python -m simplecnn.worker`) until it ends; returns (status, message).

        A fresh interpreter rather than multiprocessing: its start methods re-import the parent's
        __main__ in the child, and under Streamlit that is the page script being run.
        """
        # The web server waits passively in OpenMP (app.py); training is ~30 % faster with libgomp's default.
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        process = subprocess.Popen([sys.executable, "-m", "simplecnn.worker"], cwd=PACKAGE_ROOT, env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        to_child, from_child = Connection(os.dup(process.stdin.fileno())), Connection(os.dup(process.stdout.fileno()))
        process.stdin.close()
        process.stdout.close()
        self.process_id = process.pid
        stop_sent = False
        try:
            to_child.send((self.config.to_dict(), self.trainer.dataset.name, _pack(self.trainer.state_dict())))
            while True:
                self._check_heartbeat()
                if self._stop_requested.is_set() and not stop_sent:
                    to_child.send("stop")
                    stop_sent = True
                if not from_child.poll(0.25):
                    continue
                message = from_child.recv()
                if message[0] == "failed":
                    self._traceback = message[2]
                    return "failed", f"Training failed: {message[1]}"
                if message[0] == "done":
                    state = _unpack(message[1])
                    with self._lock:
                        self.trainer.load_state_dict(state, restore_global_rng=False)
                    self._publish(state["model"])
                    history = self.trainer.history
                    if history.status in ("new", "running"):  # stopped before its first batch
                        return "stopped", "Stopped before training began."
                    return history.status, history.message
                self._on_message(message)
        except (EOFError, OSError):  # the child is gone without a word (killed, out of memory)
            process.wait(5)
            return "failed", f"Training failed: the training process ended unexpectedly (exit code {process.poll()})."
        finally:
            to_child.close()  # EOF on its stdin also stops a child that is still running
            from_child.close()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self.process_id = None

    def _run(self) -> None:
        if not self.scheduler.acquire(self):
            with self._lock:
                if self.heartbeat_expired and not self.cancel_requested:
                    self._status, self._message = "cancelled", CANCELLED_MESSAGE
                else:
                    self._status = "stopped"
                    self._message = self._message or "Removed from the queue before it started."
            return
        try:
            with self._lock:
                if self._status == "queued":
                    self._status = "running"
            status, message = self._train_in_process()
        except Exception as exc:  # never let a worker die silently: the UI shows the reason
            status, message = "failed", f"Training failed: {type(exc).__name__}: {exc}"
        finally:
            self.scheduler.release(self)
        with self._lock:
            if status == "stopped" and self._orphaned:
                status, message = "cancelled", CANCELLED_MESSAGE
            elif status == "stopped" and self._message:
                message = self._message  # the reason given to stop()
            self._status, self._message = status, message
            self.trainer.history.status, self.trainer.history.message = status, message


def clone_model(model: SimpleCNN) -> SimpleCNN:
    """A detached eval-mode copy, so inspection never touches a model someone else uses."""
    return copy.deepcopy(model).eval()
