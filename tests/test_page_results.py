"""The Results page: its numbers equal a plain-torch evaluation, its gallery filters, its live view runs."""
from __future__ import annotations

import base64
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard.state import BUNDLED_MODEL_PATH  # noqa: E402
from helpers import SlotHolder, classroom, new_learner, page_as, start_run, train_run  # noqa: E402
from simplecnn.data import split_indices, to_float  # noqa: E402
from simplecnn.jobs import TrainingJob, TrainingScheduler  # noqa: E402
from simplecnn.training import TrainConfig  # noqa: E402

PAGE = str(ROOT / "pages" / "results.py")


@pytest.fixture(scope="module")
def dataset(mnist):
    return mnist  # conftest's session-wide copy of the real MNIST


@pytest.fixture(scope="module")
def learner() -> str:
    """The token of this module's learner (the one whose run the tests open)."""
    return new_learner()


@pytest.fixture(scope="module")
def job(learner, dataset):
    """A tiny finished run: one epoch on 400 training images, so it still makes plenty of mistakes."""
    job = train_run(learner, TrainConfig(epochs=1, subset=500, batch_size=64), timeout=120)
    assert job.snapshot().status == "finished", job.snapshot().message
    return job


@pytest.fixture(scope="module")
def reference(job, dataset):
    """Loss, accuracy and predictions of the run's model on the test set, computed with torch alone."""
    model = job.model().eval()
    with torch.no_grad():
        logits = torch.cat([model(to_float(dataset.test_images[i:i + 2000]))
                            for i in range(0, len(dataset.test_images), 2000)])
    labels = dataset.test_labels
    preds = logits.argmax(1)
    return {"loss": F.cross_entropy(logits, labels).item(),
            "accuracy": 100.0 * (preds == labels).float().mean().item(),
            "preds": preds, "confidence": logits.softmax(1).max(1).values}


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def gallery_captions(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions if "→" in c]


def page_with_run(token: str) -> AppTest:
    """The page opened by the learner `token` (who has the run to check)."""
    return page_as(PAGE, token).run()


@pytest.mark.skipif(not BUNDLED_MODEL_PATH.is_file(),
                    reason="models/simplecnn_mnist.pt is not there yet (the lead trains it)")
def test_bundled_model_reaches_99_percent():
    at = AppTest.from_file(PAGE, default_timeout=90).run()
    assert not at.exception
    shown = metrics(at)
    assert float(shown["Test accuracy"].rstrip("%")) >= 99.0
    assert shown["Images"] == "10,000"


def test_session_run_numbers_match_torch_and_gallery_filters(learner, job, dataset, reference):
    at = page_with_run(learner)
    assert not at.exception
    picker = next(s for s in at.selectbox if s.label == "Model")
    if picker.value != job.id:  # the bundled model comes first when it exists
        picker.set_value(job.id).run()
    assert not at.exception
    shown = metrics(at)
    assert shown["Test accuracy"] == f"{reference['accuracy']:.2f}%"
    assert float(shown["Test loss"]) == pytest.approx(reference["loss"], abs=1e-3)
    wrong = reference["preds"] != dataset.test_labels
    assert shown["Misclassified"] == f"{int(wrong.sum()):,}"

    # Unfiltered gallery: 24 thumbnails, the most confident mistakes first.
    captions = gallery_captions(at)
    assert len(captions) == 24
    shown_conf = [int(re.search(r"\((\d+)%\)$", c).group(1)) for c in captions]
    assert shown_conf == sorted(shown_conf, reverse=True)
    top = reference["confidence"][wrong].max().item()
    assert shown_conf[0] == round(100 * top)
    # Thumbnails travel inside the page (no /media/ URL that a rerun could expire) and show the digit.
    first = next(img for image in at.image for img in image.proto.imgs if "→" in img.caption)
    assert first.url.startswith("data:image/png;base64,")
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(first.url.split(",", 1)[1]))))
    masked = reference["confidence"].masked_fill(~wrong, -1.0)
    index = int(masked.argmax())
    assert np.array_equal(pixels[::3, ::3], dataset.test_images[index].numpy())

    # Filter by true class: only that class, as many as torch finds (up to 24).
    for true_class in (4, 9):
        at.selectbox(key="results_true").set_value(true_class).run()
        assert not at.exception
        captions = gallery_captions(at)
        expected = int((wrong & (dataset.test_labels == true_class)).sum())
        assert len(captions) == min(24, expected) and expected > 0
        assert all(c.startswith(f"true {true_class} → pred ") for c in captions)

    # Both filters: true 4 predicted as 9 exactly.
    at.selectbox(key="results_true").set_value(4)
    at.selectbox(key="results_pred").set_value(9).run()
    captions = gallery_captions(at)
    expected = int((wrong & (dataset.test_labels == 4) & (reference["preds"] == 9)).sum())
    assert len(captions) == min(24, expected)
    assert all(c.startswith("true 4 → pred 9 (") for c in captions)
    if expected == 0:
        assert any("No mistakes with these filters" in s.value for s in at.success)
    assert not at.exception


def queued_job(token: str) -> tuple[TrainingJob, TrainingScheduler, SlotHolder]:
    """A run of `token` that stays queued (active): the classroom's scheduler has one slot, held here."""
    scheduler, holder = classroom().scheduler, SlotHolder()
    assert scheduler.acquire(holder)
    job = None
    try:
        job = start_run(token, TrainConfig(epochs=1, subset=1500, batch_size=64))
        assert job.snapshot().status == "queued"
    except BaseException:
        if job is not None:
            job.stop()
        scheduler.release(holder)
        if job is not None:
            job.join(60)
        raise
    return job, scheduler, holder


def test_live_validation_while_a_run_is_active(dataset):
    """An active run gets the validation view (labelled as such) and the test set only on demand."""
    token = new_learner()  # a fresh learner: one queued-or-running run per learner
    job, scheduler, holder = queued_job(token)
    try:
        at = page_as(PAGE, token, model_key=job.id)
        at.run()
        assert not at.exception
        assert any(s.value == "Refreshed during training on the validation split" for s in at.header)
        shown = metrics(at)
        assert "Test accuracy" not in shown  # the test set waits for the button
        cfg = job.config
        val_idx = split_indices(len(dataset.train_labels), cfg.validation_split, cfg.seed, cfg.subset)[1]
        assert len(val_idx) == 300 and shown["Images"] == "300"  # 20 % of the 1500-image subset
        with torch.no_grad():  # the queued run still has its initial weights (version 0)
            preds = job.model()(to_float(dataset.train_images[val_idx])).argmax(1)
        accuracy = 100.0 * (preds == dataset.train_labels[val_idx]).float().mean().item()
        assert shown["Validation accuracy"] == f"{accuracy:.2f}%"
        assert any("300 of the run's 300 validation images (held out of training)" in c.value for c in at.caption)
        at.button(key="results_test_now").click().run()
        assert not at.exception
        shown = metrics(at)
        assert shown["Images"] == "10,000" and "Test accuracy" in shown
        assert any("taken during training" in c.value for c in at.caption)
    finally:
        job.stop()
        scheduler.release(holder)
        job.join(60)


def test_live_view_has_a_mistakes_gallery_of_the_newest_weights(dataset):
    """While a run is active, the refreshed view also shows its most confident mistakes on the validation
    slice, with its own filters, matching a plain-torch pass of the run's current weights."""
    token = new_learner()
    job, scheduler, holder = queued_job(token)
    try:
        at = page_as(PAGE, token, model_key=job.id).run()
        assert not at.exception
        cfg = job.config
        val_idx = split_indices(len(dataset.train_labels), cfg.validation_split, cfg.seed, cfg.subset)[1][:1000]
        with torch.no_grad():
            probs = job.model()(to_float(dataset.train_images[val_idx])).softmax(1)
        labels = dataset.train_labels[val_idx]
        wrong = probs.argmax(1) != labels
        captions = gallery_captions(at)
        assert len(captions) == min(24, int(wrong.sum())) > 0
        shown_conf = [int(re.search(r"\((\d+)%\)$", c).group(1)) for c in captions]
        assert shown_conf[0] == round(100 * probs.max(1).values[wrong].max().item())
        at.selectbox(key="results_val_true").set_value(3).run()
        assert not at.exception
        expected = int((wrong & (labels == 3)).sum())
        assert len(gallery_captions(at)) == min(24, expected)
        assert all(c.startswith("true 3 → pred ") for c in gallery_captions(at))
    finally:
        job.stop()
        scheduler.release(holder)
        job.join(60)
