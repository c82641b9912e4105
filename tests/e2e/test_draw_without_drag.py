"""Draw without a mouse drag (WCAG 2.2, 2.5.7): paint cells by clicks or keys, pick a sample, upload a photo,
and draw with a finger on a touch screen. Each way must end in the Draw page's prediction.

Uses the bundled model. Axe (serious/critical) is run on Draw with each input shown.
"""
from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
from PIL import Image

from .conftest import button, canvas, goto, prediction, screenshot, wait_idle, wait_until
from .test_accessibility import blocking_report, run_axe

PAINT_HINT = "Click or tap a cell to paint it"


def open_draw(new_page, **context):
    tab = new_page(**context)
    goto(tab.page, "/draw")
    canvas(tab.page).wait_for(state="visible", timeout=60_000)
    return tab


def choose_input(page, name: str) -> None:
    """Pick one of the chooser's options (a st.radio) by clicking its label."""
    chooser = page.locator('[data-testid="stMain"] [data-testid="stRadio"]').filter(has_text="Paint cells")
    chooser.get_by_text(name, exact=True).click()
    wait_idle(page)


def cell(page, row: int, col: int):
    """A grid cell by its accessible name (rows and columns counted from 1, as they are announced)."""
    return page.get_by_role("gridcell", name=f"row {row}, column {col}", exact=True)


def painted(page) -> int:
    return page.locator('[role="gridcell"][aria-selected="true"]').count()


def read(page, expected: str, timeout: float = 45.0) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = prediction(page) or seen
        if seen == f"Prediction: {expected}":
            break
        time.sleep(0.25)
    return seen


def assert_axe_clean(page, name: str) -> None:
    report = blocking_report(run_axe(page, name))
    assert not report, report


@pytest.fixture
def draw_page(new_page, bundled_path):
    return open_draw(new_page, viewport={"width": 1400, "height": 1600})


def test_paint_a_one_by_clicks(draw_page):
    page = draw_page.page
    choose_input(page, "Paint cells")
    page.get_by_text(PAINT_HINT).wait_for()
    page.locator('[data-testid="stMain"]').get_by_text("2×2 cells", exact=True).click()
    wait_idle(page)
    for row in range(2, 13, 2):  # a 2-cell-wide bar, rows 2..13, columns 7..8: six clicks
        cell(page, row, 7).click()
    assert painted(page) == 24  # six 2x2 stamps
    text = read(page, "1")
    wait_until(lambda: page.locator(".js-plotly-plot").count() >= 2, timeout=30, message="the charts")
    shot = screenshot(page, "draw_grid_clicks")
    assert text == "Prediction: 1", f"the page read {text!r}; see {shot}"
    assert page.get_by_role("status").filter(has_text="24 of 196 cells painted").count() == 1
    assert_axe_clean(page, "draw_grid")
    button(page, "Clear").click()
    wait_idle(page)
    wait_until(lambda: painted(page) == 0, timeout=30, message="an empty grid after Clear")
    assert prediction(page) is None
    assert draw_page.problems() == [], draw_page.problems()


def test_paint_a_seven_with_the_keyboard_only(draw_page):
    page = draw_page.page
    choose_input(page, "Paint cells")
    page.get_by_role("radio", name="1 cell").focus()
    for _ in range(6):  # Tab from the brush choice into the grid, as a keyboard user would
        page.keyboard.press("Tab")
        if page.evaluate("() => { let e = document.activeElement; while (e && e.shadowRoot && "
                         "e.shadowRoot.activeElement) e = e.shadowRoot.activeElement; "
                         "return e && e.getAttribute('role'); }") == "gridcell":
            break
    else:
        pytest.fail("Tab never reached the paint grid")
    for _ in range(2):
        page.keyboard.press("ArrowDown")  # to row 3
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # to column 4
    page.keyboard.press("Space")  # the bar's first cell
    for _ in range(7):
        page.keyboard.press("Shift+ArrowRight")  # the top bar, to column 11
    for _ in range(9):  # the diagonal, down and left in steps, to row 12, column 6 or so
        page.keyboard.press("Shift+ArrowDown")
        if _ % 2 == 0:
            page.keyboard.press("Shift+ArrowLeft")
    assert painted(page) == 1 + 7 + 9 + 5
    text = read(page, "7")
    shot = screenshot(page, "draw_grid_keyboard")
    assert text == "Prediction: 7", f"the page read {text!r}; see {shot}"
    # The rerun that brought the answer kept the grid and its focus: the keys still paint.
    page.keyboard.press("Shift+ArrowDown")
    wait_until(lambda: painted(page) == 23, timeout=10, message="one more painted cell after the rerun")
    assert draw_page.problems() == [], draw_page.problems()


def test_sample_digit_buttons(draw_page):
    page = draw_page.page
    choose_input(page, "Sample digit")
    assert_axe_clean(page, "draw_sample_empty")
    for digit in ("3", "8"):
        button(page, digit).click()
        wait_idle(page)
        assert read(page, digit) == f"Prediction: {digit}"
    button(page, "Next sample of 8 (1 of 5)").click()
    wait_idle(page)
    page.get_by_role("button", name=re.compile(r"Next sample of 8 \(2 of 5\)")).wait_for()
    assert read(page, "8") == "Prediction: 8"
    assert_axe_clean(page, "draw_sample")
    assert draw_page.problems() == [], draw_page.problems()


def photo_of(digit: np.ndarray, size=(1800, 1300)) -> bytes:
    """A JPEG 'photo': the digit as dark ink on off-white paper with uneven light and noise."""
    width, height = size
    ink = np.asarray(Image.fromarray(digit).resize((650, 650), Image.Resampling.BILINEAR), np.float32) / 255
    field = np.zeros((height, width), np.float32)
    field[300:950, 600:1250] = ink
    rng = np.random.default_rng(1)
    paper = 0.9 - 0.15 * np.linspace(0, 1, width)[None, :] + rng.normal(0, 0.025, (height, width))
    grey = np.clip(paper * (1 - 0.85 * field), 0, 1)
    rgb = (np.stack([grey, grey * 0.97, grey * 0.9], axis=-1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def test_upload_a_photo(draw_page, mnist):
    page = draw_page.page
    choose_input(page, "Upload a photo")
    assert_axe_clean(page, "draw_upload_empty")
    index = int((mnist.test_labels == 4).nonzero()[0])
    data = photo_of(mnist.test_images[index].numpy())
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        {"name": "four.jpg", "mimeType": "image/jpeg", "buffer": data})
    text = read(page, "4", timeout=60)
    wait_until(lambda: page.locator(".js-plotly-plot").count() >= 2, timeout=30, message="the charts")
    page.get_by_text("0 · Your picture in grey").wait_for()
    shot = screenshot(page, "draw_upload_photo")
    assert text == "Prediction: 4", f"the page read {text!r}; see {shot}"
    assert_axe_clean(page, "draw_upload")
    # Not a picture: a clear message, and the page keeps working.
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        {"name": "notes.png", "mimeType": "image/png", "buffer": b"these are not pixels"})
    page.get_by_text("could not be read as a PNG, JPEG").wait_for(timeout=30_000)
    screenshot(page, "draw_upload_bad_file")
    assert prediction(page) is None
    assert not page.locator('[data-testid="stException"]').count()


def touch(cdp, kind: str, x: float, y: float) -> None:
    points = [] if kind == "touchEnd" else [{"x": x, "y": y, "radiusX": 4, "radiusY": 4, "force": 1, "id": 1}]
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})


def test_touch_drawing_on_a_tablet(new_page, bundled_path):
    """A finger draws a 1 on the canvas of a tablet held upright (a touch screen, no mouse at all):
    the whole canvas is within reach, and the stroke draws instead of scrolling the page."""
    tab = open_draw(new_page, viewport={"width": 820, "height": 1180}, has_touch=True, is_mobile=True,
                    device_scale_factor=2)
    page = tab.page
    target = canvas(page).first
    target.scroll_into_view_if_needed()
    box = target.bounding_box()
    column = target.evaluate("c => (c.getRootNode().host || c).closest('[data-testid=\"stColumn\"]')"
                             ".getBoundingClientRect().width")
    assert column >= box["width"], f"the canvas ({box['width']} px) is cut off by its {column} px column"
    scrolled = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollTop")
    cdp = page.context.new_cdp_session(page)
    x = box["x"] + box["width"] / 2
    top, bottom = box["y"] + box["height"] * 0.15, box["y"] + box["height"] * 0.85
    touch(cdp, "touchStart", x, top)
    for step in range(1, 31):
        touch(cdp, "touchMove", x, top + (bottom - top) * step / 30)
        time.sleep(0.01)
    touch(cdp, "touchEnd", x, bottom)
    assert page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollTop") == scrolled
    text = read(page, "1")
    shot = screenshot(page, "draw_touch")
    assert text == "Prediction: 1", f"the page read {text!r}; see {shot}"
    assert tab.problems() == [], tab.problems()


def test_explain_takes_painted_cells(new_page, bundled_path):
    """Explain shares the chooser: Your drawing -> Paint cells, six clicks, and the model answers 1."""
    tab = new_page(viewport={"width": 1400, "height": 1400})
    page = tab.page
    goto(page, "/explain")
    main = page.locator('[data-testid="stMain"]')
    main.get_by_role("radio", name="Your drawing").click()
    wait_idle(page)
    choose_input(page, "Paint cells")
    main.get_by_text("2×2 cells", exact=True).click()
    wait_idle(page)
    assert_axe_clean(page, "explain_grid")
    for row in range(2, 13, 2):
        cell(page, row, 7).click()
    wait_until(lambda: "The model says 1" in main.inner_text(), timeout=60, message="Explain's answer")
    assert "Input: your painted cells" in main.inner_text()
    wait_idle(page)
    wait_until(lambda: not main.get_by_text("Draw a digit, or paint").count(), timeout=30, message="the hint gone")
    screenshot(page, "explain_grid")
    assert tab.problems() == [], tab.problems()
