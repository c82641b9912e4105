"""Every page of the app loads in a real browser with no exception box and no console error.

A full-page screenshot of each is saved under artifacts/screenshots/page_<name>.png.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import nav

from .conftest import MENU, exception_boxes, goto, open_tab, page_url_path, screenshot

PAGES = nav.DASHBOARD_PAGES + nav.LESSON_PAGES


@pytest.fixture(scope="module")
def tab(browser, app_url):
    """One browser tab for the module: every goto() is a fresh Streamlit session, but the app's
    JavaScript stays in the HTTP cache, which makes each page load several seconds faster."""
    tab = open_tab(browser, app_url)
    yield tab
    tab.page.context.close()


def test_the_sidebar_links_to_every_page_under_the_derived_url(tab):
    """page_url_path() (used below) agrees with the links the app's sidebar menu really renders."""
    goto(tab.page, "/")
    hrefs = tab.page.locator(f"{MENU} a").evaluate_all(
        "links => links.map(a => new URL(a.href).pathname)")
    assert hrefs == [page_url_path(file) for file, _, _ in PAGES]


@pytest.mark.parametrize("file,title", [(f, t) for f, t, _ in PAGES], ids=[Path(f).stem for f, _, _ in PAGES])
def test_page_loads_cleanly(tab, file, title):
    page = tab.page
    seen = len(tab.problems())
    goto(page, page_url_path(file), timeout=120)
    shot = screenshot(page, f"page_{Path(file).stem}")
    assert page.locator('[data-testid="stMain"]').inner_text().strip(), f"{title}: the page is empty ({shot})"
    assert exception_boxes(page) == [], f"{title} shows an exception box (see {shot})"
    # No console error, page error or failed request at all: nothing is ignored (a 404 for a
    # favicon or a font would show up here too; the app serves everything it asks for).
    problems = tab.problems()[seen:]
    assert problems == [], f"{title}: {problems}"
