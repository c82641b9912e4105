"""Replay snapshots: the schedule, the bounds, atomic writes, resuming without duplicates, and weights and
numbers checked against independent computations (a separate Trainer stopped at the same step, plain
torch counts and convolutions)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simplecnn import files, snapshots
from simplecnn.jobs import RunSaver
from simplecnn.recorders import RECORDER_FACTORIES, close_recorders
from simplecnn.runstore import RunStore
from simplecnn.snapshots import first_epoch_steps, list_snapshots, recorder_for
from simplecnn.training import BatchEvent, EpochEvent, StopTraining, TrainConfig, Trainer

# 600 images, 20 % held out: 480 training images, 30 batches of 16 per epoch -> steps 0, 1, 3, 10.
CONFIG = TrainConfig(epochs=2, subset=600, batch_size=16, seed=3)
PER_EPOCH = 30
KEY = "ab" * 16


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the tiny batches here gain nothing from two, and on a shared, busy machine
    OpenMP's spinning threads made these tests ten times slower. Results stay bit-identical between the
    recorder and the reference, which run in this same process."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def run(tmp_path):
    return RunStore(tmp_path).create(KEY, {"config": CONFIG.to_dict(), "dataset": "mnist"})


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def reference_weights(dataset, steps: tuple[int, ...]) -> dict[int, dict[str, torch.Tensor]]:
    """An independent in-process Trainer with the same config (no recorder), its weights copied when it
    reports each of `steps` (log_every=1: a report right after every optimizer step), then stopped."""
    copies = {}

    def copy_at(event):
        if isinstance(event, BatchEvent) and event.step in steps:
            copies[event.step] = weights(trainer.model)
            if event.step == max(steps):
                raise StopTraining()

    trainer = Trainer(TrainConfig(**{**CONFIG.to_dict(), "log_every": 1}), dataset=dataset, callbacks=[copy_at])
    if 0 in steps:
        copies[0] = weights(trainer.model)
    if max(steps) > 0:
        trainer.fit()
    assert trainer.step == max(steps)
    return copies


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, mnist):
    """CONFIG trained once with the recorder and the epoch saver: (run, trainer, recorder)."""
    run = RunStore(tmp_path_factory.mktemp("recorded")).create(KEY, {"config": CONFIG.to_dict(), "dataset": "mnist"})
    trainer, recorder = record(run, mnist)
    return run, trainer, recorder


def record(run, dataset, stop_at: int | None = None, state: dict | None = None):
    """Train CONFIG with the snapshot recorder (and the epoch saver) attached; optionally stop at a step."""
    saver = RunSaver(run, CONFIG, every_s=1e9)

    def report(event):
        for r in recorders:
            r.on_event(trainer, event)
        if isinstance(event, EpochEvent):
            saver.save_epoch(trainer)
        if stop_at is not None and isinstance(event, BatchEvent) and event.step >= stop_at:
            raise StopTraining()

    trainer = Trainer(TrainConfig(**{**CONFIG.to_dict(), "log_every": 1}), dataset=dataset, callbacks=[report])
    if state is not None:
        trainer.load_state_dict(state)
    recorders = [recorder_for(trainer, run)]
    trainer.fit()
    close_recorders(recorders, trainer)
    close_recorders(recorders, trainer)  # close is idempotent
    return trainer, recorders[0]


def test_schedule_is_geometric_inside_the_first_epoch():
    assert first_epoch_steps(750) == [0, 1, 3, 10, 30, 100, 300]  # full MNIST at batch size 64
    assert first_epoch_steps(30) == [0, 1, 3, 10]
    assert first_epoch_steps(31) == [0, 1, 3, 10, 30]
    assert first_epoch_steps(1) == [0]
    assert first_epoch_steps(10 ** 9) == [0, 1, 3, 10, 30, 100, 300, 1000]  # capped at MAX_STEP_SNAPSHOTS
    assert len(first_epoch_steps(10 ** 9)) == snapshots.MAX_STEP_SNAPSHOTS


def test_registered_as_a_recorder():
    assert "simplecnn.snapshots:recorder_for" in RECORDER_FACTORIES


def test_snapshot_weights_equal_an_independent_trainer_stopped_there(recorded, mnist):
    run, trainer, recorder = recorded
    assert recorder.written == [0, 1, 3, 10]
    listed = list_snapshots(run)
    assert [(s.step, s.kind) for s in listed] == [(0, "step"), (1, "step"), (3, "step"), (10, "step"),
                                                  (30, "epoch"), (60, "epoch")]
    expected = reference_weights(mnist, (0, 1, 3, 10))
    for snap in listed[:4]:
        recorded_state = torch.load(snap.path, weights_only=True)["state_dict"]
        assert recorded_state.keys() == expected[snap.step].keys()
        for name in expected[snap.step]:
            assert torch.equal(recorded_state[name], expected[snap.step][name]), (snap.step, name)
    # Consecutive snapshots differ: each step moved the weights.
    conv = [torch.load(s.path, weights_only=True)["state_dict"]["conv1.weight"] for s in listed]
    assert all(not torch.equal(a, b) for a, b in zip(conv, conv[1:]))
    # The final epoch snapshot holds the trained model's weights.
    assert torch.equal(conv[-1], trainer.model.conv1.weight.detach())


def test_steps_epochs_and_images_seen(recorded):
    run, trainer, _ = recorded
    listed = list_snapshots(run)
    assert [s.images_seen for s in listed] == [0, 16, 48, 160, 480, 960]
    assert listed[-1].images_seen == trainer.history.images_seen  # counted by the trainer itself
    assert [round(s.epoch, 4) for s in listed] == [0.0, round(1 / 30, 4), 0.1, round(1 / 3, 4), 1.0, 2.0]
    assert listed[0].label() == "step 0 · before training"
    assert listed[-1].label() == "step 60 · end of epoch 2 · 960 images"
    # Without the recorder's index (a run from before replay), run.json gives the same placement.
    index = run.snapshots_path / snapshots.INDEX_NAME
    saved = index.read_bytes()
    index.unlink()
    try:
        assert list_snapshots(run) == listed
    finally:
        index.write_bytes(saved)


def test_resume_takes_only_the_steps_not_yet_passed(run, mnist):
    first, rec1 = record(run, mnist, stop_at=5)
    assert first.history.status == "stopped" and first.step == 5
    assert rec1.written == [0, 1, 3]
    mtimes = {p.name: p.stat().st_mtime_ns for p in run.snapshots_path.glob("step-*.pt")}
    second, rec2 = record(run, mnist, state=first.state_dict())
    assert rec2.written == [10]  # nothing before step 5 again
    assert {p.name: p.stat().st_mtime_ns for p in run.snapshots_path.glob("step-*.pt")
            if p.name != "step-0000010.pt"} == mtimes  # untouched
    assert [s.step for s in list_snapshots(run)] == [0, 1, 3, 10, 30, 60]
    recorded_state = torch.load(run.snapshot_path(10), weights_only=True)["state_dict"]
    expected = reference_weights(mnist, (10,))[10]
    assert all(torch.equal(recorded_state[k], expected[k]) for k in expected)
    # A run resumed after its first epoch records nothing more.
    late = Trainer(CONFIG, dataset=mnist)
    late.load_state_dict(second.state_dict())
    assert recorder_for(late, run) is None


def test_count_bound(run, mnist, monkeypatch):
    monkeypatch.setattr(snapshots, "MAX_STEP_SNAPSHOTS", 2)
    _, recorder = record(run, mnist, stop_at=11)
    assert recorder.written == [0, 1]
    assert sorted(p.name for p in run.snapshots_path.glob("step-*.pt")) == ["step-0000000.pt", "step-0000001.pt"]


def test_byte_bound(run, mnist, monkeypatch):
    monkeypatch.setattr(snapshots, "MAX_SNAPSHOT_BYTES", 3 * snapshots.CHECKPOINT_BYTES_ESTIMATE)
    _, recorder = record(run, mnist, stop_at=11)
    assert recorder.written == [0, 1, 3]
    total = sum(p.stat().st_size for p in run.snapshots_path.iterdir())
    assert total <= snapshots.MAX_SNAPSHOT_BYTES


def test_a_failed_write_leaves_no_partial_file_and_training_goes_on(run, mnist, monkeypatch):
    real_replace = files.os.replace

    def failing_replace(src, dst):
        if "step-" in str(dst):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", failing_replace)
    trainer, recorder = record(run, mnist)
    assert trainer.history.status == "finished"
    assert recorder.written == [] and recorder.error and "No space" in recorder.error
    leftovers = [p.name for p in run.snapshots_path.iterdir() if p.name != snapshots.INDEX_NAME]
    assert leftovers == []  # neither a snapshot nor a temporary file
    assert [s.kind for s in list_snapshots(run)] == ["epoch", "epoch"]


def test_replay_images_are_the_first_of_each_class(mnist):
    idx = snapshots.replay_indices(mnist.test_labels, per_class=7)
    expected = []
    for c in range(10):
        expected += [i for i, y in enumerate(mnist.test_labels.tolist()) if y == c][:7]
    assert idx.tolist() == sorted(expected)


def test_confusion_and_reading_match_plain_torch(recorded, mnist):
    run = recorded[0]
    snap = list_snapshots(run)[2]  # step 3: still mostly wrong, so the matrix has off-diagonal counts
    model = snapshots.load_snapshot(snap)
    idx = snapshots.replay_indices(mnist.test_labels)
    images, labels = mnist.test_images[idx], mnist.test_labels[idx]
    view = snapshots.snapshot_view(model, images, labels, 10)
    with torch.no_grad():
        predicted = model.eval()(images.float().div(255.0).unsqueeze(1)).argmax(1).numpy()
    counts = np.zeros((10, 10), dtype=np.int64)
    np.add.at(counts, (labels.numpy(), predicted), 1)
    assert np.array_equal(view.confusion, counts)
    assert counts.sum(1).tolist() == [100] * 10
    assert view.accuracy == pytest.approx(100.0 * (predicted == labels.numpy()).mean())
    state = torch.load(snap.path, weights_only=True)["state_dict"]
    assert np.array_equal(view.filters, state["conv1.weight"][:, 0].numpy())

    x = mnist.test_images[:1].float().div(255.0).unsqueeze(1)  # (1, 1, 28, 28)
    maps, probs = snapshots.snapshot_reading(model, x)
    expected_maps = F.conv2d(x, state["conv1.weight"], state["conv1.bias"])[0]  # (32, 24, 24)
    assert maps.shape == (32, 24, 24)
    assert np.allclose(maps, expected_maps.numpy(), atol=1e-5)
    with torch.no_grad():
        expected_probs = F.softmax(model(x), dim=1)[0].numpy()
    assert np.allclose(probs, expected_probs, atol=1e-6) and probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_relative_change_is_the_norm_ratio(recorded):
    run = recorded[0]
    listed = list_snapshots(run)
    w0 = torch.load(listed[0].path, weights_only=True)["state_dict"]["conv1.weight"][:, 0].double()
    w = torch.load(listed[-1].path, weights_only=True)["state_dict"]["conv1.weight"][:, 0].double()
    expected = float(torch.sqrt(((w - w0) ** 2).sum()) / torch.sqrt((w0 ** 2).sum()))
    assert snapshots.relative_change(w.float().numpy(), w0.float().numpy()) == pytest.approx(expected, rel=1e-5)
    assert snapshots.relative_change(w0.numpy(), w0.numpy()) == 0.0


def test_neighbour_correlation_against_a_plain_pearson():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(32, 5, 5))
    pairs = [(f[r, c], f[r, c + 1]) for f in noise for r in range(5) for c in range(4)]
    pairs += [(f[r, c], f[r + 1, c]) for f in noise for r in range(4) for c in range(5)]
    x, y = (np.array(v) for v in zip(*pairs))
    pearson = ((x - x.mean()) * (y - y.mean())).sum() / np.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert snapshots.neighbour_correlation(noise) == pytest.approx(pearson, abs=1e-12)
    assert abs(pearson) < 0.1  # noise: neighbours unrelated
    ramp = np.tile(np.add.outer(np.arange(5.0), np.arange(5.0)), (3, 1, 1)) * rng.normal(size=(3, 1, 1))
    assert snapshots.neighbour_correlation(ramp) > 0.7  # smooth ramps: neighbours agree
