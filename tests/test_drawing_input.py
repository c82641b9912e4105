"""simplecnn.digit_sources: painted cells, sample digits and uploaded photos become inputs the network reads right.

The references are independent of the code under test: cells are made from real MNIST digits by
block averaging, sample choices are checked against a brute-force pass of the model over the test
set, and photos are synthesized from MNIST digits (uneven paper, noise, JPEG) and checked against
the digit's label.
"""
from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from simplecnn.checkpoints import load_checkpoint
from simplecnn.digit_sources import (GRID_SIDE, MAX_FULL_DECODE_PIXELS, MAX_UPLOAD_PIXELS, WORKING_SIDE, cells_to_string, decode_upload,
                                     grid_to_image, paint, parse_cells, sample_indices)
from simplecnn.drawing import PictureError, preprocess_drawing, preprocess_steps


@pytest.fixture(scope="module")
def bundled(bundled_path):
    return load_checkpoint(bundled_path)[0].eval()


def read(model, image, ink: str) -> int:
    tensor = preprocess_drawing(image, ink=ink)  # (1, 1, 28, 28)
    assert tensor is not None
    with torch.no_grad():
        return int(model(tensor).argmax())


def first_of_each_class(mnist) -> list[int]:
    return [int((mnist.test_labels == d).nonzero()[0]) for d in range(10)]


# -- the paint grid --------------------------------------------------------------------------------------
def test_cells_round_trip_and_the_image_is_the_cells_enlarged():
    rng = np.random.default_rng(0)
    cells = rng.random((GRID_SIDE, GRID_SIDE)) < 0.3
    text = cells_to_string(cells)
    assert len(text) == 196 and set(text) <= {"0", "1"}
    np.testing.assert_array_equal(parse_cells(text), cells)
    image = grid_to_image(cells)  # (28, 28)
    assert image.shape == (28, 28) and image.dtype == np.uint8
    for r, c in [(0, 0), (5, 9), (13, 13)]:
        assert (image[2 * r:2 * r + 2, 2 * c:2 * c + 2] == (255 if cells[r, c] else 0)).all()
    assert int(image.sum()) == 255 * 4 * int(cells.sum())


@pytest.mark.parametrize("value, message", [
    ("0" * 195, "196 cells"),
    ("0" * 197, "196 cells"),
    ("0" * 195 + "2", "only hold"),
    ("0" * 195 + " ", "only hold"),
    (["0"] * 196, "string"),
    (None, "string"),
])
def test_a_bad_grid_value_is_refused(value, message):
    with pytest.raises(ValueError, match=message):
        parse_cells(value)


def test_grid_side_is_bounded_before_the_value_is_read():
    with pytest.raises(ValueError, match="grid side"):
        parse_cells("0" * 10**6, side=1000)


def test_brush_paints_a_square_clipped_at_the_edges():
    cells = np.zeros((GRID_SIDE, GRID_SIDE), bool)
    two = paint(cells, 3, 4, brush=2)
    assert two.sum() == 4 and two[3:5, 4:6].all()
    corner = paint(cells, 13, 13, brush=2)
    assert corner.sum() == 1 and corner[13, 13]
    erased = paint(two, 3, 4, brush=1, ink=False)
    assert erased.sum() == 3 and not erased[3, 4]
    assert not cells.any()  # the input is never changed


def cells_from_digit(digit: np.ndarray, level: float = 0.3) -> np.ndarray:
    """(14, 14) bool: a 28x28 MNIST digit averaged over 2x2 blocks, cells darker than `level` left out."""
    blocks = digit.astype(np.float32).reshape(14, 2, 14, 2).mean(axis=(1, 3)) / 255
    return blocks > level


def test_painted_cells_of_real_digits_are_read_right(bundled, mnist):
    """A 14x14 grid is coarse, but the first 300 test digits painted on it are still read right
    at least 93 % of the time (96 % measured on the first 500; the full 28x28 digits: 99 %)."""
    n = 300
    tensors = torch.cat([preprocess_drawing(grid_to_image(cells_from_digit(mnist.test_images[i].numpy())),
                                            ink="light") for i in range(n)])  # (n, 1, 28, 28)
    with torch.no_grad():
        right = (bundled(tensors).argmax(1) == mnist.test_labels[:n]).float().mean().item()
    assert right >= 0.93, right


def test_a_one_painted_by_six_two_by_two_stamps_reads_one(bundled):
    """What the browser test clicks: a 2-cell bar from row 2 to 13 in columns 7-8 (counted from 1)."""
    cells = np.zeros((GRID_SIDE, GRID_SIDE), bool)
    for row in range(1, 12, 2):
        cells = paint(cells, row, 6, brush=2)
    assert cells.sum() == 24
    assert read(bundled, grid_to_image(cells), ink="light") == 1


# -- sample digits --------------------------------------------------------------------------------------
def test_sample_indices_are_the_first_test_images_the_model_reads_right(bundled, mnist):
    with torch.no_grad():
        predictions = torch.cat([bundled(mnist.test_images[i:i + 2000].float().div(255).unsqueeze(1)).argmax(1)
                                 for i in range(0, len(mnist.test_labels), 2000)])  # (10000,)
    labels = mnist.test_labels.tolist()
    predicted = predictions.tolist()
    for digit in range(10):
        expected = [i for i, (y, p) in enumerate(zip(labels, predicted)) if y == digit and p == digit][:5]
        found = sample_indices(mnist.test_labels, predictions, digit, count=5)
        assert found == expected, digit
        for index in found:  # each is a real test image of that class, and the model reads it so
            assert int(mnist.test_labels[index]) == digit
            assert read(bundled, mnist.test_images[index].numpy(), ink="light") == digit


def test_sample_indices_skip_misread_images():
    labels = torch.tensor([3, 3, 1, 3, 3])
    predictions = torch.tensor([5, 3, 1, 8, 3])
    assert sample_indices(labels, predictions, 3, count=5) == [1, 4]
    assert sample_indices(labels, predictions, 7) == []
    with pytest.raises(ValueError, match="differ"):
        sample_indices(labels, predictions[:3], 3)


# -- uploads ---------------------------------------------------------------------------------------------
def photo(digit: np.ndarray, dark_ink: bool, size=(1800, 1300), fmt="JPEG", seed=0) -> bytes:
    """A 'photo' of a written digit: large, uneven light across the paper, sensor noise, compressed.

    dark_ink: dark ink on off-white paper (a pen on paper); otherwise light chalk on a dark board.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    side = min(width, height) // 2
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR), np.float32) / 255
    field = np.zeros((height, width), np.float32)
    top, left = (height - side) // 2 + 40, (width - side) // 2 - 60  # off-centre, as hand-held photos are
    field[top:top + side, left:left + side] = ink
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    if dark_ink:
        paper = 0.92 - 0.2 * x - 0.06 * y + rng.normal(0, 0.03, (height, width))
        grey = paper * (1 - 0.85 * field)
    else:
        board = 0.1 + 0.08 * x + rng.normal(0, 0.02, (height, width))
        grey = board + 0.75 * field
    grey = np.clip(grey, 0, 1)
    rgb = (np.stack([grey, grey * 0.96, grey * 0.9], axis=-1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.mark.parametrize("dark_ink, fmt", [(True, "JPEG"), (False, "PNG")])
def test_photos_of_real_digits_are_read_right_in_either_polarity(bundled, mnist, dark_ink, fmt):
    for digit, index in enumerate(first_of_each_class(mnist)):
        grey = decode_upload(photo(mnist.test_images[index].numpy(), dark_ink, fmt=fmt, seed=digit))
        assert grey.ndim == 2 and max(grey.shape) <= WORKING_SIDE
        steps = preprocess_steps(grey, ink="auto")
        assert steps is not None
        assert steps.source == ("dark ink on light" if dark_ink else "light ink on dark")
        assert read(bundled, grey, ink="auto") == digit, (digit, dark_ink)


def test_a_small_scan_keeps_its_size(mnist):
    buffer = io.BytesIO()
    Image.fromarray(255 - mnist.test_images[0].numpy()).save(buffer, format="PNG")  # dark on white, 28x28
    grey = decode_upload(buffer.getvalue())
    np.testing.assert_array_equal(grey, 255 - mnist.test_images[0].numpy())


def test_a_sideways_phone_photo_is_turned_upright():
    """EXIF orientation 6 (the camera was turned 90°): the decoded picture is rotated to stand upright."""
    image = Image.new("RGB", (300, 200), "white")
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    assert decode_upload(buffer.getvalue()).shape == (300, 200)  # (H, W): now taller than wide


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but which holds one tiny compressed row."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def test_huge_dimensions_are_refused_from_the_header_before_decoding():
    data = png_claiming(50_000, 50_000)  # 2.5 Gpx: 2.5 GB as grey if it were decoded
    assert len(data) < 200
    start = time.perf_counter()
    with pytest.raises(PictureError, match="pixels; at most (16|50) million"):
        decode_upload(data)
    assert time.perf_counter() - start < 0.5
    with pytest.raises(PictureError, match="5000×4000 pixels; at most 16 million pixels are accepted in a PNG"):
        decode_upload(png_claiming(5000, 4000))  # a PNG decodes whole: 20 Mpx is over its bound
    assert MAX_FULL_DECODE_PIXELS < 5000 * 4000 < MAX_UPLOAD_PIXELS  # ... which a JPEG's would not be


def test_too_many_bytes_are_refused_before_reading_them():
    with pytest.raises(PictureError, match="at most 10 MB"):
        decode_upload(b"\xff\xd8" + b"\x00" * (10 * 1024 * 1024))


@pytest.mark.parametrize("data", [b"", b"these are not pixels", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
                                  b"\xff\xd8\xff\xe0" + b"\x00" * 30, b"%PDF-1.4 not an image"])
def test_bad_bytes_give_a_clear_message(data):
    with pytest.raises(PictureError) as caught:
        decode_upload(data)
    assert "empty" in str(caught.value) or "could not be read as a PNG, JPEG" in str(caught.value)


def test_a_big_jpeg_is_decoded_at_a_reduced_scale(mnist):
    """A 12 Mpx JPEG comes out with its longest side at WORKING_SIDE, aspect kept."""
    data = photo(mnist.test_images[0].numpy(), True, size=(4000, 3000))
    grey = decode_upload(data)
    assert grey.shape == (384, 512)


def test_a_16_bit_scan_keeps_its_ink_instead_of_turning_white():
    """Pillow's convert("L") clips 16-bit values (1000 and 30000 both become 255): scale them first."""
    scan = np.full((120, 90), 2000, np.uint16)  # dark paper
    scan[20:100, 40:50] = 60000  # a light stroke
    data = io.BytesIO()
    Image.fromarray(scan).save(data, format="PNG")
    grey = decode_upload(data.getvalue())
    assert grey.dtype == np.uint8
    assert grey[60, 45] == round(60000 / 65535 * 255) and grey[5, 5] == round(2000 / 65535 * 255)


def test_a_long_thin_jpeg_that_cannot_be_decoded_small_is_refused():
    """A JPEG's reduced decoding follows its shorter side: 40,000×1,000 would be decoded whole (40 Mpx)."""
    data = io.BytesIO()
    Image.new("L", (40_000, 1_000), 255).save(data, format="JPEG")
    assert len(data.getvalue()) < 1_000_000  # small on disk: only the pixel bound protects the server
    with pytest.raises(PictureError, match="too long and thin"):
        decode_upload(data.getvalue())


def test_a_phones_multi_picture_jpeg_is_decoded_at_a_reduced_scale():
    """Phones write MPO (several JPEGs in one file); Pillow opens it as format "MPO", still a JPEG."""
    big = Image.new("L", (4000, 3000), 255)
    data = io.BytesIO()
    big.save(data, format="MPO", save_all=True, append_images=[big.resize((400, 300))])
    with Image.open(io.BytesIO(data.getvalue())) as opened:
        assert opened.format == "MPO"
    grey = decode_upload(data.getvalue(), max_full_pixels=4_000_000)  # whole decoding alone would refuse 12 Mpx
    assert max(grey.shape) <= WORKING_SIDE
