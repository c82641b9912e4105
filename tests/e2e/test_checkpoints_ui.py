"""Save a run's checkpoint from the browser, load it back through the uploader, and draw with it.

The uploaded copy must behave exactly like the run it came from: both read the same stroke with
the same answer and the same confidence.
"""
from __future__ import annotations

import re

from simplecnn.checkpoints import load_checkpoint

from .conftest import (
    CONFIDENCE,
    PREDICTION,
    button,
    choose,
    exception_boxes,
    goto,
    nav_link,
    prediction,
    screenshot,
    selected,
    set_number,
    set_slider,
    stroke,
    wait_for_run,
    wait_for_text,
    wait_idle,
    wait_until,
)


def read_answer(page) -> tuple[str, str]:
    """(digit, confidence text) once the Draw page shows a prediction."""
    heading = wait_until(lambda: prediction(page), timeout=60, message="Prediction: on the Draw page")
    confidence = wait_for_text(page, CONFIDENCE, selector='[data-testid="stMain"]')
    return PREDICTION.search(heading).group(1), confidence


def test_download_upload_and_draw_with_the_checkpoint(new_page, tmp_path):
    tab = new_page(accept_downloads=True)
    page = tab.page
    goto(page, "/train")
    set_slider(page, "Training images (train + validation)", "1,000")
    set_number(page, "Epochs", 1)
    button(page, "Start").click()
    run_id = wait_for_run(page, "finished", timeout=300)[0]
    wait_idle(page)

    # Download: the file is a real SimpleCNN checkpoint holding this run's settings.
    download_button = button(page, "Download checkpoint (.pt)")
    download_button.wait_for(timeout=60_000)
    with page.expect_download() as info:
        download_button.click()
    download = info.value
    assert download.suggested_filename == f"simplecnn-{run_id}.pt"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    model, meta = load_checkpoint(saved)  # torch.load(weights_only=True) inside
    assert meta["config"]["subset"] == 1000 and meta["config"]["epochs"] == 1
    assert len(meta["history"]["epochs"]) == 1

    # Upload it back: a success message, and it becomes the chosen model.
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(saved))
    loaded = wait_for_text(page, re.compile(rf"Loaded {re.escape(saved.name)} as (run-\d+)\."))
    uploaded_id = re.search(r" as (run-\d+)\.$", loaded).group(1)
    wait_idle(page)
    screenshot(page, "checkpoint_1_uploaded")

    # Draw with it: the Draw page's model picker holds the upload, and it reads the drawing.
    nav_link(page, "Draw").click()
    wait_for_text(page, "Draw a digit on the black canvas", selector='[data-testid="stMain"]')
    choose(page, "Model", re.compile(rf"^{uploaded_id}: .*\(uploaded\)$"))
    assert selected(page, "Model").startswith(f"{uploaded_id}: ")
    stroke(page, [(140, 50), (140, 250)])
    digit_uploaded, confidence_uploaded = read_answer(page)
    assert re.fullmatch(r"\d", digit_uploaded)
    screenshot(page, "checkpoint_2_draw_with_upload")

    # The run the checkpoint came from gives the very same reading of the same drawing.
    choose(page, "Model", re.compile(rf"^{run_id}: "))
    assert selected(page, "Model").startswith(f"{run_id}: ")
    digit_run, confidence_run = read_answer(page)
    assert (digit_run, confidence_run) == (digit_uploaded, confidence_uploaded)
    assert exception_boxes(page) == []
    assert tab.problems() == [], tab.problems()
