"""Draw page: a canvas fed with real MNIST digits must be read as those digits, with numbers that match torch.

The canvas widget is fed the way the browser component reports a drawing: its session-state value
holds a PNG data URL, which streamlit-drawable-canvas decodes into `result.image_data`.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from helpers import new_learner, page_as, start_run, train_run, wait_for
from simplecnn.checkpoints import load_checkpoint
from simplecnn.drawing import predict_drawing, preprocess_drawing
from simplecnn.inspection import saliency
from simplecnn.training import TrainConfig

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "draw.py")
CANVAS_KEY = "draw_canvas_0"  # dashboard.canvas.canvas_key("draw_canvas") before any Clear
SIZE = 280


def on_canvas(digit: torch.Tensor | np.ndarray) -> np.ndarray:
    """A 28x28 uint8 digit as the canvas would hold it: (280, 280, 4) RGBA, white ink on opaque black."""
    grey = Image.fromarray(np.asarray(digit, dtype=np.uint8)).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return np.asarray(grey.convert("RGBA"))


def canvas_value(rgba: np.ndarray) -> dict:
    """The component's widget value for a drawing: Fabric.js JSON plus the PNG it rendered."""
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    path = {"type": "path", "stroke": "#FFFFFF", "strokeWidth": 20, "path": [["M", 140, 40], ["L", 140, 240]]}
    return {"drawing": {"raw": {"version": "6.0.0", "objects": [path]}, "data": url}, "backgroundFit": None}


def draw(at: AppTest, rgba: np.ndarray, key: str = CANVAS_KEY) -> AppTest:
    at.session_state[key] = canvas_value(rgba)
    at.run()
    assert not at.exception, at.exception
    return at


def decode(value) -> np.ndarray:
    """A plotly JSON array: a plain list, or the typed-array form {"dtype", "bdata", "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if value.get("shape"):
            arr = arr.reshape([int(s) for s in str(value["shape"]).split(",")])
        return arr
    return np.asarray(value)


def chart(at: AppTest, key: str) -> dict:
    for element in at.get("plotly_chart"):
        if element.key == key:
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart {key!r}; found {[e.key for e in at.get('plotly_chart')]}")


def predictions(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "Prediction:" in m.value]


def hint_shown(at: AppTest) -> bool:
    return any(i.value.startswith("Draw a digit") for i in at.info)


@pytest.fixture(scope="module")
def bundled(bundled_path):
    return load_checkpoint(bundled_path)[0]


@pytest.fixture
def app(bundled_path) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_empty_canvas_shows_a_hint(app):
    assert hint_shown(app) and not predictions(app)
    black = np.zeros((SIZE, SIZE, 4), np.uint8)
    black[..., 3] = 255
    draw(app, black)  # the canvas after "Reset canvas": all background
    assert hint_shown(app) and not predictions(app)
    assert not app.error


def test_real_mnist_digits_are_read_as_their_labels(app, bundled, mnist):
    for digit in range(10):
        index = int((mnist.test_labels == digit).nonzero()[0])
        rgba = on_canvas(mnist.test_images[index])
        draw(app, rgba)
        assert predictions(app) == [f"## Prediction: {digit}"], (index, predictions(app))
        tensor = preprocess_drawing(rgba, ink="light")  # (1, 1, 28, 28)
        with torch.no_grad():
            expected = bundled(tensor).softmax(dim=1)[0].numpy()  # torch reference
        bars = chart(app, "draw_probs")["data"][0]
        np.testing.assert_allclose(decode(bars["y"]), expected, atol=1e-5)
        assert any(f"Confidence: **{expected.max():.1%}**" in m.value for m in app.markdown)
        overlay = chart(app, "draw_saliency")["data"]
        np.testing.assert_allclose(decode(overlay[0]["z"]).reshape(28, 28), tensor[0, 0].numpy(), atol=1e-6)
        np.testing.assert_allclose(decode(overlay[1]["z"]).reshape(28, 28),
                                   saliency(bundled, tensor, target=digit), rtol=1e-4, atol=1e-7)


def test_full_canvas_and_single_dot_never_break(app):
    full = np.full((SIZE, SIZE, 4), 255, np.uint8)
    draw(app, full)
    assert len(predictions(app)) == 1 and not app.error
    assert any("covered in ink" in w.value for w in app.warning)
    img = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 255))
    ImageDraw.Draw(img).ellipse((131, 131, 149, 149), fill=(255, 255, 255, 255))  # one brush dab
    draw(app, np.asarray(img))
    assert len(predictions(app)) == 1 and not app.error
    assert any("tiny" in i.value for i in app.info)


def test_clear_empties_the_canvas(app, mnist):
    draw(app, on_canvas(mnist.test_images[0]))
    assert predictions(app) == ["## Prediction: 7"]
    app.button(key="draw_clear").click()
    app.run()
    assert not app.exception
    assert hint_shown(app) and not predictions(app)
    assert CANVAS_KEY not in app.session_state  # the old drawing is gone; a new canvas key is in use
    draw(app, on_canvas(mnist.test_images[1]), key="draw_canvas_1")
    assert predictions(app) == ["## Prediction: 2"]


def test_unchanged_drawing_is_not_recomputed(app, mnist):
    draw(app, on_canvas(mnist.test_images[2]))
    first = app.session_state["draw_reading"]
    app.slider(key="draw_stroke").set_value(30)  # any rerun that does not change the pixels
    app.run()
    assert app.session_state["draw_reading"] is first
    draw(app, on_canvas(mnist.test_images[3]))
    assert app.session_state["draw_reading"] is not first


def test_watch_a_finished_run_learn_your_digit(mnist):
    """A run of this learner: probabilities after each epoch, from that epoch's own weights."""
    token = new_learner()
    job = train_run(token, TrainConfig(epochs=2, subset=320, batch_size=64, validation_split=0.0, seed=3))
    assert job.snapshot().status == "finished" and job.saved_epochs() == [1, 2]
    at = page_as(PAGE, token, model_key=job.id, timeout=60)
    rgba = on_canvas(mnist.test_images[0])
    draw(at, rgba)
    tensor = preprocess_drawing(rgba, ink="light")
    per_epoch = np.stack([predict_drawing(job.model(epoch=e), tensor).numpy() for e in (1, 2)])  # (2, 10)
    traces = chart(at, "draw_epochs_chart")["data"]
    assert [t["name"] for t in traces] == [str(c) for c in range(10)]
    for c, trace in enumerate(traces):
        np.testing.assert_allclose(decode(trace["y"]), per_epoch[:, c], atol=1e-5)
    final = predict_drawing(job.model(), tensor).numpy()
    assert predictions(at) == [f"## Prediction: {int(final.argmax())}"]
    assert any(c.value.startswith("Answer after each epoch: 1: ") for c in at.caption)


def test_run_that_is_still_training(mnist):
    """While the chosen run trains, the page shows the epochs so far and answers with the live weights."""
    token = new_learner()
    job = start_run(token, TrainConfig(epochs=200, subset=320, batch_size=64, validation_split=0.0, log_every=1))
    try:
        # With 200 epochs the run keeps the weights of every 10th epoch (simplecnn.jobs.keeps_epoch):
        # wait until the first kept epoch is on disk.
        wait_for(lambda: job.saved_epochs(), timeout=120, interval=0.1)
        assert len(job.saved_epochs()) >= 1
        at = page_as(PAGE, token, model_key=job.id, timeout=60)
        draw(at, on_canvas(mnist.test_images[0]))
        assert len(predictions(at)) == 1
        assert len(decode(chart(at, "draw_epochs_chart")["data"][0]["y"])) >= 1
        assert any(c.value.startswith(f"Live: the weights of {job.id} at epoch ") for c in at.caption)
    finally:
        job.stop()
        job.join(timeout=60)
