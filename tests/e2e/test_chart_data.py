"""Charts' data in a real browser: the "Show data" toggle under a chart opens its table and a CSV that
downloads (Results, Train, lesson 13), and every picture on Draw and Inside has a text alternative.

The CSV's rows are checked against numbers computed here: a torch pass of the bundled model over
the test set, the step count of a 500-image run, the MNIST label counts.
"""
from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
import torch

from .conftest import (
    button,
    canvas,
    goto,
    prediction,
    screenshot,
    set_number,
    set_slider,
    stroke,
    wait_for_run,
    wait_idle,
    wait_until,
)


def show_data(page, key: str):
    """Turn on the chart's data toggle and return its container once the table is there."""
    toggle = page.locator(f".st-key-{key}__data")
    toggle.scroll_into_view_if_needed()
    toggle.get_by_role("switch").click(force=True)  # its input is visually hidden inside the label
    table = page.locator(f".st-key-{key}__data ~ [data-testid='stElementContainer'] [data-testid='stDataFrame']").first
    table.wait_for(state="visible", timeout=60_000)
    return table


def download_csv(page, key: str, table: str) -> tuple[str, pd.DataFrame]:
    """Press the chart's CSV button; (file name, parsed rows) of what the browser saved."""
    target = page.locator(f".st-key-{key}__csv_{table}").get_by_role("button")
    target.scroll_into_view_if_needed()
    with page.expect_download(timeout=60_000) as info:
        target.click()
    download = info.value
    data = open(download.path(), "rb").read()
    return download.suggested_filename, pd.read_csv(io.BytesIO(data))


def header_texts(table) -> list[str]:
    """The table's column names, read from the grid's accessible header cells once it has drawn them."""
    return wait_until(lambda: [t.strip() for t in table.locator('[role="columnheader"]').all_inner_texts()],
                      timeout=30, message="the table's column headers")


def test_results_confusion_table_and_csv(new_page, bundled_path, mnist):
    tab = new_page(viewport={"width": 1400, "height": 1400})
    page = tab.page
    goto(page, "/results", timeout=180)
    page.locator(".st-key-results_test_confusion").wait_for(timeout=120_000)
    assert page.locator('.st-key-results_test_confusion__csv_grid').count() == 0  # nothing until asked
    table = show_data(page, "results_test_confusion")
    assert {"True class", "Predicted class", "value"} <= set(header_texts(table))
    name, rows = download_csv(page, "results_test_confusion", "grid")
    assert name == "results_test_confusion.csv" and len(rows) == 100

    from simplecnn.checkpoints import load_checkpoint
    from simplecnn.data import to_float
    model, _ = load_checkpoint(bundled_path)
    with torch.no_grad():
        preds = torch.cat([model.eval()(to_float(mnist.test_images[i:i + 2500])).argmax(1)
                           for i in range(0, len(mnist.test_labels), 2500)])
    expected = np.zeros((10, 10), dtype=int)
    np.add.at(expected, (mnist.test_labels.numpy(), preds.numpy()), 1)
    got = np.zeros((10, 10), dtype=int)
    got[rows["True class"], rows["Predicted class"]] = rows["value"]
    assert got.tolist() == expected.tolist()
    screenshot(page, "chart_data_results")
    assert tab.problems() == [], tab.problems()


def test_train_curves_table_and_csv(new_page):
    tab = new_page(viewport={"width": 1400, "height": 1400})
    page = tab.page
    goto(page, "/train")
    set_slider(page, "Training images (train + validation)", "500")
    set_number(page, "Epochs", 1)
    button(page, "Start").click()
    wait_for_run(page, "finished", timeout=240)
    wait_idle(page)
    table = show_data(page, "train_curves")
    assert {"panel", "series", "x", "y"} <= set(header_texts(table))
    name, rows = download_csv(page, "train_curves", "points")
    assert name == "train_curves.csv"
    assert set(rows["panel"]) == {"Loss", "Accuracy"}
    # 500 images, 20 % held out for validation: 400 training images in batches of 64 = 7 steps.
    epoch_loss = rows[(rows["panel"] == "Loss") & rows["series"].str.contains("train")]
    assert epoch_loss["x"].tolist() == [7]
    batch = rows[rows["series"] == "batch loss"]
    assert len(batch) >= 1 and batch["x"].max() <= 7 and (batch["y"] > 0).all()
    val = rows[(rows["panel"] == "Accuracy") & (rows["series"] == "validation")]
    assert val["x"].tolist() == [1] and 0 <= float(val["y"].iloc[0]) <= 100
    shown = page.locator('[data-testid="stMetric"]', has_text="Validation accuracy").inner_text()
    assert f"{float(val['y'].iloc[0]):.2f}%" in shown
    screenshot(page, "chart_data_train")
    assert tab.problems() == [], tab.problems()


def test_lesson_class_balance_table_and_csv(new_page, mnist):
    tab = new_page(viewport={"width": 1400, "height": 1400})
    page = tab.page
    goto(page, "/mnist", timeout=180)
    table = show_data(page, "t13_class_balance")
    assert {"series", "digit", "images"} <= set(header_texts(table))
    name, rows = download_csv(page, "t13_class_balance", "points")
    assert name == "t13_class_balance.csv"
    train = rows[rows["series"].str.startswith("training")].sort_values("digit")
    test = rows[rows["series"].str.startswith("test")].sort_values("digit")
    assert train["images"].tolist() == torch.bincount(mnist.train_labels, minlength=10).tolist()
    assert test["images"].tolist() == torch.bincount(mnist.test_labels, minlength=10).tolist()
    screenshot(page, "chart_data_lesson")
    assert tab.problems() == [], tab.problems()


GENERIC = re.compile(r"^(image|picture|chart|figure|img)?\s*\d*\.?$", re.I)


def pictures_and_names(page) -> dict[str, list[str]]:
    """The alt of every <img> and the accessible name of every plotly chart on the page."""
    return page.evaluate("""() => ({
        img: [...document.querySelectorAll('[data-testid="stMain"] img')].map(i => i.getAttribute('alt') || ''),
        chart: [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].map(
            c => c.getAttribute('aria-label') || '')})""")


def assert_described(found: dict[str, list[str]], page_name: str) -> None:
    for kind, names in found.items():
        for text in names:
            assert len(text) >= 20 and not GENERIC.match(text.strip()), f"{page_name}: {kind} named {text!r}"


def test_every_picture_on_draw_and_inside_says_what_it_shows(new_page, bundled_path):
    tab = new_page(viewport={"width": 1400, "height": 1600})
    page = tab.page
    goto(page, "/draw")
    canvas(page).wait_for(state="visible", timeout=60_000)
    stroke(page, [(140, 50), (140, 250)])  # a "1"
    wait_until(lambda: prediction(page), timeout=60, message="a prediction")
    wait_until(lambda: page.locator('[data-testid="stMain"] img').count() >= 4, timeout=60,
               message="the preparation thumbnails")
    wait_idle(page)
    found = pictures_and_names(page)
    assert len(found["img"]) >= 4 and len(found["chart"]) >= 2, found
    assert_described(found, "Draw")
    assert any("Cropped to the ink" in text for text in found["img"]), found["img"]
    assert any(text.startswith("Saliency map") for text in found["chart"]), found["chart"]
    screenshot(page, "chart_data_draw")

    goto(page, "/inside", timeout=120)
    page.locator(".st-key-inside_maps_fig").wait_for(timeout=60_000)
    found = pictures_and_names(page)
    assert len(found["chart"]) >= 5, found
    assert_described(found, "Inside")
    assert any(text.startswith("The 32 feature maps of conv1") for text in found["chart"]), found["chart"]
    assert any(text.startswith("The 32 learned 5×5 filters") for text in found["chart"]), found["chart"]
    assert tab.problems() == [], tab.problems()
