"""The "Inside the network" page: it renders, its widgets work, and what it prints matches torch."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard.state import BUNDLED_MODEL_PATH  # noqa: E402
from helpers import SlotHolder, classroom, new_learner, page_as, start_run, train_run  # noqa: E402
from simplecnn.data import to_float  # noqa: E402
from simplecnn.training import TrainConfig  # noqa: E402

PAGE = str(ROOT / "pages" / "inside.py")
STAGES = ("conv1", "batch1", "relu1", "max1", "dropout1", "conv2", "batch2", "relu2", "max2", "dropout2")
SHAPES = {"conv1": (32, 24, 24), "batch1": (32, 24, 24), "relu1": (32, 24, 24), "max1": (32, 12, 12),
          "dropout1": (32, 12, 12), "conv2": (64, 8, 8), "batch2": (64, 8, 8), "relu2": (64, 8, 8),
          "max2": (64, 4, 4), "dropout2": (64, 4, 4)}


@pytest.fixture(scope="module")
def dataset(mnist):
    return mnist  # conftest's session-wide copy of the real MNIST


@pytest.fixture(scope="module")
def learner() -> str:
    """The token of this module's learner (the one whose run the tests open)."""
    return new_learner()


@pytest.fixture(scope="module")
def job(learner, dataset):
    """A tiny finished run of this learner: one epoch on 400 training images."""
    job = train_run(learner, TrainConfig(epochs=1, subset=500, batch_size=64), timeout=120)
    assert job.snapshot().status == "finished", job.snapshot().message
    return job


def page_with_run(token: str, job) -> AppTest:
    """The page opened by the learner `token` (whose run `job` is), with `job` chosen in the model picker."""
    return page_as(PAGE, token, model_key=job.id).run()


def all_text(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption]
                     + [i.value for i in at.info])


def reference_prediction(model, image_u8: torch.Tensor) -> tuple[int, float]:
    """(class, probability in %) straight from torch, for one uint8 (28, 28) image."""
    with torch.no_grad():
        probs = F.softmax(model.eval()(to_float(image_u8[None])), dim=1)[0]
    return int(probs.argmax()), 100.0 * float(probs.max())


def said(at: AppTest) -> tuple[int, float]:
    """The class and probability the page's softmax line reports."""
    match = re.search(r"the network says \*\*(\d)\*\* with ([\d.]+)%", all_text(at))
    assert match, all_text(at)
    return int(match.group(1)), float(match.group(2))


def test_renders_key_widgets_and_torch_prediction(learner, job, dataset):
    at = page_with_run(learner, job)
    assert not at.exception
    assert at.number_input(key="inside_index").value == 0
    stage = at.segmented_control(key="inside_stage")
    assert list(stage.options) == list(STAGES) and stage.value == "conv1"
    assert at.toggle(key="inside_train_mode").value is False
    assert "**conv1** output shape `(1, 32, 24, 24)`: 32 maps of 24×24" in all_text(at)
    assert "test image #0 · true class **7**" in all_text(at)
    cls, pct = reference_prediction(job.model(), dataset.test_images[0])
    assert said(at) == (cls, pytest.approx(pct, abs=0.051))
    text = all_text(at)
    assert "fc1 output shape `(1, 512)`" in text and "`flatten` (1, 1024)" in text
    # ReLU count on the page = positive fc1 units of the real model
    with torch.no_grad():
        model = job.model()
        fc1 = model.fc1(model.flatten(model.max2(model.relu2(model.batch2(model.conv2(
            model.max1(model.relu1(model.batch1(model.conv1(to_float(dataset.test_images[:1])))))))))))
    assert f"ReLU keeps the {int((fc1 > 0).sum())} positive ones" in text


def test_changing_index_and_stage_rerenders_shapes(learner, job, dataset):
    at = page_with_run(learner, job)
    at.number_input(key="inside_index").set_value(1234).run()
    assert not at.exception
    label = int(dataset.test_labels[1234])
    assert f"test image #1234 · true class **{label}**" in all_text(at)
    cls, pct = reference_prediction(job.model(), dataset.test_images[1234])
    assert said(at) == (cls, pytest.approx(pct, abs=0.051))
    for stage in ("max1", "conv2", "max2"):
        at.segmented_control(key="inside_stage").set_value(stage).run()
        assert not at.exception
        c, h, w = SHAPES[stage]
        assert f"**{stage}** output shape `(1, {c}, {h}, {w})`: {c} maps of {h}×{w}" in all_text(at)
    # every stage's shape is listed in the table too
    table = at.dataframe[0].value
    shapes = dict(zip(table["stage"], table["output shape"]))
    assert shapes["input"] == "(1, 1, 28, 28)" and shapes["softmax"] == "(1, 10)"
    assert all(shapes[s] == "(1, {}, {}, {})".format(*SHAPES[s]) for s in STAGES)


def test_training_mode_drops_about_p_of_the_units(learner, job):
    at = page_with_run(learner, job)
    at.segmented_control(key="inside_stage").set_value("dropout1").run()
    at.toggle(key="inside_train_mode").set_value(True).run()
    assert not at.exception
    text = all_text(at)
    match = re.search(r"dropout1 switched off (\d+)% .*?\(p = ([\d.]+)\) and dropout2 (\d+)%", text)
    assert match, text
    assert float(match.group(2)) == job.config.dropout1
    assert abs(int(match.group(1)) - 100 * job.config.dropout1) <= 6  # ~2000 live values: +-3 sigma
    assert "Evaluation mode" in text and "Training mode**, seed 0" in text
    at.number_input(key="inside_seed").set_value(7).run()
    assert not at.exception and "Training mode**, seed 7" in all_text(at)


def test_pick_by_class_next_example(learner, job, dataset):
    at = page_with_run(learner, job)
    at.segmented_control(key="inside_source").set_value("Example of a class").run()
    at.selectbox(key="inside_class").set_value(3).run()
    threes = (dataset.test_labels == 3).nonzero().flatten().tolist()
    assert f"test image #{threes[0]}, example 1 of {len(threes)} of class 3" in all_text(at)
    at.button(key="inside_next").click().run()
    assert not at.exception
    assert f"test image #{threes[1]}, example 2 of {len(threes)} of class 3" in all_text(at)
    at.button(key="inside_random").click().run()
    match = re.search(r"test image #(\d+), example (\d+) of", all_text(at))
    assert match and threes[int(match.group(2)) - 1] == int(match.group(1))


def test_your_drawing_needs_a_drawing_first(learner, job, dataset):
    at = page_with_run(learner, job)
    at.segmented_control(key="inside_source").set_value("Your drawing").run()
    assert not at.exception
    assert any("Draw a digit on the Draw page first" in i.value for i in at.info)
    drawing = to_float(dataset.test_images[5:6])  # (1, 1, 28, 28), as the Draw page stores it
    at.session_state["draw_tensor"] = drawing
    at.run()
    assert not at.exception and "your latest drawing" in all_text(at)
    cls, pct = reference_prediction(job.model(), dataset.test_images[5])
    assert said(at) == (cls, pytest.approx(pct, abs=0.051))


def test_active_run_is_shown_live(dataset):
    # The classroom's shared scheduler has one slot: held here, a real job stays queued (active)
    # without using the CPU. A fresh learner, since a learner may have one queued-or-running run.
    token, scheduler, holder = new_learner(), classroom().scheduler, SlotHolder()
    assert scheduler.acquire(holder)
    job = None
    try:
        job = start_run(token, TrainConfig(epochs=1, subset=500))
        assert job.snapshot().active
        at = page_with_run(token, job)
        assert not at.exception
        assert any("refreshed every 2 s while it trains" in c.value for c in at.caption)
        cls, pct = reference_prediction(job.model(), dataset.test_images[0])  # initial weights
        assert said(at) == (cls, pytest.approx(pct, abs=0.051))
    finally:
        if job is not None:
            job.stop()
        scheduler.release(holder)
        if job is not None:
            job.join(60)


@pytest.mark.skipif(not BUNDLED_MODEL_PATH.is_file(),
                    reason="models/simplecnn_mnist.pt is not there yet (the lead trains it)")
def test_bundled_model_is_the_default_and_reads_a_seven():
    at = AppTest.from_file(PAGE, default_timeout=90).run()
    assert not at.exception
    assert said(at)[0] == 7  # test image #0 is a 7 the trained model gets right


def test_whole_app_switches_to_the_page(learner, job):
    at = page_as(str(ROOT / "app.py"), learner, model_key=job.id)
    at.run()
    assert not at.exception
    at.switch_page("pages/inside.py").run()
    assert not at.exception
    assert any(t.value == "Inside the network" for t in at.title)
    assert "**conv1** output shape `(1, 32, 24, 24)`" in all_text(at)
