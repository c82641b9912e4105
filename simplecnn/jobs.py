"""Training jobs on stored runs, and a server-wide queue, for UIs that must never block or lose work.

A `TrainingJob` is the server's handle on one stored run (`simplecnn.runstore.RunDir`). Each start
trains in a child process, `python -m simplecnn.worker`, so the server's own Python work (page
reruns, figures, websockets) never competes with training for one interpreter lock. The child
writes the run's files itself: its full trainer state, the newest weights and the curves every
`SIMPLECNN_SAVE_EVERY` seconds and after every epoch, the weights after each epoch, and all of it
again when it stops. Whatever happens to the server or the child, the run can go on from its last
save. The server mirrors the child's reports (history, latest batch, weights about once a second)
for the UI, which reads `job.snapshot()` (plain data) and `job.model()` from any thread.

A job does not belong to a browser tab: it trains until it is done or someone stops it. A
`TrainingScheduler` caps how many jobs train at once and queues the rest in order; the teacher may
change the cap or move a job to the front.
"""
from __future__ import annotations

import io
import math
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

from .files import atomic_write_bytes
from .model import SimpleCNN
from .runstore import RunDir
from .training import BatchEvent, EpochEvent, History, StopTraining, TrainConfig

MAX_TRAININGS_ENV = "SIMPLECNN_MAX_TRAININGS"  # trainings at once per server (default 1)
SAVE_EVERY_ENV = "SIMPLECNN_SAVE_EVERY"  # seconds between the training process's saves (default 15)
PUBLISH_EVERY_S = 1.0  # how often the child process publishes a copy of the weights
MAX_EPOCH_SNAPSHOTS = 20  # weights kept per run on disk for "watch your digit as it learns"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # where `python -m simplecnn.worker` finds the package
ACTIVE = ("queued", "running", "stopping")
RESUMABLE = ("stopped", "interrupted", "failed")


def _pack(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _unpack(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=True)


def _weights_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def keeps_epoch(epoch: int, epochs: int) -> bool:
    """Whether the weights after `epoch` are kept: all of them up to MAX_EPOCH_SNAPSHOTS epochs, else
    every k-th and the last, so a 100-epoch run stores 20 snapshots, not 100 (2.3 MB each)."""
    step = math.ceil(epochs / MAX_EPOCH_SNAPSHOTS)
    return epoch == epochs or epoch % step == 0


def save_every_seconds() -> float:
    return max(1.0, float(os.environ.get(SAVE_EVERY_ENV, "15") or 15))


class RunSaver:
    """In the training process: writes the run's resume point, newest weights and curves atomically."""

    def __init__(self, run: RunDir, config: TrainConfig, every_s: float) -> None:
        self.run, self.config, self.every_s = run, config, every_s
        self.last = time.monotonic()

    def save(self, trainer) -> None:
        from .checkpoints import save_checkpoint

        history = trainer.history.to_dict()
        atomic_write_bytes(self.run.state_path, _pack(trainer.state_dict()))
        save_checkpoint(self.run.latest_path, trainer.model, config=self.config.to_dict(), history=history,
                        metrics=_metrics(trainer.history))
        self.run.write_progress(history, trainer.epoch, trainer._batch)
        self.last = time.monotonic()

    def save_epoch(self, trainer) -> None:
        from .checkpoints import save_checkpoint

        if keeps_epoch(trainer.epoch, self.config.epochs):
            save_checkpoint(self.run.epoch_path(trainer.epoch), trainer.model, config=self.config.to_dict(),
                            metrics=_metrics(trainer.history))
        self.save(trainer)

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every_s


def _metrics(history: History) -> dict:
    last = history.last_epoch or {}
    return {"val_accuracy": last.get("val_accuracy"), "epoch": last.get("epoch")}


def train_in_child(conn: Connection, config: dict, dataset_name: str, run_path: str, save_every_s: float,
                   stop: threading.Event) -> None:
    """In the child process: continue the stored run at `run_path`, report over `conn`, save as it goes."""
    from .data import load_dataset
    from .recorders import attach_recorders, close_recorders, notify_recorders
    from .training import Trainer

    trainer = saver = None
    recorders: list = []
    try:
        last_publish = [time.monotonic()]
        last_check = [time.monotonic()]
        run = RunDir(Path(run_path))

        def report(event: object) -> None:
            h = trainer.history
            notify_recorders(recorders, trainer, event)  # extras: one that fails is dropped, training goes on
            if isinstance(event, BatchEvent):
                conn.send(("batch", asdict(event), h.seconds, h.images_seen))
                if time.monotonic() - last_check[0] >= 1.0:  # a Stop pressed on another web server
                    last_check[0] = time.monotonic()
                    if run.stop_path.exists():
                        stop.set()
                if time.monotonic() - last_publish[0] >= PUBLISH_EVERY_S:
                    conn.send(("weights", _pack(_weights_of(trainer.model))))
                    last_publish[0] = time.monotonic()
                if saver.due():
                    saver.save(trainer)
            elif isinstance(event, EpochEvent):
                # Saved and reported before any stop is honoured: a stop during the epoch's final
                # validation must not lose that epoch.
                saver.save_epoch(trainer)
                conn.send(("epoch", asdict(event), h.warning, _pack(_weights_of(trainer.model))))
                last_publish[0] = time.monotonic()
            if stop.is_set():
                raise StopTraining()

        train_config = TrainConfig.from_dict(config)
        if run.meta_path.exists() and run.read_meta().get("handwriting") and not (
                run.examples_path.exists() and (run.state_path.exists() or run.init_path.exists())):
            # Its folder was made but its files never written (the server died in between): training it
            # would teach a random network plain MNIST under a "your handwriting" label.
            raise RuntimeError("This fine-tune has lost its drawings or its starting weights (examples.pt / "
                               "init.pt): delete it and fine-tune again from the Your handwriting page.")
        dataset = load_dataset(dataset_name)
        if run.examples_path.exists():  # a fine-tune (simplecnn.handwriting): its drawings mixed with MNIST
            from .handwriting import load_examples, mixed_dataset
            dataset = mixed_dataset(dataset, load_examples(run.examples_path))
        trainer = Trainer(train_config, dataset=dataset, callbacks=[report])
        if run.state_path.exists():
            trainer.load_state_dict(torch.load(run.state_path, map_location="cpu", weights_only=True))
        elif run.init_path.exists():  # a fresh fine-tune starts from the weights it was given
            from .checkpoints import load_checkpoint
            trainer.model.load_state_dict(load_checkpoint(run.init_path)[0].state_dict())
        saver = RunSaver(run, train_config, save_every_s)
        recorders = attach_recorders(trainer, run)
        if not stop.is_set():  # a stop pressed while this process started trains nothing
            # The trainer checks its stop flag between batches: a stop costs at most one batch.
            threading.Thread(target=lambda: stop.wait() and trainer.request_stop(), daemon=True).start()
            trainer.fit()
        saver.save(trainer)  # the run first, then the extras
        close_recorders(recorders, trainer)
        conn.send(("done", trainer.history.to_dict(), trainer.epoch, trainer._batch))
    except BaseException as exc:  # the parent shows the reason; nothing else would see it
        if trainer is not None and saver is not None and trainer.history.status == "running":
            try:  # keep what was trained: the run resumes from here
                saver.save(trainer)
            except Exception:
                pass
        close_recorders(recorders, trainer)
        try:
            conn.send(("failed", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        except OSError:
            pass
    finally:
        conn.close()


class WorkerProcess:
    """`python -m simplecnn.worker` with a message pipe each way (multiprocessing Connections over its
    stdin and stdout). A fresh interpreter rather than multiprocessing: its start methods re-import the
    parent's __main__ in the child, and under Streamlit that is the page script being run."""

    starting_text = "Starting a training process…"

    def __init__(self) -> None:
        # The web server waits passively in OpenMP (app.py); training is ~30 % faster with libgomp's default.
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        self.process = subprocess.Popen([sys.executable, "-m", "simplecnn.worker"], cwd=PACKAGE_ROOT, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._to = Connection(os.dup(self.process.stdin.fileno()))
        self._from = Connection(os.dup(self.process.stdout.fileno()))
        self.process.stdin.close()
        self.process.stdout.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message) -> None:
        self._to.send(message)

    def receive(self, timeout: float):
        """The next message, or None if none came within `timeout`; EOFError once the child is gone."""
        return self._from.recv() if self._from.poll(timeout) else None

    def exit_code(self) -> int | None:
        try:
            return self.process.wait(5)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """End of file on its stdin stops a child that still runs; reaped, or killed after 10 s."""
        self._to.close()
        self._from.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class TrainingScheduler:
    """At most `max_concurrent` jobs train at once; the others wait in order."""

    def __init__(self, max_concurrent: int | None = None) -> None:
        if max_concurrent is None:
            max_concurrent = int(os.environ.get(MAX_TRAININGS_ENV, "1") or 1)
        self._max = max(1, max_concurrent)
        self._cond = threading.Condition()
        self._waiting: list["TrainingJob"] = []
        self._running: list["TrainingJob"] = []

    @property
    def max_concurrent(self) -> int:
        return self._max

    @max_concurrent.setter
    def max_concurrent(self, value: int) -> None:
        """Change the cap at run time: more starts queued jobs now; fewer lets running ones finish."""
        with self._cond:
            self._max = max(1, int(value))
            self._cond.notify_all()

    def acquire(self, job: "TrainingJob") -> bool:
        """Block until `job` may run; False if it was stopped while waiting."""
        with self._cond:
            self._waiting.append(job)
            try:
                while True:
                    if job.cancel_requested:
                        return False
                    if self._waiting[0] is job and len(self._running) < self._max:
                        self._running.append(job)
                        return True
                    self._cond.wait(timeout=0.5)
            finally:
                self._waiting.remove(job)
                self._cond.notify_all()

    def release(self, job: "TrainingJob") -> None:
        with self._cond:
            if job in self._running:
                self._running.remove(job)
            self._cond.notify_all()

    def move_to_front(self, job: "TrainingJob") -> bool:
        with self._cond:
            if job not in self._waiting:
                return False
            self._waiting.remove(job)
            self._waiting.insert(0, job)
            self._cond.notify_all()
            return True

    def position(self, job: "TrainingJob") -> int | None:
        """1-based place in the queue, or None when not waiting."""
        with self._cond:
            return self._waiting.index(job) + 1 if job in self._waiting else None

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def queue(self) -> list["TrainingJob"]:
        with self._cond:
            return list(self._waiting)

    def running_jobs(self) -> list["TrainingJob"]:
        with self._cond:
            return list(self._running)

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
    status: str  # new, queued, running, stopping, stopped, interrupted, finished, diverged, failed
    message: str
    queue_position: int | None
    epoch: int  # finished epochs
    epochs: int
    latest: dict | None  # asdict(BatchEvent) of the newest batch report
    history: History
    weights_version: int  # bumps whenever new weights are published
    config: dict = field(default_factory=dict)
    batch: int = 0  # batches done in the epoch after `epoch` (the saved position)
    phase: str = ""  # before the first report: what the start waits for (a process, a Ray worker)
    elsewhere: bool = False  # active, but trained by another web server sharing the run store

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def can_resume(self) -> bool:
        return self.status in RESUMABLE and self.epoch < self.epochs


class TrainingJob:
    """One stored training run: start, stop, resume, watch. Survives its tab; its files survive it."""

    def __init__(self, run: RunDir, config: TrainConfig, scheduler: TrainingScheduler, dataset_name: str,
                 num_classes: int, label: str | None = None, owner: str = "", make_worker=None) -> None:
        self.run = run
        self.id = run.run_id
        self.config = config.validate()
        self.label = label or config.label()
        self.dataset_name, self.num_classes = dataset_name, num_classes
        self.owner = owner  # the learner key: who may see and control this run
        self.scheduler = scheduler
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self.process_id: int | None = None  # pid of the training process while there is one
        self._latest: BatchEvent | None = None
        self._weights: dict[str, torch.Tensor] | None = None  # in memory only while it trains
        self._weights_version = 0
        self._cancel = False  # stopped while queued
        self.queued_at = 0.0
        self._status, self._message = "new", ""
        self.history = History()
        self.epoch = self.batch = 0
        self._traceback = ""
        self.on_end = None  # called with the job when a training process has ended (any outcome)
        self.make_worker = make_worker or WorkerProcess  # where it trains: a local process, or a Ray actor
        self._phase = ""  # what a start is waiting for before its first report
        self._unplaced = False  # handed to a Ray cluster that has not placed it yet
        self._load_from_disk()

    def _disk_stamp(self) -> tuple:
        stamps = []
        for path in (self.run.meta_path, self.run.history_path):
            try:
                stamps.append(path.stat().st_mtime_ns)
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def refresh(self) -> None:
        """A run this server does not train (another web server does, or nobody): follow its files.
        Two stat calls when nothing changed."""
        if self.thread_alive:
            return
        stamp = self._disk_stamp()
        if stamp != self._stamp:
            try:
                with self._lock:
                    self._load_from_disk()
            except (OSError, ValueError):  # deleted or being replaced: keep what we had
                pass

    def _load_from_disk(self) -> None:
        """Pick up status and curves from the run's files (after a restart, or for a stored run)."""
        self._stamp = self._disk_stamp()
        meta = self.run.read_meta()
        self._status, self._message = meta.get("status", "new"), meta.get("message", "")
        progress = self.run.read_progress()
        if progress:
            self.history = History.from_dict(progress["history"])
            self.epoch, self.batch = int(progress.get("epoch", 0)), int(progress.get("batch", 0))
        self._weights_version = int(progress.get("saved", 0) * 1000) if progress else 0

    def _set_status(self, status: str, message: str) -> None:
        """Status in memory and in run.json (the caller holds no lock: this writes a file)."""
        with self._lock:
            self._status, self._message = status, message
            self.history.status, self.history.message = status, message
        try:
            self.run.update_meta(status=status, message=message, epoch=self.epoch, batch=self.batch)
        except (OSError, ValueError):  # the run was deleted meanwhile; memory still tells the UI
            pass

    # -- control (UI thread) ---------------------------------------------------------------------
    def start(self) -> bool:
        """Queue the job (or resume it after a stop). False if it is already active or done (here or on
        another web server sharing the run store)."""
        self.refresh()
        with self._lock:
            if self._status in ACTIVE or self.epoch >= self.config.epochs or self._status in ("finished", "diverged"):
                return False
            self._cancel = False
            self._stop_requested = threading.Event()
            self.queued_at = time.time()
            self._thread = threading.Thread(target=self._run, name=f"simplecnn-{self.owner[:6]}-{self.id}",
                                            daemon=True)
        self.run.stop_path.unlink(missing_ok=True)  # an old request must not stop this start
        self._set_status("queued", "")
        self._thread.start()
        return True

    resume = start

    def stop(self, reason: str = "") -> bool:
        """Ask the job to stop after its current batch (or leave the queue). Idempotent. A run that
        another web server trains gets the request as a file in its folder, which its training
        process looks for about once a second."""
        self.refresh()
        if not self.thread_alive:
            with self._lock:
                if self._status not in ("queued", "running"):
                    return False
                self._status = "stopping"
            atomic_write_bytes(self.run.stop_path, reason.encode())
            return True
        with self._lock:
            if self._status not in ("queued", "running"):
                return False
            if self._status == "queued":
                self._cancel = True
            self._status = "stopping"
            self._message = reason
            self._stop_requested.set()
        self.scheduler.wake()
        return True

    @property
    def cancel_requested(self) -> bool:
        """Stopped while queued: here, or by a Stop on another web server (its request file)."""
        return self._cancel or self.run.stop_path.exists()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def thread_alive(self) -> bool:
        """True while the job's watcher thread (and so its training process) is alive."""
        return self._thread is not None and self._thread.is_alive()

    # -- reading (any thread) -------------------------------------------------------------------
    def snapshot(self) -> JobSnapshot:
        self.refresh()
        with self._lock:
            return JobSnapshot(
                id=self.id, label=self.label, status=self._status, message=self._message,
                queue_position=self.scheduler.position(self) if self._status in ("queued", "stopping") else None,
                epoch=self.epoch, epochs=self.config.epochs,
                latest=asdict(self._latest) if self._latest else None,
                history=self.history.copy(), weights_version=self._weights_version,
                config=self.config.to_dict(), batch=self.batch, phase=self._phase,
                elsewhere=self._status in ACTIVE and not self.thread_alive)

    @property
    def status(self) -> str:
        return self._status

    @property
    def waiting(self) -> bool:
        """Queued on this server, or waiting for a free worker in the cluster: nothing to watch yet."""
        return self._status == "queued" or (self._status == "running" and self._unplaced)

    @property
    def active(self) -> bool:
        self.refresh()
        return self._status in ACTIVE

    def _new_model(self) -> SimpleCNN:
        return SimpleCNN(self.num_classes, self.config.dropout1, self.config.dropout2, self.config.batch_norm)

    def model(self, epoch: int | None = None) -> SimpleCNN | None:
        """An eval-mode model with the newest weights (or those after `epoch`, 1-based; None if that
        epoch was not kept). Weights of a run that is not training are read from its files."""
        from .checkpoints import load_checkpoint

        if epoch is None:
            with self._lock:
                state = self._weights
            if state is not None:
                model = self._new_model()
                model.load_state_dict(state)
                return model.eval()
            path = self.run.latest_path
        else:
            path = self.run.epoch_path(epoch)
        if path.exists():
            return load_checkpoint(path)[0]
        if epoch is not None:
            return None
        if self.run.init_path.exists():  # a fine-tune that has not trained yet: the weights it starts from
            return load_checkpoint(self.run.init_path)[0]
        with torch.random.fork_rng(devices=[]):  # nothing trained yet: the weights training starts from
            torch.manual_seed(self.config.seed)
            return self._new_model().eval()

    def saved_epochs(self) -> list[int]:
        """Epochs whose weights are kept on disk (see keeps_epoch)."""
        return self.run.saved_epochs()

    @property
    def weights_version(self) -> int:
        return self._weights_version

    @property
    def eta_seconds(self) -> float | None:
        latest = self._latest
        return latest.eta_seconds if latest is not None and self._status in ("running", "stopping") else None

    # -- watcher thread -------------------------------------------------------------------------
    def _publish(self, weights: dict[str, torch.Tensor]) -> None:
        with self._lock:
            self._weights = weights
            self._weights_version += 1

    def _on_message(self, message: tuple) -> None:
        """Mirror one report of the child into this job (its history, latest batch, weights)."""
        kind = message[0]
        if kind == "batch":
            _, event, seconds, images_seen = message
            with self._lock:
                h = self.history
                h.steps.append(event["step"])
                h.batch_losses.append(event["loss"])
                h.smoothed_losses.append(event["smoothed_loss"])
                h.seconds, h.images_seen = seconds, images_seen
                h.batches_per_epoch = event["batches_per_epoch"]
                self._latest = BatchEvent(**event)
                self.batch = event["batch"]
        elif kind == "weights":
            self._publish(_unpack(message[1]))
        elif kind == "epoch":
            _, event, warning, weights = message
            with self._lock:
                self.history.epochs.append(event)
                self.history.warning = warning
                self.epoch, self.batch = event["epoch"], 0
            self._publish(_unpack(weights))

    def _train_in_process(self) -> tuple[str, str]:
        """Run one training process (or Ray actor) until it ends; returns (status, message)."""
        from .raybackend import ClusterUnreachable

        try:
            worker = self.make_worker()
        except ClusterUnreachable as exc:
            return "failed", f"{exc} Press Resume to try again."
        self.process_id = worker.pid
        self._phase = worker.starting_text
        self._unplaced = getattr(worker, "placed", True) is False  # a cluster has not found it a place yet
        stop_sent = False
        try:
            worker.send((self.config.to_dict(), self.dataset_name, str(self.run.path), save_every_seconds()))
            while True:
                if self._stop_requested.is_set() and not stop_sent:
                    worker.send("stop")
                    stop_sent = True
                message = worker.receive(0.25)
                self.process_id = worker.pid  # a Ray actor's is known once Ray has placed it
                if message is None:
                    if self._phase:
                        self._phase = worker.starting_text  # e.g. placed by Ray, now loading the data
                        self._unplaced = getattr(worker, "placed", True) is False
                    continue
                self._phase, self._unplaced = "", False
                if message[0] == "failed":
                    self._traceback = message[2]
                    self._reload_progress()
                    return "failed", f"Training failed: {message[1]}. Press Resume to try again from the last save."
                if message[0] == "done":
                    _, history, epoch, batch = message
                    with self._lock:
                        self.history = History.from_dict(history)
                        self.epoch, self.batch = epoch, batch
                    if self.history.status in ("new", "running"):  # stopped before its first batch
                        return "stopped", "Stopped before training began."
                    return self.history.status, self.history.message
                self._on_message(message)
        except (EOFError, OSError):  # the child is gone without a word (killed, out of memory)
            code = worker.exit_code()
            self._reload_progress()
            return "interrupted", (f"The training process ended unexpectedly (exit code {code}). "
                                   f"{self.resume_point()}")
        finally:
            worker.close()
            self.process_id = None
            self._phase, self._unplaced = "", False

    def _reload_progress(self) -> None:
        """After a crash, the last save is the truth: the curves and position go back to it."""
        try:
            progress = self.run.read_progress()
        except ValueError:
            progress = {}
        with self._lock:
            if progress:
                self.history = History.from_dict(progress["history"])
                self.epoch, self.batch = int(progress["epoch"]), int(progress["batch"])
            else:
                self.history, self.epoch, self.batch = History(), 0, 0

    def resume_point(self) -> str:
        """Where a Resume goes on from, in words."""
        if self.epoch == 0 and self.batch == 0:
            return "Press Resume to start it again."
        return f"Interrupted at epoch {self.epoch + 1}, batch {self.batch}: press Resume to go on from there."

    def _run(self) -> None:
        if not self.scheduler.acquire(self):
            try:
                reason = self.run.stop_path.read_text()[:500]  # a Stop from another web server
            except OSError:
                reason = ""
            with self._lock:
                message = self._message or reason or "Removed from the queue before it started."
            self._set_status("stopped", message)
            return
        try:
            self._set_status("running", "")
            with self._lock:
                if self._stop_requested.is_set():
                    self._status = "stopping"
            status, message = self._train_in_process()
        except Exception as exc:  # never let a worker die silently: the UI shows the reason
            status, message = "failed", f"Training failed: {type(exc).__name__}: {exc}"
        finally:
            self.scheduler.release(self)
        with self._lock:
            if status == "stopped" and self._message:
                message = self._message  # the reason given to stop()
            self._weights = None  # the newest weights are in latest.pt now; memory is a cache
            self._weights_version += 1
        self._set_status(status, message)
        if status in ("finished", "diverged"):  # nothing left to resume: the 7 MB resume point can go
            self.run.state_path.unlink(missing_ok=True)
        if self.on_end is not None:
            self.on_end(self)
