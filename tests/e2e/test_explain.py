"""End to end in a real browser: open Explain from the menu, draw a 7, attack it, run the sanity check and
the invariance probe; screenshots in artifacts/screenshots/explain_*.png.

Uses the bundled model (skipped when models/simplecnn_mnist.pt is absent).
"""
from __future__ import annotations

import re

import pytest

from .conftest import (canvas, exception_boxes, goto, nav_link, screenshot, set_slider, stroke, wait_for_text,
                       wait_idle, wait_until)


@pytest.fixture
def explain_page(new_page, bundled_path):
    """A fresh session that enters at Home and follows the menu to Explain."""
    tab = new_page(viewport={"width": 1400, "height": 1200})
    goto(tab.page, "/")
    nav_link(tab.page, "Explain").click()
    tab.page.wait_for_url(re.compile(r"/explain(\?learner=[0-9a-f]{32})?$"), timeout=30_000)
    wait_for_text(tab.page, "The model says 7", timeout=90)  # test image #0 by default
    wait_idle(tab.page)
    return tab


def pick(page, label: str, option: str) -> None:
    """Choose an option of a st.selectbox from the keyboard-opened list: after a slider was moved with
    the keyboard, a click on the box (or on its arrow) focuses it without opening the list."""
    box = page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').filter(has_text=label).first
    field = box.get_by_role("combobox")
    field.click()
    field.press("ArrowDown")
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    wait_idle(page)


def test_draw_attack_and_probe_in_the_browser(explain_page):
    page = explain_page.page
    main = page.locator('[data-testid="stMain"]')
    main.get_by_role("radio", name="Your drawing").click()  # a segmented control: radio buttons
    wait_until(lambda: canvas(page).count() == 1, timeout=60, message="the drawing canvas")
    stroke(page, [(70, 60), (200, 60)])  # a 7: the top bar ...
    stroke(page, [(200, 60), (115, 250)])  # ... and the diagonal
    wait_for_text(page, "Input: your drawing", timeout=60)
    wait_for_text(page, "The model says 7", timeout=60)
    wait_idle(page)

    # 1. attack: PGD at ε = 0.20, then the smallest change that makes it a 1
    main.get_by_role("radio", name="PGD", exact=True).click()
    wait_idle(page)
    set_slider(page, "ε: the most any pixel may change", "0.20")
    wait_for_text(page, re.compile(r"PGD, ε = 0\.20: the model (now|still) says"), timeout=60)
    pick(page, "Target class", "1")
    found = wait_for_text(page, re.compile(r"Smallest change found: ε = 0\.\d+"), timeout=60)
    assert page.locator(".js-plotly-plot").count() >= 5
    screenshot(page, "explain_attack")

    # 2. attribution bench and its sanity check
    open_tab(page, "Attribution bench")
    wait_for_text(page, "Integrated Gradients for 7 add up to", timeout=60)
    main.get_by_role("button", name=re.compile(r"Randomise layer by layer$")).click()
    wait_for_text(page, "all four random", timeout=90)
    wait_idle(page)
    screenshot(page, "explain_attribution")

    # 6. invariance probe: move the digit 6 px to the right
    open_tab(page, "Invariance probe")
    wait_for_text(page, "still answers 7 for", timeout=60)
    set_slider(page, "Shift right", "+6 px")
    wait_for_text(page, re.compile(r"The model (still|now) reads \S+ \([\d.]+%\)"), timeout=60)
    curves = page.locator(".js-plotly-plot")
    wait_until(lambda: curves.count() >= 6, timeout=30, message="the five probe curves and the moved digit")
    screenshot(page, "explain_invariance")

    assert found and exception_boxes(page) == []
    assert explain_page.problems() == [], explain_page.problems()


def test_what_excites_a_unit_in_the_browser(explain_page):
    """Run the default search (the logit of class 3), watch it finish, and see the nine test images."""
    page = explain_page.page
    open_tab(page, "What excites a unit")
    wait_for_text(page, "Press Run", timeout=60)
    main = page.locator('[data-testid="stMain"]')
    main.get_by_role("button", name=re.compile(r"Run$")).click()
    done = wait_for_text(page, re.compile(r"Done\. The search gives the logit of class 3 the value -?[\d.]+"),
                         timeout=90)
    wait_idle(page)
    panel = page.get_by_role("tabpanel", name="What excites a unit")
    wait_until(lambda: panel.locator(".js-plotly-plot").count() == 3, timeout=30,
               message="the searched image, its curve and the nine test images")
    screenshot(page, "explain_maximise")
    assert done and exception_boxes(page) == []
    assert explain_page.problems() == [], explain_page.problems()
