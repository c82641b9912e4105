"""Your handwriting page and the Draw page's label control, as AppTests.

The fine-tune test starts a real fine-tune from the page (the shared classroom, a real training
process) and checks each number the page states against plain torch on the run's own files.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from helpers import SlotHolder, classroom, key_of, new_learner, page_as, runs_of, wait_for
from simplecnn.checkpoints import load_checkpoint
from simplecnn.data import to_float
from simplecnn.drawing import preprocess_drawing
from simplecnn.handwriting import TEST_SUBSET, DrawingStore
from simplecnn.model import SimpleCNN
from test_page_draw import CANVAS_KEY, draw, on_canvas, predictions

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "handwriting.py")
DRAW_PAGE = str(ROOT / "pages" / "draw.py")


def store_of(token: str) -> DrawingStore:
    return DrawingStore(classroom().store.learner_dir(key_of(token)) / "handwriting")


def open_page(token: str):
    at = page_as(PAGE, token, timeout=90)
    at.run()
    assert not at.exception, at.exception
    return at


def decode_png(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def plain_predictions(path, images: torch.Tensor) -> torch.Tensor:
    """Argmax of a checkpoint's weights, loaded with plain torch (not simplecnn.checkpoints)."""
    model = SimpleCNN()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    model.eval()
    with torch.no_grad():
        return torch.cat([model(images[i:i + 500]).argmax(1) for i in range(0, len(images), 500)])


def test_empty_store_says_how_to_add_drawings():
    at = open_page(new_learner())
    assert any("No labelled drawings yet" in i.value and "Wrong? Tell it the right digit" in i.value for i in at.info)
    assert not [b for b in at.button if b.label == "Fine-tune"]


def test_gallery_shows_each_drawing_and_deletes_one():
    token = new_learner()
    store = store_of(token)
    kept = [store.add(torch.rand(28, 28), label=4, predicted=9), store.add(torch.rand(28, 28), label=7, predicted=7)]
    at = open_page(token)
    assert "Your labelled drawings (2 of at most 200)" in [h.value for h in at.header]
    captions = [img.caption for image in at.image for img in image.proto.imgs]
    assert captions == ["You: 4 · model said 9", "You: 7 · read right"]
    shown = decode_png(at.image[0].proto.imgs[0].url)  # the stored pixels, 3x, pixel for pixel
    expected = (np.kron(kept[0].image.numpy(), np.ones((3, 3))) * 255).astype(np.uint8)
    assert np.array_equal(shown, expected)
    assert any("1 of them were read wrong" in c.value for c in at.caption)
    at.button(key=f"hw_del_{kept[0].id}").click().run()
    assert not at.exception
    assert [d.id for d in store.drawings()] == [kept[1].id]
    assert "Your labelled drawings (1 of at most 200)" in [h.value for h in at.header]


def test_draw_page_keeps_a_drawing_with_its_right_label(mnist, bundled_path):
    token = new_learner()
    at = page_as(DRAW_PAGE, token, timeout=90)
    at.run()
    rgba = on_canvas(mnist.test_images[0])  # a 7
    draw(at, rgba, key=CANVAS_KEY)
    assert predictions(at) == ["## Prediction: 7"]
    next(b for b in at.button if b.label == "Keep it").click().run()  # no digit picked yet
    assert any("Pick the right digit first." in e.value for e in at.error) and store_of(token).count() == 0
    label = next(s for s in at.selectbox if s.label == "Wrong? Tell it the right digit")
    label.set_value(1).run()
    keep = next(b for b in at.button if b.label == "Keep it")
    keep.click().run()
    assert not at.exception, at.exception
    assert any("Kept as a **1** (the model said 7)" in s.value and "1 labelled drawings" in s.value
               for s in at.success)
    (saved,) = store_of(token).drawings()
    assert (saved.label, saved.predicted) == (1, 7) and saved.model.startswith("Bundled model")
    assert torch.equal(saved.image, preprocess_drawing(rgba, ink="light").reshape(28, 28))


def test_fine_tune_from_the_page_and_its_before_after(mnist, bundled_path):
    token = new_learner()
    bundled = load_checkpoint(bundled_path)[0]
    outside = mnist.test_images[TEST_SUBSET:]
    with torch.no_grad():
        said = torch.cat([bundled(to_float(outside[i:i + 1000])).argmax(1) for i in range(0, len(outside), 1000)])
    labels = mnist.test_labels[TEST_SUBSET:]
    wrong = (said != labels).nonzero().flatten()[:6].tolist()
    right = (said == labels).nonzero().flatten()[:2].tolist()
    store = store_of(token)
    for i in wrong + right:
        store.add(to_float(outside[i]), int(labels[i]), int(said[i]), "bundled")
    at = open_page(token)
    assert any("8 drawings, each repeated 20× (160 copies), mixed with 2,000 MNIST" in m.value for m in at.markdown)
    at.button(key="hw_start").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    view = next(v for v in runs_of(token).values() if v.record.meta.get("handwriting"))
    assert view.label == "your handwriting, from the bundled model"
    view.job.join(600)
    assert view.job.snapshot().status == "finished", view.job.snapshot().message
    at.run()
    assert not at.exception, at.exception
    # independent: plain torch on the run's files, the drawings as they were stored
    images = torch.stack([d.image for d in store.drawings()]).reshape(-1, 1, 28, 28)
    truth = torch.tensor([d.label for d in store.drawings()])
    run = view.job.run
    before, after = plain_predictions(run.init_path, images), plain_predictions(run.latest_path, images)
    test_x, test_y = to_float(mnist.test_images[:TEST_SUBSET]), mnist.test_labels[:TEST_SUBSET]
    test_before = 100.0 * float((plain_predictions(run.init_path, test_x) == test_y).float().mean())
    test_after = 100.0 * float((plain_predictions(run.latest_path, test_x) == test_y).float().mean())
    n_before, n_after = int((before == truth).sum()), int((after == truth).sum())
    assert n_before == 2  # the six wrong ones were wrong, the two right ones right
    text = " ".join(m.value for m in at.markdown)
    assert (f"Before: **{n_before} of 8** of your drawings and **{test_before:.2f}%** of the test images read right. "
            f"After: **{n_after} of 8** and **{test_after:.2f}%**.") in text
    metrics = {m.label: m for m in at.metric}
    assert metrics["Your drawings read right"].value == f"{n_after} of 8"
    assert metrics[f"MNIST test accuracy (first {TEST_SUBSET:,} images)"].value == f"{test_after:.2f}%"
    table = at.dataframe[0].value
    assert table["your label"].tolist() == [str(int(y)) for y in truth]
    assert table["before"].tolist() == [str(int(p)) for p in before]
    assert table["after"].tolist() == [str(int(p)) for p in after]
    assert n_after >= 5 and abs(test_after - test_before) <= 1.0  # it learned them and forgot nothing much
    assert not any("never trained on" in m.value for m in at.markdown)  # nothing kept later yet
    # drawings kept after the fine-tune are its fair test: scored apart, checked with plain torch
    later = (said != labels).nonzero().flatten()[6:9].tolist()
    for i in later:
        store.add(to_float(outside[i]), int(labels[i]), int(said[i]), "bundled")
    at.run()
    unseen_x, unseen_y = to_float(outside[later]), labels[later]
    u_before = int((plain_predictions(run.init_path, unseen_x) == unseen_y).sum())
    u_after = int((plain_predictions(run.latest_path, unseen_x) == unseen_y).sum())
    assert u_before == 0
    assert any(f"On the **3** drawings you kept later, which this fine-tune never trained on: **{u_before} of 3** "
               f"read right before, **{u_after} of 3** after." in m.value for m in at.markdown)
    at.button(key="hw_use").click().run()
    assert at.session_state["model_key"] == view.id


def test_a_queued_fine_tune_shows_its_place_and_stops(mnist):
    token = new_learner()
    store = store_of(token)
    for i in range(2):
        store.add(to_float(mnist.test_images[i]), int(mnist.test_labels[i]), int(mnist.test_labels[i]))
    holder = SlotHolder()  # every training slot taken: the fine-tune waits in the queue
    assert wait_for(lambda: classroom().scheduler.acquire(holder), timeout=300)
    try:
        at = open_page(token)
        at.button(key="hw_start").click().run()
        assert not at.exception, at.exception
        assert any("· queued · Waiting in the server queue: position 1" in p.proto.text for p in at.get("progress"))
        at.button(key="hw_stop").click().run()
        assert not at.exception, at.exception
        view = next(v for v in runs_of(token).values() if v.record.meta.get("handwriting"))
        assert wait_for(lambda: view.job.snapshot().status == "stopped", timeout=30)
        at.run()
        assert any("Removed from the queue before it started." in w.value for w in at.warning)
        assert not at.metric  # nothing trained, so no before/after
    finally:
        classroom().scheduler.release(holder)
