"""Training through a Ray cluster: a real local Ray head, real runs, a worker killed mid-run.

Ray's processes talk to each other over the machine's own network address, not only loopback; the
tests keep every packet on loopback by running inside a network namespace of their own that has
nothing but `lo`. The outer test makes the namespace and runs this module's inner tests in it (as
`root`, which CI is); the inner tests start `ray start --head --block` themselves and stop it by PID.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.helpers import wait_for

INNER = os.environ.get("SIMPLECNN_RAY_INNER") == "1"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the Ray tests must run on CI)")
    pytest.skip(reason)


@pytest.mark.skipif(INNER, reason="this is the outer test")
def test_the_ray_backend_in_a_loopback_only_network_namespace(tmp_path):
    try:
        import ray  # noqa: F401
    except ImportError:
        _unavailable("ray is not installed (requirements-dev.txt pins it)")
    if os.geteuid() != 0 or not shutil.which("ip"):
        _unavailable("making a network namespace needs root and iproute2's `ip`")
    namespace = f"simplecnn-ray-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"], check=True)
        env = {**os.environ, "SIMPLECNN_RAY_INNER": "1", "RAY_USAGE_STATS_ENABLED": "0",
               "SIMPLECNN_RUNS_DIR": str(tmp_path / "runs")}
        result = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-m", "pytest", "-q", "-x",
                                 "-p", "no:cacheprovider", "tests/test_ray_backend.py"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
        print(result.stdout[-6000:], result.stderr[-3000:])
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        assert result.stdout.strip().splitlines()[-1].startswith("5 passed, 1 skipped")  # only this outer test skips
    finally:
        subprocess.run(["ip", "netns", "delete", namespace], check=False)


# -- inside the namespace ----------------------------------------------------------------------------------
inner = pytest.mark.skipif(not INNER, reason="runs inside the outer test's network namespace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """`ray start --head` with 2 CPUs on loopback; SIMPLECNN_RAY_ADDRESS points at it."""
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    log = open(temp / "head.log", "wb")
    head = subprocess.Popen(["ray", "start", "--head", "--block", "--num-cpus", "2", "--include-dashboard=false",
                             "--disable-usage-stats", "--port", str(port), "--temp-dir", str(temp)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for(lambda: b"ray start --address" in (temp / "head.log").read_bytes(), timeout=90), \
            (temp / "head.log").read_text(errors="replace")
        os.environ["SIMPLECNN_RAY_ADDRESS"] = f"127.0.0.1:{port}"
        yield port
    finally:
        os.environ.pop("SIMPLECNN_RAY_ADDRESS", None)
        try:
            import ray
            ray.shutdown()
        except Exception:
            pass
        os.killpg(head.pid, signal.SIGTERM)  # the head and the daemons it started, by its process group
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)
        log.close()


@pytest.fixture
def room(ray_cluster, tmp_path):
    from simplecnn.classroom import Classroom
    from simplecnn.runstore import RunStore

    room = Classroom(RunStore(tmp_path / "runs"), watch_every_s=0)
    assert room.make_worker is not None and room.make_worker.__name__ == "RayWorker"
    yield room
    room.close()


def learner(n: int) -> str:
    from simplecnn.runstore import learner_key
    return learner_key(f"{n:032x}")


def config(**changes):
    from simplecnn.training import TrainConfig
    return TrainConfig(**{"epochs": 2, "subset": 20000, "log_every": 5, **changes})


@inner
def test_start_progress_stop_resume_finish_on_ray(room):
    job = room.start_run(learner(1), config(), "mnist", 10)
    assert wait_for(lambda: job.snapshot().latest is not None, timeout=120), job.snapshot()
    version = job.weights_version
    assert wait_for(lambda: job.weights_version > version, timeout=30)  # weights published about once a second
    assert job.process_id and job.process_id != os.getpid()
    job.stop()
    job.join(60)
    snap = job.snapshot()
    assert snap.status == "stopped" and snap.can_resume and snap.batch > 0
    assert room.resume(learner(1), job.id) is job
    job.join(300)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.epoch == 2 and job.saved_epochs() == [1, 2]
    assert snap.history.images_seen == 2 * 16_000  # the stop and resume lost and repeated nothing


@inner
def test_a_run_waits_for_a_free_worker_while_the_cluster_is_full(room):
    first = room.start_run(learner(1), config(epochs=5), "mnist", 10)
    assert wait_for(lambda: first.snapshot().latest is not None, timeout=120)
    second = room.start_run(learner(2), config(epochs=1, subset=2000), "mnist", 10)
    time.sleep(5)
    snap = second.snapshot()
    assert snap.status == "running" and snap.latest is None  # handed to Ray, which has no 2 CPUs free
    assert snap.phase == "Waiting for a free worker in the Ray cluster…"
    assert second.waiting and not first.waiting  # its pages refresh every 3 s, not every second
    first.stop()
    first.join(60)
    second.join(180)  # Ray places it as soon as the first actor is gone
    assert second.snapshot().status == "finished"


@inner
def test_a_killed_ray_worker_leaves_a_resumable_run(room, monkeypatch):
    monkeypatch.setenv("SIMPLECNN_SAVE_EVERY", "1")
    job = room.start_run(learner(1), config(), "mnist", 10)
    # Killed once a save on disk holds batch 40 or later (on a loaded machine the saves can lag the
    # live reports by more than their 1 s period).
    assert wait_for(lambda: job.run.state_path.exists() and (job.run.read_progress() or {}).get("batch", 0) >= 40,
                    timeout=180)
    os.kill(job.process_id, signal.SIGKILL)  # the actor's worker process, as an OOM kill would
    job.join(60)
    snap = job.snapshot()
    assert snap.status == "interrupted" and snap.can_resume and snap.batch >= 40, snap.message
    assert room.resume(learner(1), job.id) is job
    job.join(300)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.history.images_seen == 2 * 16_000


@inner
def test_an_unreachable_cluster_says_so_in_seconds(tmp_path):
    script = ("import sys, time; sys.path.insert(0, sys.argv[1])\n"
              "from simplecnn.classroom import Classroom\n"
              "from simplecnn.runstore import RunStore, learner_key\n"
              "from simplecnn.training import TrainConfig\n"
              "room = Classroom(RunStore(sys.argv[2]), watch_every_s=0)\n"
              "job = room.start_run(learner_key('1' * 32), TrainConfig(epochs=1, subset=500), 'mnist', 10)\n"
              "job.join(60)\n"
              "print(job.snapshot().status, '|', job.snapshot().message)\n")
    env = {**os.environ, "SIMPLECNN_RAY_ADDRESS": f"127.0.0.1:{_free_port()}"}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script, str(ROOT), str(tmp_path / "runs")], env=env,
                         capture_output=True, text=True, timeout=120)
    status, message = out.stdout.strip().splitlines()[-1].split(" | ", 1)
    assert status == "failed" and "cannot be reached" in message and "drawing and the lessons still work" in message
    assert time.monotonic() - started < 60


@inner
def test_the_train_page_trains_on_the_cluster_without_knowing_it(ray_cluster):
    """The same Train page, with SIMPLECNN_RAY_ADDRESS set: it says where runs go, and a run started
    with its Start button trains on the cluster to the end."""
    from tests.helpers import app_runs, new_learner, page_as

    at = page_as(str(ROOT / "pages" / "train.py"), new_learner(), timeout=120).run()
    assert not at.exception
    assert any(f"trainings go to the Ray cluster at `127.0.0.1:{ray_cluster}`" in c.value for c in at.caption)
    at.select_slider(key="train_subset").set_value(1000)
    at.number_input(key="train_epochs").set_value(1)
    at.button[[b.label for b in at.button].index("Start")].click().run()
    assert not at.exception
    (run,) = app_runs(at).values()
    run.job.join(180)
    assert run.job.snapshot().status == "finished", run.job.snapshot().message
    at.run()
    assert not at.exception and any("Finished 1 epoch." in s.value for s in at.success)
