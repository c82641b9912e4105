"""Draw and Explain with every input source: painted cells, a sample digit, an uploaded photo.

The paint grid is fed the way its browser component reports (its widget value {"cells": "0101..."});
the uploader gets real JPEG/PNG bytes. The numbers on the page are compared with torch run on
pictures made here, independently of the page (grid_to_image of the same cells, the test image
itself, the decoded photo).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from simplecnn.checkpoints import load_checkpoint
from simplecnn.digit_sources import cells_to_string, decode_upload, grid_to_image, paint
from simplecnn.drawing import preprocess_drawing
from test_drawing_input import photo
from test_page_draw import chart, decode, hint_shown, predictions

ROOT = Path(__file__).resolve().parent.parent
DRAW = str(ROOT / "pages" / "draw.py")
EXPLAIN = str(ROOT / "pages" / "explain.py")


def one_cells() -> np.ndarray:
    """A painted 1: a 2-cell-wide bar, six 2x2 stamps (what the browser test clicks)."""
    cells = np.zeros((14, 14), bool)
    for row in range(1, 12, 2):
        cells = paint(cells, row, 6, brush=2)
    return cells


def torch_probs(model, image, ink: str) -> np.ndarray:
    tensor = preprocess_drawing(image, ink=ink)  # (1, 1, 28, 28)
    with torch.no_grad():
        return model(tensor).softmax(dim=1)[0].numpy()


def paint_hint(at: AppTest) -> bool:
    return any(i.value.startswith("Paint a digit on the grid") for i in at.info)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    return at


@pytest.fixture(scope="module")
def bundled(bundled_path):
    return load_checkpoint(bundled_path)[0].eval()


@pytest.fixture
def draw(bundled_path) -> AppTest:
    at = AppTest.from_file(DRAW, default_timeout=60)
    return ok(at.run())


def choose(at: AppTest, name: str, source: str) -> AppTest:
    at.radio(key=f"{name}_input_kind").set_value(source)
    return ok(at.run())


# -- Draw ------------------------------------------------------------------------------------------------
def keep_buttons(at) -> list:
    """The Draw page's "Keep it" buttons (Your handwriting's label control)."""
    return [b for b in at.button if (b.key or "").startswith("hw_keep_")]


def test_draw_offers_four_sources_and_starts_with_the_canvas(draw):
    assert draw.radio(key="draw_input_kind").options == ["Draw", "Paint cells", "Sample digit", "Upload a photo"]
    assert draw.radio(key="draw_input_kind").value == "Draw"
    assert hint_shown(draw) and not predictions(draw)


def test_painted_cells_are_read_like_a_drawing(draw, bundled):
    choose(draw, "draw", "Paint cells")
    assert paint_hint(draw) and not predictions(draw)  # an empty grid: nothing to read yet
    cells = one_cells()
    draw.session_state["draw_grid_0"] = {"cells": cells_to_string(cells)}
    ok(draw.run())
    assert predictions(draw) == ["## Prediction: 1"]
    expected = torch_probs(bundled, grid_to_image(cells), "light")
    np.testing.assert_allclose(decode(chart(draw, "draw_probs")["data"][0]["y"]), expected, atol=1e-5)
    assert draw.session_state["draw_reading"][1].predicted == 1  # what Inside the network reads
    assert keep_buttons(draw)  # the learner's own writing can be kept for Your handwriting
    assert not any("tiny" in i.value for i in draw.info)  # a 28x28 picture is not a tiny canvas drawing
    # The cells outlive a look at another source ...
    choose(draw, "draw", "Draw")
    assert not predictions(draw)
    choose(draw, "draw", "Paint cells")
    assert predictions(draw) == ["## Prediction: 1"]
    # ... and Clear empties the grid under a new key.
    draw.button(key="draw_grid_clear").click()
    ok(draw.run())
    assert paint_hint(draw) and not predictions(draw)
    assert draw.session_state["draw_grid_cells"] == "0" * 196


def test_a_forged_grid_value_is_a_warning_not_a_crash(draw):
    choose(draw, "draw", "Paint cells")
    draw.session_state["draw_grid_0"] = {"cells": "1" * 10_000}
    ok(draw.run())
    assert any("unexpected" in w.value and "196 cells" in w.value for w in draw.warning)
    assert not predictions(draw)


def test_sample_buttons_load_real_test_digits(draw, bundled, mnist):
    choose(draw, "draw", "Sample digit")
    assert not predictions(draw) and any(i.value.startswith("Pick a class above") for i in draw.info)
    for digit in (0, 7):
        draw.button(key=f"draw_sample_{digit}").click()
        ok(draw.run())
        assert predictions(draw) == [f"## Prediction: {digit}"]
        assert not keep_buttons(draw)  # MNIST's writing is not the learner's to teach
        first = int((mnist.test_labels == digit).nonzero()[0])  # the bundled model reads these first ones right
        image = mnist.test_images[first].numpy()
        np.testing.assert_allclose(decode(chart(draw, "draw_probs")["data"][0]["y"]),
                                   torch_probs(bundled, image, "light"), atol=1e-5)
    nxt = draw.button(key="draw_sample_next")
    assert nxt.label == "Next sample of 7 (1 of 5)"
    nxt.click()
    ok(draw.run())
    assert draw.button(key="draw_sample_next").label == "Next sample of 7 (2 of 5)"
    second = int((mnist.test_labels == 7).nonzero()[1])
    np.testing.assert_allclose(decode(chart(draw, "draw_probs")["data"][0]["y"]),
                               torch_probs(bundled, mnist.test_images[second].numpy(), "light"), atol=1e-5)
    assert predictions(draw) == ["## Prediction: 7"]


@pytest.mark.parametrize("dark_ink, name, mime", [(True, "photo.jpg", "image/jpeg"), (False, "scan.png", "image/png")])
def test_an_uploaded_photo_goes_through_the_same_preparation(draw, bundled, mnist, dark_ink, name, mime):
    choose(draw, "draw", "Upload a photo")
    index = int((mnist.test_labels == 5).nonzero()[0])
    data = photo(mnist.test_images[index].numpy(), dark_ink, fmt="JPEG" if mime == "image/jpeg" else "PNG")
    draw.file_uploader(key="draw_upload").set_value((name, data, mime))
    ok(draw.run())
    assert predictions(draw) == ["## Prediction: 5"]
    grey = decode_upload(data)
    np.testing.assert_allclose(decode(chart(draw, "draw_probs")["data"][0]["y"]),
                               torch_probs(bundled, grey, "auto"), atol=1e-5)
    h, w = grey.shape
    captions = [c for image in draw.image for c in image.captions]
    assert any(c.startswith(f"0 · Your picture in grey ({w}×{h} px)") for c in captions), captions
    assert f"1 · Ink map ({w}×{h}): ink 1, background 0" in captions


def test_a_file_that_is_not_a_picture_is_explained(draw):
    choose(draw, "draw", "Upload a photo")
    draw.file_uploader(key="draw_upload").set_value(("notes.png", b"these are not pixels", "image/png"))
    ok(draw.run())
    assert any("could not be read as a PNG, JPEG" in e.value for e in draw.error)
    assert not predictions(draw)


# -- Explain ---------------------------------------------------------------------------------------------
@pytest.fixture
def explain(bundled_path) -> AppTest:
    at = AppTest.from_file(EXPLAIN, default_timeout=120)
    ok(at.run())
    at.segmented_control(key="explain_source").set_value("Your drawing")
    return ok(at.run())


def page_text(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def test_explain_reads_a_sample_digit_with_its_true_class(explain, mnist):
    choose(explain, "explain", "Sample digit")
    explain.button(key="explain_sample_3").click()
    ok(explain.run())
    index = int((mnist.test_labels == 3).nonzero()[0])
    assert f"Input: test image #{index} (a sample of 3) · true class **3**" in page_text(explain)
    assert "## The model says 3" in page_text(explain)


def test_explain_reads_painted_cells(explain):
    choose(explain, "explain", "Paint cells")
    assert any(i.value.startswith("Draw a digit") for i in explain.info)
    explain.session_state["explain_grid_0"] = {"cells": cells_to_string(one_cells())}
    ok(explain.run())
    assert "Input: your painted cells" in page_text(explain) and "## The model says 1" in page_text(explain)


def test_explain_reads_an_uploaded_photo(explain, mnist):
    choose(explain, "explain", "Upload a photo")
    index = int((mnist.test_labels == 2).nonzero()[0])
    data = photo(mnist.test_images[index].numpy(), True)
    explain.file_uploader(key="explain_upload").set_value(("two.jpg", data, "image/jpeg"))
    ok(explain.run())
    assert "Input: your picture 'two.jpg'" in page_text(explain) and "## The model says 2" in page_text(explain)
