"""Turn a hand drawing into an MNIST-style input, step by step, so the network sees what it was trained on.

A network trained on MNIST has only ever seen digits prepared one particular way, so a drawing has to
go through the same preparation before the prediction means anything:

1. **Ink map.** MNIST is bright ink (1) on a black background (0). A canvas may be white-on-black
   (our app's default), dark-on-white, or ink on a transparent background, so we first build an
   "ink map" in [0, 1] whatever the colours were (see "Finding the ink" below).
2. **Crop to the ink's bounding box.** Where on the canvas the digit was drawn, and how big, says
   nothing about which digit it is; MNIST threw that away too.
3. **Scale the longest side to 20 px, keeping the aspect ratio.** MNIST fitted every digit into a
   20x20 box (9,997 of the 10,000 test digits have a longest side of exactly 20 px); a "1" stays
   tall and thin. The reduction is anti-aliased (area averaging, PIL's BOX filter), so edges get
   grey levels like MNIST's instead of jagged steps.
4. **Place in a 28x28 field by centre of mass.** MNIST then moved each digit so that the centre of
   mass of its ink sits at the middle of the 28x28 image (leaving a margin of about 4 px), so the
   digit's position varies as little as in training. `placed` shows the box pasted at the
   geometric centre; `centred` the result after the whole-pixel shift to the centre of mass.

Convention for "the centre": pixel (i, j) has its centre at coordinates (i, j), so rows and columns
run 0..27 and the geometric middle is 13.5. MNIST itself shifted by whole pixels and put the centre
of mass *in pixel 14*: measured over the 10,000 test digits, every centre of mass lies in
[13.5, 14.5] on both axes (mean 13.99, 14.01). We do exactly that (`MNIST_CENTRE`), so a prepared
drawing's centre of mass lies in [13.5, 14.5], i.e. within 1 px of the geometric middle on each
axis. A whole-pixel shift also avoids the blur of sub-pixel interpolation.

Finding the ink (polarity):

* **Transparent background** (an alpha channel with some alpha = 0 pixels): the colour of transparent
  pixels means nothing, so ink strength is alpha times the ink's contrast: alpha * luminance for
  light ink, alpha * (1 - luminance) for dark ink (pure black ink gives alpha alone). Whether the ink
  is light or dark is read from the alpha-weighted mean luminance of the drawn pixels.
* **Opaque image**: luminance, with the polarity read from the 1-px border: if most border pixels are
  bright, it is dark ink on a light background and the luminance is inverted. The border's median
  level is then subtracted as the background.
* Contrast within `NOISE_SIGMAS` noise levels of the border's (median absolute deviation, so ink
  touching the edge does not count as noise) is background; on a clean canvas that is nothing. If
  no pixel stands out by `MIN_PEAK_CONTRAST`, there is no drawing.
* Faint patches touching no ink of at least `STROKE_LEVEL` of the peak are dropped (hysteresis, as
  in Canny's edge detector): halos and smudges would stretch the bounding box, while the faint
  anti-aliased edges of real strokes stay.
* The rest is scaled so the strongest ink is 1, as in MNIST where nearly every digit reaches 255;
  grey or coloured brushes then work too.

Together these leave a 28x28 MNIST digit as it was: 9,983 of the 10,000 test digits come out
identical (up to that peak scaling), which is the check that we repeat MNIST's preparation.

Edge cases, decided:

* **No ink** -> `None`: a blank canvas of any single colour, a fully transparent one, or ink whose
  total amount is below `max(MIN_INK_PIXELS, MIN_INK_FRACTION * H * W)` pixels' worth (1 px of full
  ink, or about 8 px on a 280x280 canvas: a stray pixel is noise). A single deliberate dot from a
  brush is hundreds of pixels and is ink: it becomes a filled 20x20 blob, just as MNIST would have
  scaled it.
* **Fully inked canvas.** An evenly coloured image is ambiguous: all white is a blank sheet of paper
  to a dark pen and a fully painted canvas to a white brush. With `ink="auto"` (the default) it is
  read as blank (`None`). When the caller knows the brush, `ink="light"` or `ink="dark"` fixes the
  polarity; then a canvas with no background-coloured border (border median at least half-way to
  the ink colour) is measured against a pure black/white background, so a fully inked canvas gives a
  solid 20x20 block centred in the 28x28 field.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from torch import nn

MNIST_SIZE = 28  # side of the network's input
MNIST_BOX = 20  # the longest side of a digit after scaling
MNIST_CENTRE = 14.0  # where the centre of mass goes (pixel-centre coordinates 0..27); see docstring
MIN_PEAK_CONTRAST = 0.1  # a drawing must stand out from the background by at least this (26/255)
MIN_CONTRAST = 0.5 / 255  # below this, contrast is rounding error: a uint8 step of 1 still counts
NOISE_SIGMAS = 4.0  # contrast within this many noise sigmas of the border's level is background
MIN_INK_PIXELS = 1.0  # less total ink than one full pixel is no drawing
MIN_INK_FRACTION = 1e-4  # ... nor is less than this fraction of the canvas (a stray pixel or two)
STROKE_LEVEL = 0.1  # ink of 10 % of the peak or more is stroke; fainter ink only counts touching it
_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)
INK_MODES = ("auto", "light", "dark")
DOWNSCALE_FILTER = Image.Resampling.BOX  # area averaging; LANCZOS/HAMMING matched MNIST no better
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, what PIL's convert("L") uses


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields, not steps
class DrawingSteps:
    """Every intermediate image of the preparation, for the UI to show side by side."""

    source: str  # how the ink was read: "light ink on dark", "dark ink on light", "ink on transparent"
    grey: np.ndarray  # (H, W) float32 ink map in [0, 1], ink = 1, after the polarity fix
    bbox: tuple[int, int, int, int]  # (top, left, bottom, right) of the ink, half-open like slices
    cropped: np.ndarray  # (bottom - top, right - left) the ink map cut to its bounding box
    resized: np.ndarray  # (h, w), max(h, w) == 20: the crop scaled with area averaging
    placed: np.ndarray  # (28, 28) resized pasted at the geometric centre, before the shift
    centred: np.ndarray  # (28, 28) final image, centre of mass moved to MNIST_CENTRE
    shift: tuple[int, int]  # (dy, dx) whole pixels moved from `placed` to `centred`
    centre_of_mass: tuple[float, float]  # (row, col) of `centred`, in pixel-centre coordinates
    tensor: torch.Tensor  # (1, 1, 28, 28) float32 in [0, 1], ready for the model


def preprocess_drawing(image, ink: str = "auto") -> torch.Tensor | None:
    """(1, 1, 28, 28) float32 tensor prepared like an MNIST digit, or None when nothing is drawn."""
    steps = preprocess_steps(image, ink)
    return None if steps is None else steps.tensor


def preprocess_steps(image, ink: str = "auto") -> DrawingSteps | None:
    """Run the whole preparation and keep every intermediate image; None when there is no ink.

    `image`: H x W x 4 RGBA (what streamlit-drawable-canvas returns), H x W x 3 RGB, H x W x 2
    grey+alpha, H x W greyscale, as uint8 (0..255), bool or floats in [0, 1]; or a PIL image.
    `ink`: "auto" detects the polarity; "light" or "dark" states the brush colour (see module notes).
    """
    if ink not in INK_MODES:
        raise ValueError(f"ink must be one of {', '.join(INK_MODES)}, got {ink!r}")
    channels = as_channels(image)  # (H, W, C) float32 in [0, 1]
    grey, source, amount = ink_map(channels, ink)
    h, w = grey.shape
    if amount < max(MIN_INK_PIXELS, MIN_INK_FRACTION * h * w):
        return None
    bbox = ink_bbox(grey)
    top, left, bottom, right = bbox
    cropped = grey[top:bottom, left:right]
    resized = resize_longest_side(cropped, MNIST_BOX)
    placed, centred, shift = place_in_field(resized)
    tensor = torch.from_numpy(centred.copy()).reshape(1, 1, MNIST_SIZE, MNIST_SIZE)
    return DrawingSteps(source=source, grey=grey, bbox=bbox, cropped=cropped, resized=resized,
                        placed=placed, centred=centred, shift=shift,
                        centre_of_mass=centre_of_mass(centred), tensor=tensor)


@torch.no_grad()
def predict_drawing(model: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    """Class probabilities (num_classes,) for one prepared drawing, in eval mode, on the model's device."""
    if tensor is None:
        raise ValueError("Nothing to predict: the drawing has no ink (preprocess_drawing returned None).")
    x = torch.as_tensor(tensor, dtype=torch.float32)
    if x.numel() != MNIST_SIZE * MNIST_SIZE:
        raise ValueError(f"Expected one 28x28 image, got a tensor of shape {tuple(x.shape)}.")
    x = x.reshape(1, 1, MNIST_SIZE, MNIST_SIZE)  # (1, 1, 28, 28)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        logits = model(x.to(device))  # (1, num_classes)
    finally:
        model.train(was_training)
    return logits.float().softmax(dim=1)[0].cpu()


def as_channels(image) -> np.ndarray:
    """Any accepted image -> (H, W, C) float32 in [0, 1], C in 1..4 (grey, grey+alpha, RGB, RGBA)."""
    if isinstance(image, Image.Image):
        image = _pil_to_array(image)
    elif isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    try:
        array = np.asarray(image)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"Cannot read the drawing as an array: {exc}") from exc
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"Expected an image of shape (H, W), (H, W, 3) or (H, W, 4), channels last; "
                         f"got shape {array.shape}.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"The image is empty (shape {array.shape}).")
    return _to_unit_float(array)


def _pil_to_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("L", "LA", "RGB", "RGBA", "F"):
        return np.asarray(image)
    if image.mode == "1":
        return np.asarray(image.convert("L"))
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))


def _to_unit_float(array: np.ndarray) -> np.ndarray:
    """uint8 / bool / integer 0..255 / float 0..1 -> float32 0..1; anything else is a ValueError."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise ValueError(f"Integer images must hold values 0..255; got {array.min()}..{array.max()}.")
        return array.astype(np.float32) / np.float32(255)
    if np.issubdtype(array.dtype, np.floating):
        out = array.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError("The image contains NaN or infinite values.")
        if out.min() < -1e-6 or out.max() > 1 + 1e-6:
            raise ValueError(f"Float images must be in [0, 1]; got {out.min():g}..{out.max():g} "
                             "(divide 0..255 data by 255, or pass it as uint8).")
        return np.clip(out, 0.0, 1.0, out=out)
    raise ValueError(f"Unsupported pixel type {array.dtype}; use uint8, bool or floats in [0, 1].")


def ink_map(channels: np.ndarray, ink: str = "auto") -> tuple[np.ndarray, str, float]:
    """(grey (H, W) ink in [0, 1], how the ink was read, total raw ink in pixels' worth)."""
    n = channels.shape[2]
    luminance = channels[:, :, :3] @ LUMA if n >= 3 else channels[:, :, 0]  # (H, W)
    alpha = channels[:, :, -1] if n in (2, 4) else None
    if alpha is not None and alpha.min() == 0.0:
        # Transparent background: only alpha says where the ink is.
        drawn = float(alpha.sum())
        if drawn == 0.0:
            return np.zeros_like(luminance), "ink on transparent", 0.0
        light = ink == "light" or (ink == "auto" and float((luminance * alpha).sum()) / drawn >= 0.5)
        contrast = alpha * (luminance if light else 1.0 - luminance)
        source = "ink on transparent"
        floor = MIN_CONTRAST
    else:
        border = _border(luminance)
        light = ink == "light" or (ink == "auto" and np.count_nonzero(border > 0.5) * 2 <= border.size)
        ink_level = luminance if light else 1.0 - luminance
        border_level = _median(border)
        # Robust noise level of the background: median absolute deviation (x1.4826 = Gaussian sigma).
        noise = 1.4826 * _median(np.abs(border - border_level))
        floor = max(MIN_CONTRAST, NOISE_SIGMAS * noise)
        background = border_level if light else 1.0 - border_level
        if background >= 0.5:  # the border is ink-coloured: only possible with an explicit `ink`
            background = 0.0
        contrast = ink_level - np.float32(background)
        source = "light ink on dark" if light else "dark ink on light"
    contrast = np.where(contrast >= floor, contrast, np.float32(0)).astype(np.float32, copy=False)
    peak = float(contrast.max())
    if peak < MIN_PEAK_CONTRAST:  # nothing stands out: a blank (or evenly tinted) canvas
        return np.zeros_like(contrast), source, 0.0
    contrast = _keep_strokes(contrast, STROKE_LEVEL * peak)
    amount = float(contrast.sum())
    contrast *= np.float32(1.0 / peak)
    return contrast, source, amount


def _keep_strokes(contrast: np.ndarray, strong: float) -> np.ndarray:
    """Zero faint patches that touch no strong ink (hysteresis, as in Canny edge detection).

    Faint pixels joined to a stroke are its anti-aliased edge and stay (so a 28x28 MNIST digit keeps
    every grey pixel); faint islands on their own (halos, smudges, resampling ripples) would only
    stretch the bounding box.
    """
    labels, count = ndimage.label(contrast > 0, structure=_EIGHT_NEIGHBOURS)  # (H, W) int32
    if count <= 1:
        return contrast
    keep = np.zeros(count + 1, dtype=bool)
    keep[labels[contrast >= strong]] = True
    keep[0] = False
    return np.where(keep[labels], contrast, np.float32(0))


def _median(values: np.ndarray) -> float:
    """The (upper) median of a 1-D array; np.median's overhead is most of the time on a border."""
    k = values.size // 2
    return float(np.partition(values, k)[k])


def _border(values: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels of a 2-D array, flattened (corners may repeat)."""
    return np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]])


def ink_bbox(grey: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), half-open, of the non-zero pixels; the array must hold some ink."""
    rows = np.flatnonzero(grey.any(axis=1))
    cols = np.flatnonzero(grey.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def resize_longest_side(crop: np.ndarray, size: int = MNIST_BOX) -> np.ndarray:
    """Scale so the longest side is `size`, aspect ratio kept (short side at least 1 px), area-averaged."""
    h, w = crop.shape
    scale = size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    if (new_h, new_w) == (h, w):
        return crop.astype(np.float32, copy=True)
    # BOX = the mean of the source pixels each output pixel covers: MNIST-like grey edges, no ringing.
    # Enlarging (a tiny drawing) uses bilinear instead, so a dot grows smooth rather than blocky.
    resample = DOWNSCALE_FILTER if scale <= 1 else Image.Resampling.BILINEAR
    out = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32)).resize((new_w, new_h), resample)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def place_in_field(resized: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(placed at the geometric centre, centred by centre of mass, (dy, dx) between them), all 28x28."""
    h, w = resized.shape
    top, left = (MNIST_SIZE - h) // 2, (MNIST_SIZE - w) // 2
    placed = _paste(resized, top, left)
    cy, cx = centre_of_mass(resized)
    # Whole-pixel shift that lands the centre of mass in pixel 14, as MNIST did (floor(x + 0.5) rounds).
    new_top = int(np.floor(MNIST_CENTRE - cy + 0.5))
    new_left = int(np.floor(MNIST_CENTRE - cx + 0.5))
    centred = _paste(resized, new_top, new_left)
    return placed, centred, (new_top - top, new_left - left)


def _paste(image: np.ndarray, top: int, left: int) -> np.ndarray:
    """A black 28x28 field with `image` at (top, left); whatever falls outside the field is cut off."""
    field = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    h, w = image.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, MNIST_SIZE), min(left + w, MNIST_SIZE)
    if y0 < y1 and x0 < x1:
        field[y0:y1, x0:x1] = image[y0 - top:y1 - top, x0 - left:x1 - left]
    return field


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, col) of the intensity-weighted mean position; pixel (i, j) has its centre at (i, j)."""
    total = float(image.sum())
    if total == 0.0:
        return (float("nan"), float("nan"))
    rows = float(image.sum(axis=1) @ np.arange(image.shape[0], dtype=np.float32))
    cols = float(image.sum(axis=0) @ np.arange(image.shape[1], dtype=np.float32))
    return rows / total, cols / total


# -- pictures that arrive as bytes (the canvas sends a PNG over the websocket) --------------------------
MAX_PICTURE_BYTES = 4 * 1024 * 1024  # a 280x280 canvas PNG is a few kB
MAX_PICTURE_SIDE = 2048  # pixels; checked from the header, before the pixels are decoded
PICTURE_MODES = ("RGBA", "RGB", "LA", "L", "P", "1")  # 8-bit (or less) per channel


class PictureError(ValueError):
    """A picture that cannot be a drawing: too big, not a PNG, or of an unexpected pixel format."""


def decode_png(data: bytes, max_side: int = MAX_PICTURE_SIDE) -> np.ndarray:
    """(H, W, 4) uint8 RGBA from PNG bytes, refusing what would cost memory before it is spent.

    The size is read from the PNG header (Image.open decodes nothing yet), so a forged 50,000 x
    50,000 image is refused in microseconds; 16-bit and other unusual formats are refused by mode.
    """
    import io

    if len(data) > MAX_PICTURE_BYTES:
        raise PictureError(f"The drawing arrived as {len(data) / 1e6:.1f} MB; a canvas is a few kB.")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise PictureError("The drawing did not arrive as a PNG picture.")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
            if width > max_side or height > max_side or width < 1 or height < 1:
                raise PictureError(f"The drawing is {width}×{height} pixels; at most {max_side}×{max_side} "
                                   "is accepted.")
            if picture.mode not in PICTURE_MODES:
                raise PictureError(f"The drawing uses the pixel format {picture.mode}; an 8-bit picture "
                                   "(RGBA, RGB or grey) is expected.")
            return np.asarray(picture.convert("RGBA"))
    except PictureError:
        raise
    except Image.DecompressionBombError:  # PIL's own guard, from the header alone
        raise PictureError(f"The drawing declares far more pixels than a canvas has; at most "
                           f"{max_side}×{max_side} is accepted.") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise PictureError(f"The drawing could not be decoded ({type(exc).__name__}).") from None
