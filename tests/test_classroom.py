"""The run store and the classroom: runs on disk per learner, fair limits, recovery after a restart."""
import json
import os
import subprocess
import sys
import time

import pytest

from simplecnn.classroom import Classroom, Limits, RunRefused, split_sizes
from simplecnn.jobs import TrainingScheduler
from simplecnn.files import atomic_write_bytes
from simplecnn.runstore import RunStore, learner_key
from simplecnn.training import TrainConfig
from tests.conftest import ROOT
from tests.helpers import SlotHolder, wait_for


def learner(n: int) -> str:
    return learner_key(f"{n:032x}")


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


@pytest.fixture
def room(store):
    room = Classroom(store, TrainingScheduler(1), watch_every_s=0)
    yield room
    room.close()


def hold_slot(room):
    holder = SlotHolder()
    assert room.scheduler.acquire(holder)
    return holder


# -- the store -----------------------------------------------------------------------------------------
def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_bytes(path, b"old")

    class Boom(bytes):
        pass

    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # fails inside the write
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary file left behind


def test_learner_token_never_appears_on_disk(store):
    token = "ab" * 16
    key = learner_key(token)
    store.touch_learner(key)
    assert token not in str(store.learner_dir(key)) and len(key) == 32


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing", "wrong version", "huge", "not an object"])
def test_a_damaged_run_gives_a_message_and_leaves_the_others(store, damage):
    good = store.create(learner(1), {"kind": "trained", "label": "good", "config": {}})
    bad = store.create(learner(1), {"kind": "trained", "label": "bad", "config": {}})
    text = bad.meta_path.read_text()
    if damage == "truncated":
        bad.meta_path.write_text(text[: len(text) // 2])
    elif damage == "garbage":
        bad.meta_path.write_bytes(os.urandom(200))
    elif damage == "missing":
        bad.meta_path.unlink()
    elif damage == "wrong version":
        bad.meta_path.write_text(json.dumps({**json.loads(text), "version": 99}))
    elif damage == "huge":
        with open(bad.meta_path, "wb") as f:
            f.truncate(17 * 1024 * 1024)
    else:
        bad.meta_path.write_text("[1, 2, 3]")
    records = store.records(learner(1))
    assert [r.id for r in records] == [good.run_id, bad.run_id]
    assert records[0].error is None and records[0].meta["label"] == "good"
    assert records[1].error.startswith(f"{bad.run_id} cannot be read: run.json")


def test_a_damaged_run_is_listed_with_its_error_and_can_be_deleted(room):
    run = room.store.create(learner(1), {"kind": "trained", "label": "x", "config": {"epochs": "many"},
                                         "num_classes": 10, "status": "finished"})
    (view,) = room.runs(learner(1))
    assert view.error.endswith("(got 'many').") and "epochs" in view.error.lower() and view.job is None
    room.delete(learner(1), run.run_id)
    assert room.runs(learner(1)) == [] and not run.path.exists()


def test_learners_never_see_each_others_runs(room):
    holder = hold_slot(room)
    try:
        job = room.start_run(learner(1), TrainConfig(epochs=1, subset=500), "mnist", 10)
        assert [v.id for v in room.runs(learner(1))] == [job.id]
        assert room.runs(learner(2)) == [] and room.run(learner(2), job.id) is None
        assert room.active_job(learner(2)) is None
        with pytest.raises(RunRefused):
            room.resume(learner(2), job.id)
        assert not room.stop(learner(2), job.id) and job.active
    finally:
        room.scheduler.release(holder)
        job.stop()
        job.join(60)


# -- fair limits ---------------------------------------------------------------------------------------
def test_one_queued_or_running_run_per_learner(room):
    holder = hold_slot(room)
    try:
        job = room.start_run(learner(1), TrainConfig(epochs=1, subset=500), "mnist", 10)
        with pytest.raises(RunRefused, match="one run per learner"):
            room.start_run(learner(1), TrainConfig(epochs=1, subset=500), "mnist", 10)
        other = room.start_run(learner(2), TrainConfig(epochs=1, subset=500), "mnist", 10)  # others may queue
        assert other.snapshot().queue_position == 2
        other.stop()
    finally:
        room.scheduler.release(holder)
        job.stop()
        job.join(60)
        other.join(60)
    assert len(room.runs(learner(1))) == 1  # the refused start left nothing behind


def test_the_budget_refuses_maximal_settings_with_what_to_change(room):
    config = TrainConfig(epochs=100, subset=None)  # the Train page's maximum: 48,000 x 100
    with pytest.raises(RunRefused) as refusal:
        room.start_run(learner(1), config, "mnist", 10)
    message = str(refusal.value)
    assert "4,800,000 images (48,000 × 100 epochs)" in message
    assert f"at most {600_000 // 48_000} epochs" in message
    assert room.runs(learner(1)) == []
    room.check_budget(TrainConfig(epochs=12, subset=None))  # 576,000 fits


def test_split_sizes_match_the_trainer():
    from simplecnn.data import split_indices
    for subset, val in [(None, 0.2), (5000, 0.2), (777, 0.35), (10, 0.05)]:
        train, valid = split_indices(60_000, val, 0, subset)
        assert split_sizes(TrainConfig(subset=subset, validation_split=val)) == (len(train), len(valid))


def test_stored_runs_and_disk_are_capped_per_learner(store):
    room = Classroom(store, TrainingScheduler(1), Limits(max_runs_per_learner=2), watch_every_s=0)
    for _ in range(2):
        store.create(learner(1), {"kind": "uploaded", "label": "u", "config": {}})
    with pytest.raises(RunRefused, match="2 stored runs"):
        room.start_run(learner(1), TrainConfig(epochs=1, subset=500), "mnist", 10)
    with pytest.raises(RunRefused, match="delete one"):
        room.add_upload(learner(1), b"x", "u", "mnist", 10, {})
    room.limits = Limits(max_runs_per_learner=10, max_learner_bytes=1000)
    atomic_write_bytes(store.learner_dir(learner(1)) / "run-1" / "latest.pt", b"x" * 2000)
    with pytest.raises(RunRefused, match="MB of disk"):
        room.start_run(learner(1), TrainConfig(epochs=1, subset=500), "mnist", 10)


def test_estimate_uses_the_measured_speed(room):
    config = TrainConfig(epochs=2, subset=5000)
    room.speed = 1000.0
    slow = room.estimate_seconds(config)
    room.speed = 2000.0
    fast = room.estimate_seconds(config)
    assert slow > fast > 4000 / 2000  # 4,000 training images x 2 epochs at 2,000/s, plus validation and start


# -- the teacher's controls ------------------------------------------------------------------------------
def test_teacher_moves_a_run_to_the_front_and_changes_concurrency(room):
    holder = hold_slot(room)
    jobs = [room.start_run(learner(i), TrainConfig(epochs=1, subset=500), "mnist", 10) for i in range(3)]
    try:
        assert [j.snapshot().queue_position for j in jobs] == [1, 2, 3]
        assert room.scheduler.move_to_front(jobs[2])
        assert [j.snapshot().queue_position for j in jobs] == [2, 3, 1]
        assert [job.id for _, job in room.live_jobs()] == [jobs[2].id, jobs[0].id, jobs[1].id]
        room.set_max_concurrent(3)  # the held slot + two more: the first two in the queue start
        assert wait_for(lambda: sum(j.snapshot().status == "running" for j in jobs) == 2, timeout=10)
        assert jobs[1].snapshot().queue_position == 1
    finally:
        for job in jobs:
            job.stop()
        room.scheduler.release(holder)
        for job in jobs:
            job.join(60)
    fresh = Classroom(room.store, TrainingScheduler(1), watch_every_s=0)  # kept across a restart
    assert fresh.scheduler.max_concurrent == 3


def test_abandoned_runs_are_stopped_and_resumable_never_lost(room):
    holder = hold_slot(room)
    try:
        job = room.start_run(learner(1), TrainConfig(epochs=1, subset=500), "mnist", 10)
        room.upkeep(now=time.time() + 60)  # a minute without a visit: nothing happens
        assert job.active
        room.upkeep(now=time.time() + room.limits.abandon_seconds + 60)
        job.join(30)
        snap = job.snapshot()
        assert snap.status == "stopped" and snap.can_resume and "nothing is lost" in snap.message
    finally:
        room.scheduler.release(holder)
        job.join(60)


# -- a restart ---------------------------------------------------------------------------------------------
def test_runs_left_training_by_a_killed_server_come_back_interrupted(store, tmp_path):
    """A server (here: a plain Python process with a Classroom) is SIGKILLed while a run trains; its
    training process saves and ends; a new server lists the run as interrupted at its saved position,
    and Resume finishes it."""
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1])\n"
        "from simplecnn.classroom import Classroom\n"
        "from simplecnn.runstore import RunStore, learner_key\n"
        "from simplecnn.training import TrainConfig\n"
        "room = Classroom(RunStore(sys.argv[2]), watch_every_s=0)\n"
        "job = room.start_run(learner_key('0' * 32), TrainConfig(epochs=2, subset=20000, log_every=5), 'mnist', 10)\n"
        "while job.snapshot().batch < 40: time.sleep(0.05)\n"
        "print('training', flush=True)\n"
        "time.sleep(600)\n")
    env = {**os.environ, "SIMPLECNN_SAVE_EVERY": "1"}
    server = subprocess.Popen([sys.executable, "-c", script, str(ROOT), str(store.root)], stdout=subprocess.PIPE,
                              env=env, text=True)
    try:
        assert server.stdout.readline().strip() == "training"
        time.sleep(1.5)
        server.kill()  # SIGKILL: no chance to clean up
        server.wait(10)
    finally:
        server.kill()
    key = learner_key("0" * 32)
    run = store.run_dirs(key)[0]
    assert wait_for(lambda: run.read_meta().get("status") == "running" and
                    run.read_progress().get("batch", 0) >= 40, timeout=30)
    time.sleep(3)  # the orphaned training process saw its pipe close, saved and ended
    room = Classroom(store, TrainingScheduler(1), watch_every_s=0)
    assert room.recovered == 1
    (view,) = room.runs(key)
    snap = view.snapshot()
    assert snap.status == "interrupted" and snap.can_resume
    assert f"interrupted at epoch 1, batch {snap.batch}" in snap.message and snap.batch >= 40
    assert len(snap.history.steps) > 0
    job = room.resume(key, view.id)
    job.join(180)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.epoch == 2 and job.saved_epochs() == [1, 2]
    assert snap.history.images_seen == 2 * 16_000  # every image trained once per epoch: no batch twice, none lost
    assert room.speed is not None and room.speed > 100  # measured here, for the Train page's estimates
    assert Classroom(store, TrainingScheduler(1), watch_every_s=0).speed == pytest.approx(room.speed)


def test_a_new_server_lists_finished_runs_with_their_models(room):
    job = room.start_run(learner(1), TrainConfig(epochs=2, subset=500), "mnist", 10)
    job.join(120)
    before = job.model()
    fresh = Classroom(room.store, TrainingScheduler(1), watch_every_s=0)
    (view,) = fresh.runs(learner(1))
    snap = view.snapshot()
    assert snap.status == "finished" and snap.epoch == 2 and len(snap.history.epochs) == 2
    after = view.job.model()
    assert all((a == b).all() for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    assert view.job.saved_epochs() == [1, 2] and view.job.model(epoch=1) is not None


# -- two web servers on one run store --------------------------------------------------------------------
def test_a_run_started_on_one_server_is_seen_stopped_and_resumed_on_another(store):
    """Two web servers (two classrooms) share one run store: a learner's link works on either."""
    first = Classroom(store, TrainingScheduler(1), watch_every_s=0)
    second = Classroom(store, TrainingScheduler(1), watch_every_s=0)
    job = first.start_run(learner(1), TrainConfig(epochs=2, subset=20000, log_every=5), "mnist", 10)
    assert wait_for(lambda: job.snapshot().batch >= 10, timeout=90)
    seen = second.active_job(learner(1))  # the other server finds it from the files alone
    assert seen is not None and seen is not job and seen.id == job.id and seen.snapshot().status == "running"
    with pytest.raises(RunRefused, match="one run per learner"):
        second.start_run(learner(1), TrainConfig(epochs=1, subset=500), "mnist", 10)
    assert second.stop(learner(1), job.id)  # a Stop pressed on the other server
    job.join(60)
    assert job.snapshot().status == "stopped"
    assert wait_for(lambda: seen.snapshot().status == "stopped", timeout=10)
    stopped_at = seen.snapshot().batch
    assert stopped_at >= 10
    assert second.resume(learner(1), job.id) is seen  # resumed there; trains on that server
    assert wait_for(lambda: job.snapshot().status == "running", timeout=30)  # and the first server follows
    seen.join(180)
    assert seen.snapshot().status == "finished" and seen.snapshot().history.images_seen == 2 * 16_000
    assert wait_for(lambda: job.snapshot().status == "finished", timeout=10)
    assert job.snapshot().epoch == 2 and first.active_job(learner(1)) is None


def test_a_queued_run_leaves_the_queue_when_another_server_stops_it(store):
    first = Classroom(store, TrainingScheduler(1), watch_every_s=0)
    second = Classroom(store, TrainingScheduler(1), watch_every_s=0)
    holder = hold_slot(first)
    try:
        job = first.start_run(learner(1), TrainConfig(epochs=1, subset=500), "mnist", 10)
        assert job.snapshot().status == "queued"
        assert second.stop(learner(1), job.id, "Stopped from the other server.")
        assert wait_for(lambda: job.snapshot().status == "stopped", timeout=10)
        assert job.snapshot().message == "Stopped from the other server." and first.scheduler.waiting == 0
        assert job.snapshot().can_resume
    finally:
        first.scheduler.release(holder)
        job.join(30)
