"""Bad input that used to reach memory or a traceback: refused with a clear message, nothing allocated.

Checkpoints (uploads), training settings from files, and pictures that arrive from the browser.
"""
import io
import json
import time
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from simplecnn.checkpoints import MAX_CHECKPOINT_BYTES, checkpoint_bytes, checkpoint_payload, load_checkpoint
from simplecnn.drawing import PictureError, decode_png
from simplecnn.model import SimpleCNN
from simplecnn.training import TrainConfig


def saved(payload) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def with_meta(**changes) -> bytes:
    payload = checkpoint_payload(SimpleCNN())
    meta = json.loads(payload["meta_json"])
    for key, value in changes.items():
        target, _, field = key.partition("__")
        if field:
            meta[target][field] = value
        else:
            meta[target] = value
    payload["meta_json"] = json.dumps(meta)
    return saved(payload)


def recompressed(data: bytes) -> bytes:
    """The same checkpoint with its zip entries deflated (torch.save never does this)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    return out.getvalue()


def test_a_zip_bomb_is_refused_by_its_declared_sizes_before_loading(monkeypatch):
    """~10 KB that would unpack to 200 MB: refused from the zip directory; torch.load never runs."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (200 * 1024 * 1024))
    data = out.getvalue()
    assert len(data) < MAX_CHECKPOINT_BYTES

    def must_not_run(*args, **kwargs):
        raise AssertionError("torch.load ran on a zip bomb")

    monkeypatch.setattr(torch, "load", must_not_run)
    started = time.perf_counter()
    with pytest.raises(ValueError, match="compressed"):
        load_checkpoint(data)
    assert time.perf_counter() - started < 1.0


def test_a_real_checkpoint_with_compressed_entries_is_refused():
    with pytest.raises(ValueError, match="compressed"):
        load_checkpoint(recompressed(checkpoint_bytes(SimpleCNN())))


def test_stored_entries_declaring_too_much_are_refused():
    """A small archive whose directory claims 5 x 1 GB: refused by what it declares."""
    data = bytearray(checkpoint_bytes(SimpleCNN()))
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) >= 0:  # each central directory record
        data[start + 24:start + 28] = (1 << 30).to_bytes(4, "little")  # its "uncompressed size"
        start += 4
    with pytest.raises(ValueError, match="declares"):
        load_checkpoint(bytes(data))


def test_a_legacy_non_zip_pickle_is_refused():
    buffer = io.BytesIO()
    torch.save(SimpleCNN().state_dict(), buffer, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="torch.save"):
        load_checkpoint(buffer.getvalue())


@pytest.mark.parametrize("classes", [1, 0, -3, 101, 10_000, 2.5, "10", None, True, [10]])
def test_num_classes_must_be_a_whole_number_from_2_to_100(classes):
    with pytest.raises(ValueError, match="num_classes|architecture"):
        load_checkpoint(with_meta(architecture__num_classes=classes))


@pytest.mark.parametrize("p", [float("nan"), float("inf"), -0.1, 1.0, "0.5", None])
def test_dropout_rates_must_be_numbers_in_0_1(p):
    with pytest.raises(ValueError, match="dropout1"):
        load_checkpoint(with_meta(architecture__dropout1=p))


def test_huge_or_deeply_nested_metadata_is_refused():
    payload = checkpoint_payload(SimpleCNN())
    meta = json.loads(payload["meta_json"])
    meta["history"] = {"x": "a" * (5 * 1024 * 1024)}
    payload["meta_json"] = json.dumps(meta)
    with pytest.raises(ValueError, match="too large"):
        load_checkpoint(saved(payload))
    nested: dict = {}
    node = nested
    for _ in range(5000):
        node["n"] = {}
        node = node["n"]
    meta["history"] = {}
    payload["meta_json"] = json.dumps(meta)[:-1] + ', "deep": ' + '{"n": ' * 5000 + "1" + "}" * 5000 + "}"
    with pytest.raises(ValueError, match="corrupt|deeply"):
        load_checkpoint(saved(payload))
    meta["metrics"] = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": {"l": {}}}}}}}}}}}}}
    payload["meta_json"] = json.dumps(meta)
    with pytest.raises(ValueError, match="deeply"):
        load_checkpoint(saved(payload))


@pytest.mark.parametrize("config", [{"learning_rate": "0.1"}, {"learning_rate": None}, {"epochs": [3]},
                                    {"batch_norm": "yes"}, {"dropout1": float("nan")}, {"subset": 1.5}])
def test_training_settings_of_the_wrong_type_are_refused(config):
    with pytest.raises(ValueError, match="training settings are invalid"):
        load_checkpoint(with_meta(config=config))
    with pytest.raises(ValueError):
        TrainConfig.from_dict(config).validate()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_weights_with_nan_or_inf_are_refused(value):
    model = SimpleCNN()
    with torch.no_grad():
        model.fc1.weight[3, 7] = value
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_checkpoint(checkpoint_bytes(model))


def test_a_good_checkpoint_still_loads_after_all_these_checks():
    model, meta = load_checkpoint(checkpoint_bytes(SimpleCNN(num_classes=7), config=TrainConfig().to_dict()))
    assert model.num_classes == 7 and meta["config"]["learning_rate"] == 1e-3


# -- pictures from the browser -------------------------------------------------------------------------
def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_canvas_png_decodes_to_rgba():
    pixels = np.zeros((280, 280, 4), np.uint8)
    pixels[100:180, 130:150] = 255
    out = decode_png(png(pixels))
    assert out.shape == (280, 280, 4) and out.dtype == np.uint8 and np.array_equal(out, pixels)


def test_a_huge_png_is_refused_from_its_header_before_decoding():
    """A 30,000 x 30,000 PNG of zeros compresses to ~1 MB but would take 3.6 GB as RGBA."""
    import zlib
    width = height = 30_000
    raw = zlib.compress(b"\0" * ((width + 1) * 200), 9)  # only 200 rows of data: the header is what matters

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    started = time.perf_counter()
    with pytest.raises(PictureError, match="pixels"):
        decode_png(data)
    assert time.perf_counter() - started < 0.5


def test_a_16_bit_png_is_refused_with_its_format():
    with pytest.raises(PictureError, match="pixel format"):
        picture = Image.new("I;16", (28, 28))
        picture.putdata([40000] * 28 * 28)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        decode_png(buffer.getvalue())


@pytest.mark.parametrize("data", [b"", b"hello", b"GIF89a" + b"\0" * 100, b"\x89PNG\r\n\x1a\n" + b"\0" * 50,
                                  b"\x89PNG\r\n\x1a\n" * (600 * 1024)])
def test_not_a_png_or_too_big_is_a_picture_error(data):
    with pytest.raises(PictureError):
        decode_png(data)


@pytest.mark.parametrize("forged", ["huge", "16-bit", "not a png"])
def test_a_forged_canvas_message_gives_a_warning_not_a_traceback(forged):
    """What the canvas component hands the page is whatever the websocket carried: the page decodes
    it with bounds and shows a warning instead of an exception."""
    from streamlit.testing.v1 import AppTest

    def page(forged: str) -> None:
        import io
        import types
        import zlib

        import streamlit_drawable_canvas
        from PIL import Image

        from dashboard.canvas import digit_canvas

        if forged == "huge":
            def chunk(kind, body):
                return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
            side = (40_000).to_bytes(4, "big")
            data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", side + side + bytes([8, 6, 0, 0, 0]))
                    + chunk(b"IDAT", zlib.compress(b"\0" * 100_000)) + chunk(b"IEND", b""))
        elif forged == "16-bit":
            picture = Image.new("I;16", (280, 280))
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            data = buffer.getvalue()
        else:
            data = b"<svg>not a png</svg>"
        real = streamlit_drawable_canvas.st_canvas
        streamlit_drawable_canvas.st_canvas = lambda **kwargs: types.SimpleNamespace(image_bytes=data)
        try:
            image = digit_canvas("forged")
        finally:  # the module is shared by every later test in this process
            streamlit_drawable_canvas.st_canvas = real
        import streamlit as st
        st.write("image is None" if image is None else "image decoded")

    at = AppTest.from_function(page, args=(forged,), default_timeout=30).run()
    assert not at.exception
    assert len(at.warning) == 1 and "Clear the canvas" in at.warning[0].value
    assert any("image is None" in m.value for m in at.markdown)
