import os
import signal
import time

import pytest

from simplecnn.jobs import TrainingJob, TrainingScheduler
from simplecnn.training import TrainConfig


def wait_for(cond, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_queue_positions_stop_and_resume(mnist):
    sched = TrainingScheduler(1)
    a = TrainingJob(TrainConfig(epochs=2, subset=3000, log_every=2), mnist, sched)
    b = TrainingJob(TrainConfig(epochs=1, subset=500, log_every=2), mnist, sched)
    c = TrainingJob(TrainConfig(epochs=1, subset=500, log_every=2), mnist, sched)
    assert a.start() and b.start() and c.start()
    assert not a.start()  # start pressed twice
    assert wait_for(lambda: a.snapshot().status == "running")
    assert wait_for(lambda: b.snapshot().queue_position == 1 and c.snapshot().queue_position == 2)
    assert c.stop()  # leaves the queue without training
    assert wait_for(lambda: c.snapshot().status == "stopped")
    assert wait_for(lambda: a.snapshot().latest is not None)
    assert a.stop()
    a.stop()  # stop pressed twice is harmless
    a.join(30)
    snap = a.snapshot()
    assert snap.status == "stopped" and snap.can_resume and not a.thread_alive
    b.join(60)
    assert b.snapshot().status == "finished"
    assert a.resume()
    a.join(120)
    snap = a.snapshot()
    assert snap.status == "finished" and snap.epoch == 2 and a.epochs_done == 2
    assert len(snap.history.epochs) == 2
    m1, m2 = a.model(epoch=1), a.model()
    assert not m2.training and not all((p1 == p2).all() for p1, p2 in zip(m1.parameters(), m2.parameters()))


def test_missing_heartbeat_cancels_the_job(mnist):
    job = TrainingJob(TrainConfig(epochs=5, subset=5000, log_every=1), mnist, TrainingScheduler(1),
                      heartbeat_timeout=0.5)
    job.start()
    job.join(60)
    snap = job.snapshot()
    assert snap.status == "cancelled" and "closed" in snap.message
    assert not job.thread_alive


def test_divergence_reaches_the_snapshot(mnist):
    job = TrainingJob(TrainConfig(epochs=1, subset=1000, learning_rate=10.0, log_every=1), mnist, TrainingScheduler(1))
    job.start()
    job.join(60)
    assert job.snapshot().status == "diverged" and "lower the learning rate" in job.snapshot().message


def test_training_runs_in_its_own_process_that_ends_with_the_job(mnist):
    job = TrainingJob(TrainConfig(epochs=50, subset=2000, log_every=1), mnist, TrainingScheduler(1))
    assert job.start()
    assert wait_for(lambda: job.snapshot().latest is not None)
    pid = job.process_id
    assert pid is not None and pid != os.getpid()
    os.kill(pid, 0)  # alive
    with open(f"/proc/{pid}/stat") as f:  # field 19: niceness; the web server's users come first
        child_nice = int(f.read().rsplit(")", 1)[1].split()[16])
    assert child_nice == min(19, os.nice(0) + 10)
    weights_before = job.weights_version
    assert wait_for(lambda: job.weights_version > weights_before)  # the child publishes its weights
    assert job.stop()
    job.join(60)
    assert job.snapshot().status == "stopped" and job.process_id is None and not job.thread_alive
    with pytest.raises(ProcessLookupError):  # reaped: its memory is back
        os.kill(pid, 0)


def test_a_killed_training_process_is_reported_not_hidden(mnist):
    job = TrainingJob(TrainConfig(epochs=50, subset=2000, log_every=1), mnist, TrainingScheduler(1))
    assert job.start()
    assert wait_for(lambda: job.snapshot().latest is not None)
    os.kill(job.process_id, signal.SIGKILL)
    job.join(60)
    snap = job.snapshot()
    assert snap.status == "failed" and "ended unexpectedly" in snap.message
