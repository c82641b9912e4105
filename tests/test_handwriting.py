"""Teach the model your handwriting: the drawing store, the mixed training set, and an honest fine-tune.

The fine-tune test goes through the queue's own path (Classroom -> TrainingJob -> `python -m
simplecnn.worker` -> train_in_child) with MNIST test digits the bundled model gets wrong standing in
for a learner's drawings; its before/after numbers are checked against plain torch argmax counts on
the run's own files.
"""
from __future__ import annotations

import os

import pytest
import torch

from simplecnn import handwriting as hw
from simplecnn.checkpoints import load_checkpoint
from simplecnn.classroom import Classroom, Limits, RunRefused
from simplecnn.data import to_float
from simplecnn.jobs import TrainingScheduler
from simplecnn.model import SimpleCNN
from simplecnn.runstore import RunStore, learner_key
from tests.helpers import SlotHolder

LEARNER = learner_key("ab" * 16)


def digit(value: float = 0.5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 1, 28, 28, generator=g) * value).float()  # (1, 1, 28, 28) like a prepared drawing


def fake_drawings(n: int) -> list[hw.LabelledDrawing]:
    return [hw.LabelledDrawing(f"d-{i:03d}", digit(seed=i)[0, 0], i % 10, (i + 1) % 10, "m", 0.0) for i in range(n)]


# -- the store ---------------------------------------------------------------------------------------------
def test_store_keeps_drawings_exactly_and_deletes_one_by_one(tmp_path):
    store = hw.DrawingStore(tmp_path / "hw")
    assert store.drawings() == [] and store.count() == 0
    images = [digit(seed=s) for s in range(3)]
    kept = [store.add(img, label=s + 4, predicted=s, model="bundled") for s, img in enumerate(images)]
    read = store.drawings()
    assert [d.id for d in read] == [d.id for d in kept]  # oldest first
    for d, img, s in zip(read, images, range(3)):
        assert torch.equal(d.image, img.reshape(28, 28)) and d.label == s + 4 and d.predicted == s
        assert d.model == "bundled" and d.created > 0
    assert store.delete(kept[1].id) and not store.delete(kept[1].id)
    assert [d.id for d in store.drawings()] == [kept[0].id, kept[2].id]
    assert not store.delete("../../run-1") and not store.delete("x")  # only its own files
    assert not [p for p in (tmp_path / "hw").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_store_is_bounded_before_anything_is_written(tmp_path):
    store = hw.DrawingStore(tmp_path / "hw", limit=3)
    for s in range(3):
        store.add(digit(seed=s), 1, 2)
    with pytest.raises(hw.HandwritingError, match="3 labelled drawings"):
        store.add(digit(), 1, 2)
    assert store.count() == 3 and len(list((tmp_path / "hw").iterdir())) == 3
    assert hw.MAX_DRAWINGS == hw.DrawingStore(tmp_path / "x").limit == 200


@pytest.mark.parametrize("image, label, predicted, reason", [
    (torch.zeros(1, 1, 14, 14), 1, 1, "28×28"),
    (torch.full((28, 28), 2.0), 1, 1, "0 to 1"),
    (torch.full((28, 28), float("nan")), 1, 1, "0 to 1"),
    (torch.zeros(28, 28, dtype=torch.uint8), 1, 1, "28×28"),
    (torch.zeros(28, 28), 10, 1, "digit"),
    (torch.zeros(28, 28), True, 1, "digit"),
    (torch.zeros(28, 28), 1, -1, "digit"),
])
def test_store_refuses_what_is_not_a_labelled_drawing(tmp_path, image, label, predicted, reason):
    store = hw.DrawingStore(tmp_path / "hw")
    with pytest.raises(hw.HandwritingError, match=reason):
        store.add(image, label, predicted)
    assert store.count() == 0


def test_store_write_is_atomic_and_a_damaged_file_costs_one_drawing(tmp_path, monkeypatch):
    store = hw.DrawingStore(tmp_path / "hw")
    first = store.add(digit(), 3, 5)

    def crash(*args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.add(digit(seed=1), 4, 4)
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "hw").iterdir()] == [f"{first.id}.pt"]  # nothing half-written
    (tmp_path / "hw" / "d-00000000000000000001-abcdef.pt").write_bytes(b"not a drawing")
    assert [d.id for d in store.drawings()] == [first.id]
    assert store.damaged == ["d-00000000000000000001-abcdef"]
    assert store.delete(store.damaged[0]) and store.count() == 1


# -- the mixed training set --------------------------------------------------------------------------------
def test_repeats_keep_the_drawings_a_visible_but_small_share():
    assert hw.repeats_for(0) == 0
    assert hw.repeats_for(1) == hw.MAX_REPEAT == 20
    assert hw.repeats_for(40) == 10 and hw.repeats_for(200) == 2 and hw.repeats_for(1000) == 1


def test_mixed_dataset_counts(mnist):
    drawings = fake_drawings(7)
    examples = hw.fine_tune_examples(drawings, mnist_count=500, seed=3)
    k = examples["repeat"]
    assert k == 20
    mixed = hw.mixed_dataset(mnist, examples)
    assert len(mixed.train_labels) == len(mixed.train_images) == 500 + 7 * k == hw.mixed_size(examples)
    # the MNIST part: 500 distinct training images, unchanged
    idx = examples["mnist_indices"]
    assert len(set(idx.tolist())) == 500 and torch.equal(mixed.train_images[:500], mnist.train_images[idx])
    # labels: the MNIST labels plus each drawing's label k times (counted independently, class by class)
    expected = torch.zeros(10, dtype=torch.int64)
    for i in idx.tolist():
        expected[int(mnist.train_labels[i])] += 1
    for d in drawings:
        expected[d.label] += k
    assert torch.equal(torch.bincount(mixed.train_labels, minlength=10), expected)
    # each drawing appears exactly k times, as uint8 rounded like MNIST
    for d in drawings:
        as_uint8 = (d.image * 255).round().to(torch.uint8)
        copies = (mixed.train_images == as_uint8).flatten(1).all(1)
        assert int(copies.sum()) == k and bool((mixed.train_labels[copies] == d.label).all())
    assert mixed.test_images is mnist.test_images  # the test set is untouched


def test_examples_file_round_trips_and_refuses_foreign_content(tmp_path):
    examples = hw.fine_tune_examples(fake_drawings(3), mnist_count=100)
    hw.save_examples(tmp_path / "examples.pt", examples)
    loaded = hw.load_examples(tmp_path / "examples.pt")
    assert torch.equal(loaded["images"], examples["images"]) and loaded["repeat"] == examples["repeat"]
    assert loaded["ids"] == ["d-000", "d-001", "d-002"]
    torch.save({"images": torch.zeros(3, 5, 5)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not hold"):
        hw.load_examples(tmp_path / "bad.pt")
    with pytest.raises(hw.HandwritingError, match="at least one"):
        hw.fine_tune_examples([])


def test_fine_tune_config_follows_the_starting_architecture():
    examples = hw.fine_tune_examples(fake_drawings(4), mnist_count=100)
    config = hw.fine_tune_config(SimpleCNN(10, 0.2, 0.1, batch_norm=False), examples)
    assert (config.dropout1, config.dropout2, config.batch_norm) == (0.2, 0.1, False)
    assert config.validation_split == 0.0 and config.subset == 100 + 4 * 20


def test_score_matches_a_plain_argmax_count(mnist):
    torch.manual_seed(0)
    model = SimpleCNN().eval()
    images, labels = mnist.test_images[:300], mnist.test_labels[:300]
    scores = hw.score(model, images, labels)
    with torch.no_grad():
        plain = torch.cat([model(to_float(images[i:i + 1])).argmax(1) for i in range(300)])
    assert torch.equal(scores.predictions, plain)
    assert scores.correct == sum(int(p) == int(y) for p, y in zip(plain, labels)) and scores.total == 300
    floats = hw.score(model, to_float(images[:50])[:, 0], labels[:50])  # (N, 28, 28) float drawings
    assert torch.equal(floats.predictions, plain[:50])


# -- an honest fine-tune through the training queue -------------------------------------------------------
def plain_predictions(path, images: torch.Tensor) -> torch.Tensor:
    """Argmax of the weights in a checkpoint file, read without simplecnn.checkpoints."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = SimpleCNN()
    model.load_state_dict(payload["state_dict"])
    model.eval()
    with torch.no_grad():
        return torch.cat([model(images[i:i + 500]).argmax(1) for i in range(0, len(images), 500)])


def test_fine_tune_through_the_queue_learns_the_drawings_and_keeps_mnist(tmp_path, mnist, bundled_path):
    bundled = load_checkpoint(bundled_path)[0]
    with torch.no_grad():
        outside = mnist.test_images[hw.TEST_SUBSET:]  # not in the before/after test subset
        predicted = torch.cat([bundled(to_float(outside[i:i + 1000])).argmax(1) for i in range(0, len(outside), 1000)])
    wrong = (predicted != mnist.test_labels[hw.TEST_SUBSET:]).nonzero().flatten()[:20]
    assert len(wrong) == 20
    store = hw.DrawingStore(tmp_path / "hw")
    for i in wrong.tolist():
        store.add(to_float(outside[i]), int(mnist.test_labels[hw.TEST_SUBSET + i]), int(predicted[i]), "bundled")
    room = Classroom(RunStore(tmp_path / "runs"), TrainingScheduler(1), watch_every_s=0)
    try:
        job = hw.start_fine_tune(room, LEARNER, store.drawings(), bundled, "the bundled model", "bundled")
        job.join(600)
        snap = job.snapshot()
        assert snap.status == "finished", snap.message
        view = room.run(LEARNER, job.id)
        assert view.label == "your handwriting, from the bundled model"
        assert view.record.meta["handwriting"]["drawings"] == 20
        assert snap.history.images_seen == hw.FINE_TUNE_EPOCHS * (hw.MNIST_MIX + 20 * hw.repeats_for(20))
        examples = hw.load_examples(job.run.examples_path)
        result = hw.compare(load_checkpoint(job.run.init_path)[0], job.model(), examples, mnist)
    finally:
        room.close()
    # independent: plain torch on the run's own files
    drawings = examples["images"].reshape(-1, 1, 28, 28)
    labels = examples["labels"]
    test_x, test_y = to_float(mnist.test_images[:hw.TEST_SUBSET]), mnist.test_labels[:hw.TEST_SUBSET]
    before_d = plain_predictions(job.run.init_path, drawings)
    after_d = plain_predictions(job.run.latest_path, drawings)
    before_t = int((plain_predictions(job.run.init_path, test_x) == test_y).sum())
    after_t = int((plain_predictions(job.run.latest_path, test_x) == test_y).sum())
    assert int((before_d == labels).sum()) == result.drawings_before.correct == 0  # all wrong before, by choice
    assert int((after_d == labels).sum()) == result.drawings_after.correct
    assert torch.equal(after_d, result.drawings_after.predictions)
    assert (before_t, after_t) == (result.test_before.correct, result.test_after.correct)
    assert result.drawings_after.correct >= 15, f"only {result.drawings_after.correct} of 20 learned"
    assert abs(result.test_after.accuracy - result.test_before.accuracy) <= 1.0
    assert result.test_before.accuracy > 98  # the starting weights really were the bundled model's


def test_start_fine_tune_refuses_within_the_limits(tmp_path):
    room = Classroom(RunStore(tmp_path / "runs"), TrainingScheduler(1), limits=Limits(max_run_images=1000),
                     watch_every_s=0)
    try:
        with pytest.raises(RunRefused, match="1,000 per run"):
            hw.start_fine_tune(room, LEARNER, fake_drawings(3), SimpleCNN(), "x", "bundled")
        with pytest.raises(hw.HandwritingError, match="MNIST"):
            hw.start_fine_tune(room, LEARNER, fake_drawings(3), SimpleCNN(), "x", "bundled", "fashion-mnist")
        with pytest.raises(hw.HandwritingError, match="at least one"):
            hw.start_fine_tune(room, LEARNER, [], SimpleCNN(), "x", "bundled")
        assert room.runs(LEARNER) == []  # nothing stored for a refused fine-tune
    finally:
        room.close()


def test_a_queued_fine_tune_already_answers_with_its_starting_weights(tmp_path, bundled_path):
    bundled = load_checkpoint(bundled_path)[0]
    room = Classroom(RunStore(tmp_path / "runs"), TrainingScheduler(1), watch_every_s=0)
    holder = SlotHolder()
    assert room.scheduler.acquire(holder)  # the only training slot is taken: the fine-tune waits
    try:
        job = hw.start_fine_tune(room, LEARNER, fake_drawings(2), bundled, "the bundled model", "bundled")
        assert job.snapshot().status == "queued"
        x = torch.rand(4, 1, 28, 28)
        with torch.no_grad():
            assert torch.equal(job.model()(x), bundled(x))  # not the untrained weights of its seed
        job.stop()
        job.join(30)
        assert job.snapshot().status == "stopped"
    finally:
        room.scheduler.release(holder)
        room.close()


def stored_fine_tune(tmp_path, bundled_path):
    """A fine-tune of 4 fake drawings stored and queued, then stopped before it trained: the tests drive
    train_in_child on its folder themselves. Returns its TrainingJob."""
    bundled = load_checkpoint(bundled_path)[0]
    room = Classroom(RunStore(tmp_path / "runs"), TrainingScheduler(1), watch_every_s=0)
    holder = SlotHolder()
    assert room.scheduler.acquire(holder)  # keep the queue from training it
    try:
        job = hw.start_fine_tune(room, LEARNER, fake_drawings(4), bundled, "the bundled model", "bundled")
        job.stop()
        job.join(30)
    finally:
        room.scheduler.release(holder)
        room.close()
    return job


def test_a_stopped_fine_tune_resumes_on_the_same_mixed_set(tmp_path, mnist, bundled_path):
    """train_in_child itself (what the worker process runs): stop mid-epoch, then go on from the save."""
    import threading
    from multiprocessing import Pipe

    from simplecnn.jobs import train_in_child

    job = stored_fine_tune(tmp_path, bundled_path)
    run, config = job.run, job.config.to_dict()

    def train(stop_after: int | None = None):
        """Run train_in_child in a thread, reading its reports (a weights message fills a pipe's buffer)."""
        stop = threading.Event()
        parent, child = Pipe()
        thread = threading.Thread(target=train_in_child, args=(child, config, "mnist", str(run.path), 999, stop))
        thread.start()
        while True:
            message = parent.recv()
            if message[0] == "batch" and stop_after is not None and message[1]["batch"] >= stop_after:
                stop.set()
            if message[0] in ("done", "failed"):
                break
        thread.join(60)
        assert message[0] == "done", message
        return message

    train(stop_after=10)
    state = torch.load(run.state_path, map_location="cpu", weights_only=True)
    n = hw.mixed_size(hw.load_examples(run.examples_path))
    assert state["epoch"] == 0 and 10 <= state["batch"] < 33 and len(state["order"]) == n == 2000 + 4 * 20
    assert sorted(state["order"].tolist()) == list(range(n))  # the order runs over the mixed set
    _, history, epoch, batch = train()
    assert history["status"] == "finished" and epoch == 2
    assert history["images_seen"] == 2 * n  # every image of both epochs, once


def test_a_fine_tune_that_lost_its_files_fails_instead_of_training_plain_mnist(tmp_path, bundled_path):
    """The server may die between writing run.json and init.pt / examples.pt: that run must not train a
    random network on plain MNIST under the "your handwriting" label."""
    from multiprocessing import Pipe
    import threading

    from simplecnn.jobs import train_in_child

    job = stored_fine_tune(tmp_path, bundled_path)
    run = job.run
    run.examples_path.unlink()
    parent, child = Pipe()
    train_in_child(child, job.config.to_dict(), "mnist", str(run.path), 999, threading.Event())
    message = parent.recv()
    assert message[0] == "failed" and "lost its drawings" in message[1]
    assert not run.state_path.exists() and not run.latest_path.exists()  # nothing was trained
