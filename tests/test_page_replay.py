"""The Replay page: its slider walks the snapshots the training process kept, and what it shows at each
(filters, feature maps, probabilities, the confusion matrix's accuracy) equals a plain-torch computation
on that snapshot's file."""
from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from helpers import new_learner, page_as, train_run  # noqa: E402
from simplecnn.model import SimpleCNN  # noqa: E402
from simplecnn.training import TrainConfig  # noqa: E402

PAGE = str(ROOT / "pages" / "replay.py")
# 500 images, 400 to train on in 25 batches of 16: snapshots at steps 0, 1, 3, 10, then epochs 1 and 2.
CONFIG = TrainConfig(epochs=2, subset=500, batch_size=16)


@pytest.fixture(scope="module")
def learner() -> str:
    return new_learner()


@pytest.fixture(scope="module")
def job(learner):
    """A small run trained through the real queue and training process, which writes the snapshots."""
    return train_run(learner, CONFIG, timeout=600)  # minutes when the shared machine is busy


def chart(at, key: str) -> dict:
    for element in at.get("plotly_chart"):
        if element.key == key:
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart {key!r}; found {[e.key for e in at.get('plotly_chart')]}")


def array(value) -> np.ndarray:
    """A plotly JSON array: a plain (nested) list, or the typed form {"dtype", "bdata", "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if "shape" in value:
            arr = arr.reshape([int(n) for n in str(value["shape"]).split(",")])
        return arr.astype(np.float64)
    return np.array(value, dtype=np.float64)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def weights_of(job, step: int) -> dict[str, torch.Tensor]:
    """The weights the run kept at `step`, read straight from its files."""
    path = (job.run.snapshot_path(step) if step < 25 else job.run.epoch_path(step // 25))
    return torch.load(path, weights_only=True)["state_dict"]


def model_of(state: dict) -> SimpleCNN:
    model = SimpleCNN()
    model.load_state_dict(state)
    return model.eval()


def balanced_test_set(dataset, per_class: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `per_class` test images of each class, found with a plain loop."""
    counts, picked = [0] * 10, []
    for i, y in enumerate(dataset.test_labels.tolist()):
        if counts[y] < per_class:
            counts[y] += 1
            picked.append(i)
    idx = torch.tensor(picked)
    return dataset.test_images[idx].float().div(255.0).unsqueeze(1), dataset.test_labels[idx]


def test_no_run_yet_says_so_and_points_to_train():
    at = page_as(PAGE, new_learner()).run()
    assert not at.exception
    text = " ".join(i.value for i in at.info)
    assert "bundled model" in text and "kept no" in text
    assert any("Train a model" in m.value for m in at.markdown)  # the link to Train (page run alone)
    assert not at.select_slider


def test_slider_walks_the_snapshots_and_numbers_match_torch(learner, job, mnist):
    at = page_as(PAGE, learner).run()
    assert not at.exception, at.exception
    slider = at.select_slider(key="replay_step")
    assert list(slider.options) == ["step 0 · before training", "step 1 · epoch 0.04 · 16 images",
                                    "step 3 · epoch 0.12 · 48 images", "step 10 · epoch 0.40 · 160 images",
                                    "step 25 · end of epoch 1 · 400 images", "step 50 · end of epoch 2 · 800 images"]
    assert slider.value == 0
    images, labels = balanced_test_set(mnist)
    x = mnist.test_images[0].float().div(255.0)[None, None]  # no drawing yet: test image #0
    assert any("Nothing drawn yet" in i.value for i in at.info)

    seen_filters = []
    for step in (0, 3, 50):
        at.select_slider(key="replay_step").set_value(step).run()
        assert not at.exception, at.exception
        state = weights_of(job, step)
        model = model_of(state)
        shown = metrics(at)
        assert shown["Optimizer steps"] == f"{step:,}"
        assert shown["Training images seen"] == f"{step * 16:,}"  # 400 images = 25 full batches per epoch
        with torch.no_grad():
            accuracy = 100.0 * (model(images).argmax(1) == labels).float().mean().item()
            probs = F.softmax(model(x), dim=1)[0]
        assert shown["Test accuracy"] == f"{accuracy:.1f}%"
        # How far conv1 moved since step 0, against a norm computed here.
        w0 = weights_of(job, 0)["conv1.weight"]
        moved = 100 * float((state["conv1.weight"] - w0).norm() / w0.norm())
        assert any(f"moved by **{moved:.1f}%**" in m.value for m in at.markdown), moved
        if step > 0:  # smoothness: Pearson correlation of neighbouring weights, computed here with torch
            def pearson(w):  # w: (32, 5, 5)
                a = torch.cat([w[:, :, :-1].flatten(), w[:, :-1, :].flatten()]).double()
                b = torch.cat([w[:, :, 1:].flatten(), w[:, 1:, :].flatten()]).double()
                a, b = a - a.mean(), b - b.mean()
                return float((a * b).sum() / (a.norm() * b.norm()))
            w = state["conv1.weight"][:, 0]
            two = lambda v: f"{v:.2f}".replace("-0.00", "0.00")  # noqa: E731
            line = (f"**{two(pearson(w))}** in these weights and **{two(pearson(w - w0[:, 0]))}** in the change "
                    "since step 0")
            assert any(line in m.value for m in at.markdown), line
        # conv1's filters, as drawn: one heatmap per filter holding that filter's weights.
        filters = chart(at, "replay_filters")["data"]
        assert len(filters) == 32
        assert np.allclose(array(filters[5]["z"]), state["conv1.weight"][5, 0].numpy(), atol=1e-6)
        seen_filters.append(array(filters[5]["z"]))
        # The feature maps of the followed image: conv1 applied to it.
        maps = chart(at, "replay_maps")["data"]
        expected = F.conv2d(x, state["conv1.weight"], state["conv1.bias"])[0]  # (32, 24, 24)
        assert np.allclose(array(maps[7]["z"]), expected[7].numpy(), atol=1e-4)
        # The probabilities.
        bars = chart(at, "replay_probs")["data"][0]
        assert np.allclose(array(bars["y"]), probs.numpy(), atol=1e-6)
        # The confusion matrix: a count per (true, predicted), rows summing to 100 images.
        z = array(chart(at, "replay_confusion")["data"][0]["z"]).astype(int)
        counts = np.zeros((10, 10), dtype=int)
        with torch.no_grad():
            np.add.at(counts, (labels.numpy(), model(images).argmax(1).numpy()), 1)
        assert np.array_equal(z, counts) and z.sum(1).tolist() == [100] * 10
    assert not np.allclose(seen_filters[0], seen_filters[-1])  # the filters changed as the run trained

    # "Change since step 0": the drawn filters are W - W0.
    at.segmented_control(key="replay_filter_view").set_value("Change since step 0").run()
    assert not at.exception
    change = (weights_of(job, 50)["conv1.weight"] - weights_of(job, 0)["conv1.weight"])[:, 0]
    drawn = chart(at, "replay_filters")["data"]
    assert all(np.allclose(array(drawn[i]["z"]), change[i].numpy(), atol=1e-6) for i in (0, 5, 31))


def test_follows_the_learners_drawing(learner, job):
    at = page_as(PAGE, learner)
    drawing = torch.zeros(1, 1, 28, 28)
    drawing[0, 0, 4:24, 13:16] = 1.0  # a vertical bar: a "1"
    at.session_state["draw_tensor"] = drawing
    at.run()
    assert not at.exception
    assert any(h.value == "Following your latest drawing" for h in at.header)
    at.select_slider(key="replay_step").set_value(10).run()
    state = weights_of(job, 10)
    with torch.no_grad():
        probs = F.softmax(model_of(state)(drawing), dim=1)[0]
    bars = chart(at, "replay_probs")["data"][0]
    assert np.allclose(array(bars["y"]), probs.numpy(), atol=1e-6)


def test_a_damaged_snapshot_is_reported_not_fatal(learner, job, tmp_path):
    path = job.run.snapshot_path(1)
    saved = path.read_bytes()
    try:
        path.write_bytes(b"not a checkpoint")
        at = page_as(PAGE, learner).run()
        at.select_slider(key="replay_step").set_value(1).run()
        assert not at.exception
        assert any("cannot be read" in e.value for e in at.error)
        at.select_slider(key="replay_step").set_value(3).run()  # the others still replay
        assert not at.exception and not at.error
    finally:
        path.write_bytes(saved)
