"""Light and dark theme: the learner's choice in Streamlit's main menu, and every page readable in both.

The browser's colour scheme stands in for the learner's device setting ("System", the default):
chromium is told to prefer dark or light. Every dashboard page and lesson is checked in the dark theme
by axe-core (0 serious/critical violations, the same check as tests/e2e/test_accessibility.py, whose
helpers are reused) and by looking at its charts: no plotly chart may keep a white background on the
dark page. Each page is saved as artifacts/screenshots/theme_dark_<page>.png and
theme_light_<page>.png. One test picks Dark and Light in the main menu itself, as a learner would.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from dashboard import nav

from .conftest import (button, goto, nav_link, open_tab, page_url_path, screenshot, set_slider, wait_for_run, wait_idle,
                       wait_until)
from .test_accessibility import check_page

PAGES = nav.DASHBOARD_PAGES + nav.LESSON_PAGES
IDS = [Path(f).stem for f, _, _ in PAGES]

APP_BACKGROUND = """() => getComputedStyle(document.querySelector('[data-testid="stApp"]')).backgroundColor"""
# The colour behind each plotly chart: its paper (the outer svg) and each plot area (rect.bg).
CHART_BACKGROUNDS = """() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(plot => {
  const paper = plot.querySelector('.main-svg');
  const areas = [...plot.querySelectorAll('rect.bg')]  // plotly writes transparent as fill black, opacity 0
    .filter(r => Number(getComputedStyle(r).fillOpacity) > 0).map(r => getComputedStyle(r).fill);
  return [paper ? getComputedStyle(paper).backgroundColor : '', ...areas].filter(Boolean); })"""


def luminance(css_colour: str) -> float | None:
    """WCAG relative luminance of 'rgb(r, g, b)' / 'rgba(r, g, b, a)'; None when fully transparent."""
    inside = css_colour[css_colour.index("(") + 1: css_colour.index(")")].replace("/", ",")
    parts = [float(p) for p in inside.replace(",", " ").split()]
    if len(parts) == 4 and parts[3] == 0:
        return None
    linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in parts[:3]]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_luminance_reads_css_colours():
    assert luminance("rgb(255, 255, 255)") == pytest.approx(1.0)
    assert luminance("rgba(0, 0, 0, 0)") is None
    assert luminance("rgb(23, 22, 20)") < 0.01


def is_dark(page) -> bool:
    return luminance(page.evaluate(APP_BACKGROUND)) < 0.05


def white_chart_backgrounds(page) -> list[str]:
    """Chart backgrounds that are (nearly) white: unreadable boxes on the dark page."""
    return [c for c in page.evaluate(CHART_BACKGROUNDS) if (luminance(c) or 0.0) > 0.8]


@pytest.fixture(scope="module")
def dark_tab(browser, app_url):
    tab = open_tab(browser, app_url, color_scheme="dark")
    yield tab
    tab.page.context.close()


@pytest.fixture(scope="module")
def light_tab(browser, app_url):
    tab = open_tab(browser, app_url, color_scheme="light")
    yield tab
    tab.page.context.close()


def open_page(tab, file: str) -> None:
    page = tab.page
    goto(page, page_url_path(file), timeout=120)
    time.sleep(1.0)  # charts finish their first layout


@pytest.mark.parametrize("file", [f for f, _, _ in PAGES], ids=IDS)
def test_page_in_dark_theme(dark_tab, file):
    page, name = dark_tab.page, Path(file).stem
    open_page(dark_tab, file)
    assert is_dark(page), f"{name}: the page is not dark under a dark system setting"
    screenshot(page, f"theme_dark_{name}")
    assert not white_chart_backgrounds(page), f"{name}: white chart boxes on the dark page"
    check_page(page, f"dark_{name}")


@pytest.mark.parametrize("file", [f for f, _, _ in PAGES], ids=IDS)
def test_page_in_light_theme(light_tab, file):
    """The light theme's axe check is tests/e2e/test_accessibility.py; here its screenshot and charts."""
    page, name = light_tab.page, Path(file).stem
    open_page(light_tab, file)
    assert not is_dark(page), f"{name}: the page is dark under a light system setting"
    screenshot(page, f"theme_light_{name}")
    dark_areas = [c for c in page.evaluate(CHART_BACKGROUNDS) if luminance(c) is not None and luminance(c) < 0.2]
    assert not dark_areas, f"{name}: dark chart boxes on the light page: {dark_areas}"


def test_learner_picks_dark_and_light_in_the_main_menu(new_page):
    """System follows the device; Dark and Light in the main menu override it and last across pages."""
    tab = new_page(color_scheme="light")
    page = tab.page
    goto(page, "/")
    assert not is_dark(page)

    def pick(label: str) -> None:
        page.get_by_test_id("stMainMenuButton").click()
        page.get_by_role("menuitemradio", name=label).click()
        if page.get_by_test_id("stMainMenuPopover").count():  # the menu may stay open after a choice
            page.keyboard.press("Escape")
        wait_until(lambda: page.get_by_test_id("stMainMenuPopover").count() == 0, timeout=10, message="the menu to close")

    pick("Dark")
    wait_until(lambda: is_dark(page), timeout=20, message="the dark theme")
    nav_link(page, "Train").click()  # the app's own menu: client-side, the same session
    wait_until(lambda: page.get_by_role("heading", name="Train the network").count(), timeout=90,
               message="the Train page")
    wait_idle(page)
    assert is_dark(page), "the theme fell back to light on another page"
    page.get_by_test_id("stMainMenuButton").click()
    screenshot(page, "theme_menu_dark")
    page.keyboard.press("Escape")
    wait_until(lambda: page.get_by_test_id("stMainMenuPopover").count() == 0, timeout=10, message="the menu to close")
    pick("Light")
    wait_until(lambda: not is_dark(page), timeout=20, message="the light theme")


def test_training_curves_in_dark_theme(new_page):
    """A small run's live curves on the dark page: readable, no white box, axe-clean when finished."""
    tab = new_page(color_scheme="dark")
    page = tab.page
    goto(page, page_url_path(nav.TRAIN))
    set_slider(page, "Training images (train + validation)", "500")
    button(page, "Start").click()
    wait_for_run(page, "finished", timeout=600)
    wait_until(lambda: page.locator(".js-plotly-plot").count(), timeout=60, message="the curves")
    time.sleep(1.0)
    assert is_dark(page)
    screenshot(page, "theme_dark_train_curves")
    assert not white_chart_backgrounds(page)
    check_page(page, "dark_train_finished")
