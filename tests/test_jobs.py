"""Training jobs on stored runs: queue, stop/resume, a process per run, and nothing lost to a crash."""
import os
import signal

import pytest
import torch

from simplecnn.classroom import Classroom
from simplecnn.jobs import TrainingScheduler, keeps_epoch
from simplecnn.runstore import RunStore, learner_key
from simplecnn.training import TrainConfig
from tests.helpers import wait_for


@pytest.fixture
def room(tmp_path):
    room = Classroom(RunStore(tmp_path / "runs"), TrainingScheduler(1), watch_every_s=0)
    yield room
    room.close()


def learner(n: int) -> str:
    return learner_key(f"{n:032x}")


def test_queue_positions_stop_and_resume(room):
    a = room.start_run(learner(1), TrainConfig(epochs=2, subset=3000, log_every=2), "mnist", 10)
    b = room.start_run(learner(2), TrainConfig(epochs=1, subset=500, log_every=2), "mnist", 10)
    c = room.start_run(learner(3), TrainConfig(epochs=1, subset=500, log_every=2), "mnist", 10)
    assert not a.start()  # start pressed twice
    assert wait_for(lambda: a.snapshot().status == "running")
    assert wait_for(lambda: b.snapshot().queue_position == 1 and c.snapshot().queue_position == 2)
    assert b.waiting and c.waiting  # the pages refresh waiting runs less often (dashboard.status)
    assert wait_for(lambda: a.snapshot().latest is not None) and not a.waiting
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
    assert room.resume(learner(1), a.id) is a
    a.join(120)
    snap = a.snapshot()
    assert snap.status == "finished" and snap.epoch == 2 and a.saved_epochs() == [1, 2]
    assert len(snap.history.epochs) == 2
    m1, m2 = a.model(epoch=1), a.model()
    assert not m2.training and not all((p1 == p2).all() for p1, p2 in zip(m1.parameters(), m2.parameters()))


def test_divergence_reaches_the_snapshot(room):
    job = room.start_run(learner(1), TrainConfig(epochs=1, subset=1000, learning_rate=10.0, log_every=1), "mnist", 10)
    job.join(60)
    assert job.snapshot().status == "diverged" and "lower the learning rate" in job.snapshot().message
    assert not job.snapshot().can_resume


def test_training_runs_in_its_own_process_that_ends_with_the_job(room):
    job = room.start_run(learner(1), TrainConfig(epochs=50, subset=2000, log_every=1), "mnist", 10)
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


def test_a_killed_training_process_leaves_a_resumable_run(room, monkeypatch):
    monkeypatch.setenv("SIMPLECNN_SAVE_EVERY", "1")
    job = room.start_run(learner(1), TrainConfig(epochs=2, subset=12000, log_every=5), "mnist", 10)
    assert wait_for(lambda: job.run.state_path.exists() and job.snapshot().batch >= 10, timeout=90)
    saved = torch.load(job.run.state_path, weights_only=True)
    os.kill(job.process_id, signal.SIGKILL)
    job.join(60)
    snap = job.snapshot()
    assert snap.status == "interrupted" and snap.can_resume
    assert "ended unexpectedly" in snap.message and "press Resume" in snap.message
    assert snap.batch >= saved["batch"] > 0  # the curves went back to the last save, not to zero
    assert room.resume(learner(1), job.id) is job
    job.join(180)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.epoch == 2 and job.saved_epochs() == [1, 2]
    assert len(snap.history.epochs) == 2
    assert not job.run.state_path.exists() and job.run.latest_path.exists()  # nothing left to resume


def test_a_stop_during_the_last_validation_keeps_the_epoch(room, monkeypatch):
    """A stop that lands while the final epoch is being validated must not lose that epoch (it did:
    the epoch's weights never reached the server, the Draw page's epoch labels shifted, and the run
    said "Press Resume" with nothing left to resume)."""
    import threading

    from simplecnn import evaluation
    from simplecnn.jobs import train_in_child

    run = room.store.create(learner(1), {"kind": "trained", "label": "x", "dataset": "mnist", "num_classes": 10,
                                         "config": {}, "status": "new"})
    config = TrainConfig(epochs=1, subset=300, batch_size=100, log_every=1)
    stop = threading.Event()
    validate = evaluation.evaluate_loss_accuracy

    def validate_and_get_stopped(*args, **kwargs):
        stop.set()  # the learner presses Stop while the epoch's validation runs
        return validate(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_loss_accuracy", validate_and_get_stopped)
    sent = []

    class Pipe:  # stands in for the connection to the web server
        def send(self, message):
            sent.append(message)

        def close(self):
            pass

    train_in_child(Pipe(), config.to_dict(), "mnist", str(run.path), 60.0, stop)
    kinds = [m[0] for m in sent]
    assert stop.is_set() and "epoch" in kinds and kinds[-1] == "done"
    _, history, epoch, batch = sent[-1]
    assert history["status"] == "finished" and epoch == 1 and batch == 0
    assert len(history["epochs"]) == 1 and run.saved_epochs() == [1]


def test_a_stop_saves_the_exact_position(room):
    job = room.start_run(learner(1), TrainConfig(epochs=2, subset=12000, log_every=1), "mnist", 10)
    assert wait_for(lambda: job.snapshot().batch >= 5, timeout=90)
    job.stop()
    job.join(60)
    snap = job.snapshot()
    saved = torch.load(job.run.state_path, weights_only=True)
    progress = job.run.read_progress()
    assert snap.status == "stopped" and (saved["epoch"], saved["batch"]) == (snap.epoch, snap.batch)
    assert (progress["epoch"], progress["batch"]) == (snap.epoch, snap.batch)
    assert f"batch {snap.batch})" in snap.message


def test_per_epoch_weights_are_thinned_to_a_bounded_number():
    kept = [e for e in range(1, 101) if keeps_epoch(e, 100)]
    assert len(kept) == 20 and kept[-1] == 100
    assert [e for e in range(1, 8) if keeps_epoch(e, 7)] == list(range(1, 8))
    assert all(len([e for e in range(1, n + 1) if keeps_epoch(e, n)]) <= 20 for n in range(1, 1001))
