"""End to end in a real browser: enter the app, draw digits with the mouse, read the prediction.

Uses the bundled model (skipped when models/simplecnn_mnist.pt is absent). The shared server,
browser and helpers are in tests/e2e/conftest.py.
"""
from __future__ import annotations

import re
import time

import pytest

from .conftest import CONFIDENCE, button, canvas, goto, nav_link, prediction, screenshot, stroke, wait_until

HINT = "Draw a digit on the black canvas"


@pytest.fixture
def draw_page(new_page, bundled_path):
    """A fresh session that enters through the home page, as a visitor does, and follows the menu to Draw."""
    tab = new_page(viewport={"width": 1400, "height": 1600})
    goto(tab.page, "/")
    nav_link(tab.page, "Draw").click()
    tab.page.wait_for_url(re.compile(r"/draw(\?learner=[0-9a-f]{32})?$"), timeout=30_000)
    canvas(tab.page).wait_for(state="visible", timeout=60_000)
    return tab


def wait_for_prediction(page, expected: str, timeout: float = 45.0) -> str:
    """The text of the "Prediction: D" heading once it shows `expected` (or the last one seen)."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = prediction(page) or seen
        if seen == f"Prediction: {expected}":
            return seen
        time.sleep(0.25)
    return seen


def test_draw_one_and_seven_in_the_browser(draw_page):
    page = draw_page.page
    page.get_by_text(HINT).first.wait_for(timeout=60_000)  # the empty-canvas hint
    # Strokes stay clear of the top-right strip, where the canvas toolbar appears on hover.
    stroke(page, [(140, 50), (140, 250)])  # "1": one vertical stroke
    assert wait_for_prediction(page, "1") == "Prediction: 1"
    button(page, "Clear").click()
    page.get_by_text(HINT).first.wait_for(timeout=30_000)
    assert prediction(page) is None
    # After Clear the old canvas leaves with the rerun: draw on the fresh one only.
    wait_until(lambda: canvas(page).count() == 1, timeout=60, message="a single, fresh canvas")
    stroke(page, [(70, 60), (200, 60)])  # "7": the top bar ...
    stroke(page, [(200, 60), (115, 250)])  # ... and the diagonal
    text = wait_for_prediction(page, "7")
    wait_until(lambda: page.locator(".js-plotly-plot").count() >= 2, timeout=30, message="the charts")
    shot = screenshot(page, "draw_seven")
    assert text == "Prediction: 7", f"the page read {text!r}; see {shot}"
    assert page.get_by_text(CONFIDENCE).first.is_visible()
    assert draw_page.problems() == [], draw_page.problems()
