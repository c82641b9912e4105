"""Ways to give the network a digit without dragging a pen: painted cells, a sample test digit, a photo.

Each one ends as an ordinary picture that `simplecnn.drawing.preprocess_steps` prepares like an
MNIST digit, so every source is read the same way as a canvas drawing (WCAG 2.2, 2.5.7 asks for a
single-pointer alternative to dragging; a keyboard or a click can paint cells).
"""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageOps

from simplecnn.drawing import PictureError

GRID_SIDE = 14  # cells per side of the paint grid: 196 cells, each one 2x2 MNIST pixels
MAX_GRID_SIDE = 64  # a grid value claiming more cells than this is refused before it is read
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # Streamlit's default server.maxUploadSize is 200 MB; ours is this
MAX_UPLOAD_PIXELS = 50_000_000  # a JPEG up to 50 Mpx: decoded at 1/8 scale, under 1 Mpx in memory
MAX_FULL_DECODE_PIXELS = 16_000_000  # other formats decode whole (3 bytes a pixel): a 300 dpi A4 scan is 8.7 Mpx
WORKING_SIDE = 512  # a photo is reduced to at most this longest side before its ink is looked for
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")


# -- the paint grid -------------------------------------------------------------------------------------
def parse_cells(value: object, side: int = GRID_SIDE) -> np.ndarray:
    """(side, side) bool from the grid's value: a string of side*side '0'/'1' characters, row by row.

    Anything else (wrong length, other characters, another type) is a ValueError; the length is
    checked before a single character is looked at.
    """
    if not 1 <= side <= MAX_GRID_SIDE:
        raise ValueError(f"grid side must be 1..{MAX_GRID_SIDE}, got {side}")
    if not isinstance(value, str):
        raise ValueError(f"the grid's value must be a string of 0s and 1s, got {type(value).__name__}")
    if len(value) != side * side:
        raise ValueError(f"the grid's value must have {side * side} cells, got {len(value)}")
    if value.strip("01"):
        raise ValueError("the grid's value may only hold the characters 0 and 1")
    return (np.frombuffer(value.encode("ascii"), dtype=np.uint8) == ord("1")).reshape(side, side)


def cells_to_string(cells: np.ndarray) -> str:
    """The inverse of parse_cells: (side, side) bool -> '0'/'1' string, row by row."""
    return "".join("1" if c else "0" for c in np.asarray(cells, dtype=bool).ravel())


def grid_to_image(cells: np.ndarray, scale: int = 2) -> np.ndarray:
    """(side * scale, side * scale) uint8 picture of the painted cells: white ink (255) on black (0).

    Each cell becomes a scale x scale block, so a 14x14 grid gives a 28x28 picture like MNIST's.
    """
    cells = np.asarray(cells, dtype=bool)  # (side, side)
    block = np.ones((scale, scale), dtype=np.uint8)
    return np.kron(cells.astype(np.uint8), block) * np.uint8(255)  # (side * scale, side * scale)


def paint(cells: np.ndarray, row: int, col: int, brush: int = 1, ink: bool = True) -> np.ndarray:
    """A copy of `cells` with a brush x brush square set to `ink`, its top-left corner at (row, col).

    The same rule the grid's JavaScript follows, here so the tests can paint a digit cell by cell.
    """
    out = np.array(cells, dtype=bool, copy=True)
    out[max(row, 0):row + brush, max(col, 0):col + brush] = ink
    return out


# -- sample digits ----------------------------------------------------------------------------------------
def sample_indices(labels: torch.Tensor, predictions: torch.Tensor, digit: int, count: int = 5) -> list[int]:
    """The first `count` test-set indices whose label is `digit` and that the model read right, in order.

    Deterministic: the same model and labels always give the same samples, so a learner can point
    to "sample 2 of the sevens" and a classmate sees the same image.
    """
    labels = torch.as_tensor(labels)
    predictions = torch.as_tensor(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and predictions {tuple(predictions.shape)} differ")
    right = ((labels == digit) & (predictions == digit)).nonzero().flatten()  # (k,)
    return [int(i) for i in right[:count]]


def _grey(picture: Image.Image) -> Image.Image:
    """8-bit grey. Pillow's convert("L") clips 16-bit and float pictures (a 16-bit scan would turn
    white), so those are scaled to 0..255 first."""
    if picture.mode.startswith("I") or picture.mode == "F":
        values = np.asarray(picture, dtype=np.float64)  # (H, W)
        top = 65535.0 if picture.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        if picture.mode == "F":
            top = max(float(values.max(initial=0)), 1e-12)
        return Image.fromarray(np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8), mode="L")
    return picture.convert("L")


# -- uploads --------------------------------------------------------------------------------------------
def decode_upload(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_UPLOAD_PIXELS,
                  max_full_pixels: int = MAX_FULL_DECODE_PIXELS, working_side: int = WORKING_SIDE) -> np.ndarray:
    """(H, W) uint8 grey picture from an uploaded photo or scan, longest side at most `working_side`.

    Every bound is checked before memory is spent: the byte count first, then the size the file's
    header declares (Image.open decodes no pixels yet). A JPEG may declare up to `max_pixels`: it is
    decoded straight at a reduced scale (its DCT allows 1/2, 1/4, 1/8: `draft`), so a 12 Mpx phone
    photo never occupies 36 MB. Other formats decode whole, so they may declare `max_full_pixels`.
    The camera's EXIF orientation is applied, so a photo taken sideways reads upright.
    """
    if len(data) > max_bytes:
        raise PictureError(f"The file is {len(data) / 1e6:.1f} MB; at most {max_bytes / 1e6:.0f} MB is accepted.")
    if not data:
        raise PictureError("The file is empty.")
    try:
        with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as picture:
            width, height = picture.size
            jpeg = picture.format in ("JPEG", "MPO")  # MPO: a phone's multi-picture JPEG
            limit = max_pixels if jpeg else min(max_pixels, max_full_pixels)
            if width < 1 or height < 1 or width * height > limit:
                kind = "JPEG" if jpeg else f"{picture.format} (a JPEG may have more)"
                raise PictureError(f"The picture is {width}×{height} pixels; at most {limit / 1e6:.0f} million "
                                   f"pixels are accepted in a {kind}.")
            if jpeg:
                picture.draft("L", (working_side, working_side))  # decode at 1/2..1/8 scale when possible
                # The scale follows the shorter side: a 50,000×1,000 strip stays whole. Check what will
                # really be decoded.
                if picture.size[0] * picture.size[1] > max_full_pixels:
                    raise PictureError(f"The picture is {width}×{height} pixels, too long and thin to be "
                                       f"read at a reduced size; at most {max_full_pixels / 1e6:.0f} million "
                                       "pixels are decoded.")
            grey = _grey(ImageOps.exif_transpose(picture))
            if max(grey.size) > working_side:
                grey.thumbnail((working_side, working_side), Image.Resampling.BOX)
            return np.asarray(grey)  # (H, W) uint8
    except PictureError:
        raise
    except Image.DecompressionBombError:
        raise PictureError(f"The picture declares far too many pixels; at most {max_pixels / 1e6:.0f} million "
                           "are accepted.") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # UnidentifiedImageError is an OSError
        raise PictureError(f"This file could not be read as a PNG, JPEG, WebP, BMP or GIF picture "
                           f"({type(exc).__name__}).") from None
