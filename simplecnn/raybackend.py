"""Training on a Ray cluster: the same run, the same messages, on whichever machine Ray picks.

With `SIMPLECNN_RAY_ADDRESS` set (e.g. `auto`, `127.0.0.1:6379`, `ray://head:10001`), each start of a
run becomes a Ray actor that asks for `SIMPLECNN_RAY_CPUS_PER_RUN` CPUs (default 2) and
`SIMPLECNN_RAY_GPUS_PER_RUN` GPUs (default 0). Ray's own scheduler queues the actors cluster-wide and
places each where the resources are free; until then the run says it is waiting for a free worker.
The actor runs exactly what a local worker process runs (`simplecnn.jobs.train_in_child`): it reads
and writes the run's folder in the run store, which must therefore be on storage every node shares
(the same machine, or a network file system mounted at the same path), and it keeps its reports in
a buffer that the web server polls. A stop goes to the actor while it trains (a threaded actor), and
a killed actor leaves the run resumable from its last save, as a killed local process does.

`WorkerProcess` (simplecnn.jobs) and `RayWorker` here have the same small interface, so a
`TrainingJob`, the classroom and the pages do not know which one trains.
"""
from __future__ import annotations

import collections
import os
import threading
from pathlib import Path

ADDRESS_ENV = "SIMPLECNN_RAY_ADDRESS"
CPUS_ENV = "SIMPLECNN_RAY_CPUS_PER_RUN"
GPUS_ENV = "SIMPLECNN_RAY_GPUS_PER_RUN"
NODE_IP_ENV = "SIMPLECNN_RAY_NODE_IP"  # this web server's address as the cluster sees it (default: Ray's guess)
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
WAITING_TEXT = "Waiting for a free worker in the Ray cluster…"
_init_lock = threading.Lock()


class ClusterUnreachable(RuntimeError):
    """The Ray cluster named by SIMPLECNN_RAY_ADDRESS cannot be reached (the message says which)."""


def ray_address() -> str | None:
    return os.environ.get(ADDRESS_ENV) or None


def _number(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, "") or default))
    except ValueError:
        return default


def connect():
    """`ray`, connected to the cluster once per process; ClusterUnreachable with the reason if it cannot be."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterUnreachable(f"{ADDRESS_ENV} is set but Ray is not installed (pip install -r "
                                 "requirements-ray.txt).") from exc
    with _init_lock:
        if ray.is_initialized():
            return ray
        address = ray_address()
        _check_reachable(address)
        # Workers import simplecnn from this checkout and see the same data and run folders.
        env = {k: v for k, v in os.environ.items() if k.startswith("SIMPLECNN_") and k != ADDRESS_ENV}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
        try:
            options = {}
            if os.environ.get(NODE_IP_ENV):  # e.g. 127.0.0.1 for a one-machine cluster kept on loopback
                options["_node_ip_address"] = os.environ[NODE_IP_ENV]
            ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False, configure_logging=False,
                     **options)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError: all mean "no cluster here"
            raise ClusterUnreachable(f"The Ray cluster at {address!r} cannot be reached ({type(exc).__name__}: "
                                     f"{' '.join(str(exc).split())[:200]}). Training is unavailable until it "
                                     "is back; drawing and the lessons still work.") from exc
    return ray


def _check_reachable(address: str | None) -> None:
    """Fail in seconds, not minutes: ray.init retries an address that does not answer for about two."""
    import socket

    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
    except OSError as exc:
        raise ClusterUnreachable(f"The Ray cluster at {address!r} cannot be reached ({exc.strerror or exc}). "
                                 "Training is unavailable until it is back; drawing and the lessons still "
                                 "work.") from None


class _Outbox:
    """What `train_in_child` sends, kept in the actor until the web server polls for it."""

    def __init__(self) -> None:
        self._messages: collections.deque = collections.deque()
        self._cond = threading.Condition()

    def send(self, message) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def close(self) -> None:
        pass

    def take(self, timeout: float) -> list:
        with self._cond:
            if not self._messages:
                self._cond.wait(timeout)
            taken = list(self._messages)
            self._messages.clear()
            return taken


class RemoteTrainer:
    """The Ray actor (made remote in `RayWorker`): trains one start of a run, answers polls and stops."""

    def __init__(self) -> None:
        self.outbox = _Outbox()
        self.stop_event = threading.Event()

    def pid(self) -> int:
        return os.getpid()

    def train(self, config: dict, dataset_name: str, run_path: str, save_every_s: float) -> None:
        from .jobs import train_in_child
        from .worker import lower_priority

        lower_priority()
        train_in_child(self.outbox, config, dataset_name, run_path, save_every_s, self.stop_event)

    def poll(self, timeout: float) -> list:
        return self.outbox.take(timeout)

    def stop(self) -> None:
        self.stop_event.set()


class RayWorker:
    """A training on the Ray cluster, with the interface of simplecnn.jobs.WorkerProcess."""

    @property
    def starting_text(self) -> str:
        return "Starting on a Ray worker…" if self.placed else WAITING_TEXT

    def __init__(self) -> None:
        self.ray = connect()
        remote = self.ray.remote(RemoteTrainer)
        self.actor = remote.options(num_cpus=_number(CPUS_ENV, 2), num_gpus=_number(GPUS_ENV, 0),
                                    max_concurrency=3, max_restarts=0).remote()
        self._inbox: collections.deque = collections.deque()
        self._poll = None
        self.placed = False  # the actor answered once: Ray found it a place
        self.pid = None

    def send(self, message) -> None:
        if message == "stop":
            self.actor.stop.remote()
        else:  # (config, dataset name, run folder, seconds between saves)
            self._task = self.actor.train.remote(*message)

    def receive(self, timeout: float):
        """The next report, or None (also while Ray has not placed the actor); EOFError once it is gone."""
        if self._inbox:
            return self._inbox.popleft()
        if self._poll is None:
            self._poll = self.actor.poll.remote(timeout)
        ready, _ = self.ray.wait([self._poll], timeout=timeout + 1.0)
        if not ready:
            return None
        poll, self._poll = self._poll, None
        try:
            messages = self.ray.get(poll)
        except self.ray.exceptions.RayError as exc:  # the actor (its worker process, its node) died
            raise EOFError(str(exc)) from exc
        if not self.placed:
            self.placed = True
            self.pid = self.ray.get(self.actor.pid.remote())  # where it runs (same machine: a local pid)
        self._inbox.extend(messages)
        return self._inbox.popleft() if self._inbox else None

    def exit_code(self) -> None:
        return None

    def close(self) -> None:
        try:
            self.ray.kill(self.actor)  # frees its CPUs for the next run in Ray's queue
        except Exception:
            pass
