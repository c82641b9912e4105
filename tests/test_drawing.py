"""Drawing preprocessing: canvas images in, MNIST-prepared (1, 1, 28, 28) tensors out.

Centres of mass and bounding boxes are measured here with plain numpy, independently of the module.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from simplecnn.data import load_dataset
from simplecnn.drawing import (DrawingSteps, MNIST_CENTRE, predict_drawing, preprocess_drawing,
                               preprocess_steps)
from simplecnn.model import SimpleCNN

CANVAS = 280
SEVEN = [(20, 20), (120, 20), (60, 150)]  # a "7" in the top-left corner of the canvas
MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "simplecnn_mnist.pt"


def draw(points, ink=(255, 255, 255, 255), background=(0, 0, 0, 255), width=18,
         supersample=1) -> np.ndarray:
    """An RGBA canvas (280, 280, 4) uint8 with a polyline; supersample > 1 gives anti-aliased edges."""
    size = CANVAS * supersample
    img = Image.new("RGBA", (size, size), background)
    ImageDraw.Draw(img).line([(x * supersample, y * supersample) for x, y in points], fill=ink,
                             width=width * supersample, joint="curve")
    if supersample > 1:
        img = img.resize((CANVAS, CANVAS), Image.Resampling.LANCZOS)
    return np.asarray(img)


def com(image: np.ndarray) -> tuple[float, float]:
    """Centre of mass (row, col), pixel centres at integer coordinates."""
    total = image.sum()
    ys, xs = np.indices(image.shape)
    return float((ys * image).sum() / total), float((xs * image).sum() / total)


def bbox_size(image: np.ndarray) -> tuple[int, int]:
    """(height, width) of the non-zero pixels."""
    ys, xs = np.nonzero(image)
    return int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def image_of(tensor: torch.Tensor) -> np.ndarray:
    return tensor.reshape(28, 28).numpy()


# --- no ink ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("canvas", [
    np.zeros((CANVAS, CANVAS, 4), np.uint8) + np.array([0, 0, 0, 255], np.uint8),  # black, opaque
    np.zeros((CANVAS, CANVAS, 4), np.uint8),  # fully transparent
    np.full((CANVAS, CANVAS, 4), 255, np.uint8),  # white paper, no dark ink
    np.full((CANVAS, CANVAS, 3), 128, np.uint8),  # evenly grey
    np.full((CANVAS, CANVAS), 0.0),  # float greyscale
], ids=["black", "transparent", "white", "grey", "float-black"])
def test_blank_canvas_gives_none(canvas):
    assert preprocess_drawing(canvas) is None
    assert preprocess_steps(canvas) is None


def test_stray_pixel_is_noise_but_a_brush_dot_is_ink():
    canvas = np.zeros((CANVAS, CANVAS, 4), np.uint8)
    canvas[:, :, 3] = 255
    canvas[100, 100, :3] = 255  # one stray pixel on a 280x280 canvas
    assert preprocess_drawing(canvas) is None
    faint = draw(SEVEN, ink=(12, 12, 12, 255))  # 12/255: no pixel stands out by MIN_PEAK_CONTRAST
    assert preprocess_drawing(faint) is None

    dot = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 255))
    ImageDraw.Draw(dot).ellipse((131, 131, 149, 149), fill=(255, 255, 255, 255))  # 18 px brush dot
    x = preprocess_drawing(np.asarray(dot))
    assert x is not None and x.shape == (1, 1, 28, 28) and torch.isfinite(x).all()
    img = image_of(x)
    assert max(bbox_size(img)) == 20  # a dot is scaled like any digit: into the 20x20 box
    assert all(abs(c - MNIST_CENTRE) <= 0.5 + 1e-4 for c in com(img))


# --- the main path ---------------------------------------------------------------------------------

def test_corner_stroke_is_cropped_scaled_and_centred():
    steps = preprocess_steps(draw(SEVEN))
    assert isinstance(steps, DrawingSteps)
    x = steps.tensor
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) == pytest.approx(1.0)
    img = image_of(x)
    assert max(bbox_size(img)) <= 20
    cy, cx = com(img)
    # MNIST's convention: centre of mass inside pixel 14, i.e. within 1 px of the middle (13.5).
    assert abs(cy - MNIST_CENTRE) <= 0.5 + 1e-4 and abs(cx - MNIST_CENTRE) <= 0.5 + 1e-4
    assert np.hypot(cy - 13.5, cx - 13.5) <= np.sqrt(2) * 1.0
    # The intermediate steps agree with each other and with the canvas.
    top, left, bottom, right = steps.bbox
    ys, xs = np.nonzero(np.asarray(draw(SEVEN))[:, :, 0])
    assert (top, left, bottom, right) == (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
    assert steps.grey.shape == (CANVAS, CANVAS) and steps.cropped.shape == (bottom - top, right - left)
    assert max(steps.resized.shape) == 20
    assert steps.placed.shape == steps.centred.shape == (28, 28)
    assert np.allclose(np.roll(steps.placed, steps.shift, axis=(0, 1)), steps.centred)
    assert steps.centre_of_mass == pytest.approx(com(img), abs=1e-4)
    assert steps.source == "light ink on dark"
    # Anti-aliased, like MNIST: the reduction leaves grey levels on the stroke edges.
    assert ((img > 0.05) & (img < 0.95)).sum() >= 10


def test_aspect_ratio_is_kept():
    one = image_of(preprocess_drawing(draw([(140, 40), (140, 240)])))  # a tall thin "1"
    h, w = bbox_size(one)
    assert h == 20 and w <= 4
    dash = image_of(preprocess_drawing(draw([(40, 140), (240, 140)])))  # a wide "-"
    h, w = bbox_size(dash)
    assert w == 20 and h <= 4


def test_polarity_and_transparency_give_the_same_tensor():
    reference = preprocess_drawing(draw(SEVEN))
    variants = {
        "dark on white": draw(SEVEN, ink=(0, 0, 0, 255), background=(255, 255, 255, 255)),
        "black on transparent": draw(SEVEN, ink=(0, 0, 0, 255), background=(0, 0, 0, 0)),
        "white on transparent": draw(SEVEN, ink=(255, 255, 255, 255), background=(255, 255, 255, 0)),
        "blue on cream": draw(SEVEN, ink=(30, 60, 200, 255), background=(250, 240, 220, 255)),
        "RGB": draw(SEVEN)[:, :, :3],
        "greyscale": draw(SEVEN)[:, :, 0],
        "float": draw(SEVEN)[:, :, 0] / 255.0,
        "bool": draw(SEVEN)[:, :, 0] > 0,
        "PIL RGBA": Image.fromarray(draw(SEVEN)),
        "PIL L": Image.fromarray(draw(SEVEN)).convert("L"),
        "torch": torch.from_numpy(draw(SEVEN).copy()),
    }
    for name, canvas in variants.items():
        x = preprocess_drawing(canvas)
        assert x is not None, name
        assert torch.allclose(x, reference, atol=1e-5), name
    # Anti-aliased strokes (like a browser canvas draws them) on three backgrounds agree closely.
    smooth = [preprocess_drawing(draw(SEVEN, ink=ink, background=bg, supersample=4))
              for ink, bg in [((255, 255, 255, 255), (0, 0, 0, 255)),
                              ((0, 0, 0, 255), (255, 255, 255, 255)),
                              ((0, 0, 0, 255), (0, 0, 0, 0))]]
    for x in smooth[1:]:
        assert (x - smooth[0]).abs().max() < 0.02
    assert preprocess_steps(variants["dark on white"]).source == "dark ink on light"
    assert preprocess_steps(variants["black on transparent"]).source == "ink on transparent"


def test_noisy_background_does_not_move_the_box():
    clean = preprocess_steps(draw(SEVEN, background=(40, 40, 40, 255)))
    rng = np.random.default_rng(0)
    canvas = draw(SEVEN, background=(40, 40, 40, 255)).astype(np.int16)
    canvas[:, :, :3] += rng.integers(-8, 9, size=(CANVAS, CANVAS, 1), dtype=np.int16)
    noisy = preprocess_steps(np.clip(canvas, 0, 255).astype(np.uint8))
    assert noisy.bbox == clean.bbox
    assert (noisy.tensor - clean.tensor).abs().max() < 0.05


def test_fully_inked_canvas():
    white = np.full((CANVAS, CANVAS, 4), 255, np.uint8)
    assert preprocess_drawing(white) is None  # ambiguous without a brush colour: blank paper
    for canvas, ink in [(white, "light"), (np.zeros((CANVAS, CANVAS)), "dark")]:
        img = image_of(preprocess_drawing(canvas, ink=ink))
        assert bbox_size(img) == (20, 20) and img.sum() == pytest.approx(400.0)  # a solid 20x20 block
        assert all(abs(c - MNIST_CENTRE) <= 0.5 + 1e-4 for c in com(img))
    # Knowing the brush also keeps the unpainted hole of an almost fully painted canvas as background.
    painted = white.copy()
    painted[112:168, 112:168, :3] = 0  # rows/cols 8..11 of the 20x20 box, 13..16 once centred
    img = image_of(preprocess_drawing(painted, ink="light"))
    assert bbox_size(img) == (20, 20) and img.max() == 1.0
    assert img[13:17, 13:17].max() == 0.0 and img.sum() == pytest.approx(400.0 - 16.0)
    # Without the hint the painted border reads as a light background and the hole as dark ink.
    hole = image_of(preprocess_drawing(painted))
    assert bbox_size(hole) == (20, 20) and hole.sum() == pytest.approx(400.0)


@pytest.mark.parametrize("bad", [
    np.zeros(784, np.uint8),  # 1-D
    np.zeros((0, 0), np.uint8),  # empty
    np.zeros((0, CANVAS, 4), np.uint8),  # empty rows
    np.zeros((CANVAS, CANVAS, 5), np.uint8),  # five channels
    np.zeros((3, 28, 28), np.uint8),  # channels first
    np.zeros((1, CANVAS, CANVAS, 4), np.uint8),  # a batch
    np.full((28, 28), 255.0),  # floats in 0..255
    np.full((28, 28), np.nan),  # NaN
    np.full((28, 28), -1, np.int16),  # negative integers
    np.full((28, 28), "a"),  # strings
], ids=["1d", "empty", "no-rows", "5ch", "chw", "4d", "float255", "nan", "negative", "str"])
def test_bad_input_raises_value_error(bad):
    with pytest.raises(ValueError):
        preprocess_drawing(bad)


def test_bad_ink_mode_raises():
    with pytest.raises(ValueError, match="ink must be"):
        preprocess_drawing(draw(SEVEN), ink="white")


def test_read_only_canvas_is_not_modified():
    canvas = draw(SEVEN)  # np.asarray of a PIL image is read-only, as the canvas component returns it
    before = canvas.copy()
    preprocess_drawing(canvas)
    assert np.array_equal(canvas, before)


# --- MNIST's own preparation -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_digits():
    ds = load_dataset()
    return ds.test_images[:30].numpy(), ds.test_labels[:30].numpy()


def test_mnist_centres_of_mass_lie_in_pixel_14():
    """The convention the module copies: MNIST put every digit's centre of mass inside pixel (14, 14)."""
    images = load_dataset().test_images.numpy().astype(np.float64)
    ys = np.arange(28)
    total = images.sum(axis=(1, 2))
    cy = (images.sum(axis=2) @ ys) / total
    cx = (images.sum(axis=1) @ ys) / total
    assert cy.min() >= 13.5 and cy.max() <= 14.5 and cx.min() >= 13.5 and cx.max() <= 14.5


def test_mnist_digits_pass_through_unchanged():
    """Cropping, the 20 px box and the centre-of-mass shift of an MNIST digit give back that digit."""
    digits = load_dataset().test_images[:5000].numpy()
    unchanged = 0
    for digit in digits:
        expected = digit / float(digit.max())  # the module scales the strongest ink to 1
        unchanged += np.abs(image_of(preprocess_drawing(digit)) - expected).max() < 1e-5
    assert unchanged >= 4990  # of 5,000 (4,999 measured; the odd one holds faint specks off its strokes)


@pytest.mark.parametrize("resample, mean_min, each_min", [
    (Image.Resampling.NEAREST, 0.99, 0.99),  # exactly undone by area averaging
    (Image.Resampling.BILINEAR, 0.9, 0.75),  # soft edges widen the box by about half a pixel
    (Image.Resampling.LANCZOS, 0.88, 0.6),  # ringing halos, dropped by the hysteresis step
], ids=["nearest", "bilinear", "lanczos"])
def test_upscaled_mnist_digit_comes_back(mnist_digits, resample, mean_min, each_min):
    """A test digit blown up 10x onto a 280x280 RGBA canvas is prepared back into (nearly) itself."""
    correlations = []
    for digit in mnist_digits[0]:
        big = np.asarray(Image.fromarray(digit).resize((CANVAS, CANVAS), resample))
        canvas = np.dstack([big, big, big, np.full_like(big, 255)])
        x = image_of(preprocess_drawing(canvas))
        correlations.append(np.corrcoef(x.ravel(), digit.ravel())[0, 1])
    assert np.mean(correlations) > mean_min and min(correlations) > each_min


# --- prediction ------------------------------------------------------------------------------------

def test_predict_drawing_matches_the_model_in_eval_mode():
    torch.manual_seed(0)
    model = SimpleCNN()
    model.train()
    x = preprocess_drawing(draw(SEVEN))
    probs = predict_drawing(model, x)
    assert model.training  # mode restored
    assert probs.shape == (10,) and not probs.requires_grad
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1)[0]
    assert torch.allclose(probs, expected, atol=1e-6)
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(predict_drawing(model, x[0, 0]), expected, atol=1e-6)  # (28, 28) works too
    with pytest.raises(ValueError):
        predict_drawing(model, None)
    with pytest.raises(ValueError):
        predict_drawing(model, torch.zeros(1, 1, 20, 20))


def _load_bundled_model() -> torch.nn.Module:
    from simplecnn.checkpoints import load_checkpoint
    return load_checkpoint(MODEL_PATH)[0]


@pytest.mark.skipif(not MODEL_PATH.is_file(),
                    reason="models/simplecnn_mnist.pt not trained yet (the lead bundles it)")
def test_bundled_model_reads_upscaled_mnist_digits(mnist_digits):
    """Drawn (upscaled) test digits get the model's answer for the original 28x28 digits."""
    model = _load_bundled_model()
    digits, labels = mnist_digits
    agree = correct = 0
    for digit, label in zip(digits, labels):
        big = np.asarray(Image.fromarray(digit).resize((CANVAS, CANVAS), Image.Resampling.BILINEAR))
        drawn = int(predict_drawing(model, preprocess_drawing(big)).argmax())
        original = int(predict_drawing(model, torch.from_numpy(digit).float().div(255)).argmax())
        agree += drawn == original
        correct += drawn == int(label)
    assert agree >= 29 and correct >= 28  # of 30: the preparation must not cost the model accuracy
