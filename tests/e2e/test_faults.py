"""Faults and bad input that need a real browser: the canvas, the uploader's size limit, the widget
bounds, impatient double clicks, a reload in the middle of a run, a corrupt data file.

Each case must give a clear message on the page and lose nothing. The uploads that are not
checkpoints, divergence and the data-file messages are also covered, faster, in
tests/test_faults_apptest.py.
"""
from __future__ import annotations

import gzip
import re
import shutil

import pytest

from simplecnn.checkpoints import save_checkpoint
from simplecnn.model import SimpleCNN

from .conftest import (
    MENU,
    ROOT,
    button,
    canvas,
    chart_points,
    exception_boxes,
    goto,
    nav_link,
    open_tab,
    prediction,
    running_app,
    screenshot,
    set_number,
    set_slider,
    sidebar,
    stroke,
    table_rows,
    wait_for_run,
    wait_for_text,
    wait_idle,
    wait_until,
)

HINT = "Draw a digit on the black canvas with your mouse, finger or pen: one stroke is enough to start."


# -- the canvas --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def draw_tab(browser, app_url, tmp_path_factory):
    """One session on the Draw page with a model to draw with: the bundled one, or where it is
    absent an uploaded untrained SimpleCNN (the messages under test do not depend on the model)."""
    tab = open_tab(browser, app_url)
    page = tab.page
    if (ROOT / "models" / "simplecnn_mnist.pt").is_file():
        goto(page, "/draw")
    else:
        path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "untrained.pt", SimpleCNN())
        goto(page, "/train")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(path))
        wait_for_text(page, "Loaded untrained.pt as")
        nav_link(page, "Draw").click()
    wait_for_text(page, HINT, selector='[data-testid="stMain"]')
    canvas(page).wait_for(state="visible", timeout=60_000)
    yield tab
    tab.page.context.close()


def clear(page) -> None:
    button(page, "Clear").click()
    wait_for_text(page, HINT, selector='[data-testid="stMain"]')
    wait_until(lambda: prediction(page) is None, timeout=30, message="the prediction to go away")
    wait_idle(page)
    # Clear remounts the canvas under a new key; the old one is gone once the rerun has finished.
    wait_until(lambda: canvas(page).count() == 1, timeout=30, message="a single, fresh canvas")
    canvas(page).wait_for(state="visible", timeout=60_000)


def test_an_empty_canvas_shows_the_hint(draw_tab):
    page = draw_tab.page
    clear(page)
    assert page.get_by_text(HINT).first.is_visible()
    assert prediction(page) is None
    assert exception_boxes(page) == [] and draw_tab.problems() == []


def test_a_single_dot_is_read_but_flagged_as_tiny(draw_tab):
    page = draw_tab.page
    clear(page)
    stroke(page, [(140, 140), (141, 141)], steps=1)  # one tap of the pen
    wait_until(lambda: prediction(page), timeout=60, message="a prediction for the dot")
    wait_for_text(page, "This drawing is tiny", selector='[data-testid="stMain"]')
    screenshot(page, "fault_single_dot")
    assert exception_boxes(page) == [] and draw_tab.problems() == []


def test_a_fully_inked_canvas_is_read_with_a_warning(draw_tab):
    page = draw_tab.page
    clear(page)
    set_slider(page, "Stroke width", "40")
    zigzag = [(x, y) for i, y in enumerate(range(5, 280, 25)) for x in ((2, 278) if i % 2 == 0 else (278, 2))]
    stroke(page, zigzag, steps=10)  # rows of 40 px ink, 25 px apart: the whole canvas is white
    wait_until(lambda: prediction(page), timeout=60, message="a prediction for the inked canvas")
    wait_for_text(page, "Most of the canvas is covered in ink", selector='[data-testid="stMain"]')
    screenshot(page, "fault_full_ink")
    clear(page)  # and Clear really gives an empty canvas again
    set_slider(page, "Stroke width", "20")
    assert exception_boxes(page) == [] and draw_tab.problems() == []


# -- uploads and widget bounds ---------------------------------------------------------------------
def test_an_upload_over_the_size_limit_is_refused_by_the_uploader(new_page):
    tab = new_page()
    page = tab.page
    goto(page, "/train")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        files=[{"name": "huge.pt", "mimeType": "application/octet-stream", "buffer": b"\0" * (11 * 1024 * 1024)}])
    wait_for_text(page, "File must be 10.0MB or smaller.", selector='[data-testid="stFileUploader"]')
    wait_idle(page)
    # Refused in the browser: the file never reached the app, so no model was added.
    assert page.get_by_text("Loaded huge.pt").count() == 0 and page.get_by_text("Could not load").count() == 0
    assert nav_link(page, "Draw").count() == 1 and table_rows(page) == []
    screenshot(page, "fault_huge_upload")
    assert exception_boxes(page) == [] and tab.problems() == []


def test_epochs_outside_1_to_100_cannot_be_entered(new_page):
    tab = new_page()
    page = tab.page
    goto(page, "/train")
    page.get_by_text("Show the code").click()  # the generated script shows the epochs Start would use
    wait_for_text(page, "EPOCHS = 2")
    set_number(page, "Epochs", 3)
    wait_for_text(page, "EPOCHS = 3")
    box = page.get_by_label("Epochs", exact=True)
    for bad in ("0", "-5", "101", "1000000"):
        box.fill(bad)
        box.press("Enter")
        wait_for_text(page, "Number is outside the allowed range. Please enter a value between 1 and 100.",
                      selector='[data-testid="stNumberInput"]')
        wait_idle(page)
        assert "EPOCHS = 3\n" in page.locator('[data-testid="stMain"]').inner_text(), bad  # not taken
    set_number(page, "Epochs", 1)
    assert page.locator('[data-testid="stNumberInputStepDown"]').first.is_disabled()  # "−" stops at 1
    assert exception_boxes(page) == [] and tab.problems() == []


# -- impatient clicks ------------------------------------------------------------------------------------
def test_start_and_stop_double_clicked_make_one_run_that_stops(new_page):
    tab = new_page()
    page = tab.page
    goto(page, "/train")
    set_number(page, "Epochs", 6)  # 5,000 images x 6: long enough to still be training when stopped
    button(page, "Start").dblclick()
    line = wait_for_run(page, "running", progress=True)
    rows = wait_until(lambda: table_rows(page), timeout=30, message="the run history")
    assert [r["run"] for r in rows] == [line[0]], rows  # one run, not two
    button(page, "Stop").dblclick()
    wait_for_run(page, "stopped", timeout=90)
    wait_for_text(page, "Press Resume to continue from here.")
    rows = wait_until(lambda: (r := table_rows(page)) and r[0]["status"] == "stopped" and r, timeout=30,
                      message="the history to show it stopped")
    assert len(rows) == 1 and button(page, "Resume").is_enabled()
    wait_idle(page)
    screenshot(page, "fault_double_clicks")
    assert exception_boxes(page) == [] and tab.problems() == []


# -- a reload in the middle of a run --------------------------------------------------------------------
def test_a_reload_mid_training_returns_to_the_same_run_still_training(browser, tmp_path):
    """A reload (F5, or a school network reconnecting) is a new Streamlit session; the learner's link
    (?learner=...) brings the same runs back, and the run that was training goes on: same id, still
    running, its curve keeps growing."""
    with running_app(tmp_path) as server:
        tab = open_tab(browser, server.url)
        page = tab.page
        try:
            goto(page, "/train")
            set_number(page, "Epochs", 8)
            button(page, "Start").click()
            run_id = wait_for_run(page, "running", progress=True)[0]
            link = page.url
            assert "learner=" in link
            wait_until(lambda: sum(chart_points(page)) > 0, message="the loss curve to start")

            page.reload()
            page.wait_for_selector('[data-testid="stApp"]')
            assert page.url == link  # the link survives the reload
            again = wait_for_run(page, "running", progress=True)
            assert again[0] == run_id
            rows = wait_until(lambda: table_rows(page), message="the run history")
            assert [r["run"] for r in rows] == [run_id] and rows[0]["status"] == "running"
            assert sidebar(page).get_by_text(run_id).count() >= 1
            first = sum(chart_points(page))
            wait_until(lambda: sum(chart_points(page)) > first, timeout=60, message="the curve to continue")
            screenshot(page, "fault_reload_mid_training")
            button(page, "Stop").click()
            wait_for_run(page, "stopped")
            assert exception_boxes(page) == [] and tab.problems() == []
        finally:
            page.context.close()
        assert "Traceback" not in server.log(), server.log()


# -- the data files ----------------------------------------------------------------------------------
def test_a_corrupt_data_file_names_the_file_and_the_fix(browser, tmp_path):
    """SIMPLECNN_DATA_DIR points at a copy of data/ whose test labels differ in one byte (the gzip
    is valid: only the MD5 check can tell)."""
    copy = tmp_path / "data" / "mnist"
    shutil.copytree(ROOT / "data" / "mnist", copy)
    labels = copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[8] = (raw[8] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(raw)))
    with running_app(tmp_path, env={"SIMPLECNN_DATA_DIR": str(copy.parent)}) as server:
        tab = open_tab(browser, server.url)
        try:
            for path in ("/draw", "/data"):
                goto(tab.page, path)
                text = wait_for_text(tab.page, re.compile(r"The dataset cannot be loaded\..*"))
                assert f"Checksum mismatch in {labels}" in text, text
                assert "git checkout -- data/" in text, text
                assert exception_boxes(tab.page) == [], path
                screenshot(tab.page, f"fault_corrupt_data{path.replace('/', '_')}")
            goto(tab.page, "/")  # pages that need no data still work
            assert exception_boxes(tab.page) == [] and tab.problems() == []
        finally:
            tab.page.context.close()


# -- a known Streamlit trap ----------------------------------------------------------------------------
def test_deep_link_on_a_fresh_server_runs_through_app_py(browser, tmp_path):
    """The first visitor after a server start opens /train directly (a bookmark, a reload).

    With a `pages/` folder beside app.py Streamlit starts in its old multipage mode and would run
    pages/train.py on its own (no menu of the app, no lessons, no training status, no page
    config); dashboard/__init__.py leaves that mode on the first run.
    """
    with running_app(tmp_path) as server:
        tab = open_tab(browser, server.url)
        try:
            goto(tab.page, "/train")
            wait_for_text(tab.page, "Train the network", selector='[data-testid="stMain"]')
            links = tab.page.locator(f"{MENU} a").all_inner_texts()
            titles = [t.strip().split("\n")[-1] for t in links]  # "biotech\n\nInside the network": icon, title
            assert "Inside the network" in titles and "1 · Images as tensors" in titles, titles
            assert exception_boxes(tab.page) == [] and tab.problems() == []
        finally:
            tab.page.context.close()
