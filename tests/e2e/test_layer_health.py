"""The Train page's Layer health section in a real browser: it fills while a run trains, its charts
draw every stored sample, its tabs switch to the weight and gradient heatmaps, axe finds nothing
serious, and screenshots show it (train_layer_health.png, train_layer_health_weights.png)."""
from __future__ import annotations

import re

from .conftest import (
    button,
    exception_boxes,
    goto,
    screenshot,
    set_number,
    set_slider,
    wait_for_run,
    wait_idle,
    wait_until,
)
from .test_accessibility import check_page

SERVER_ENV = {"SIMPLECNN_HEALTH_EVERY": "5"}  # a sample every 5 steps: many points in a short run
EPOCHS = 3  # 4,000 training images = 63 steps an epoch: 189 steps, the last sample at step 185
SAMPLES = re.compile(r"(\d+) samples, one every (\d+) steps; newest at step ([\d,]+)")


def samples_shown(page) -> tuple[int, int] | None:
    """(samples, newest step) from the section's caption, or None before there are any."""
    match = SAMPLES.search(page.locator('[data-testid="stMain"]').inner_text())
    return (int(match.group(1)), int(match.group(3).replace(",", ""))) if match else None


def plot_traces(page, title: str) -> list[int]:
    """Points per trace of the plotly chart whose title starts with `title`."""
    return page.evaluate(
        """(title) => { for (const plot of document.querySelectorAll('.js-plotly-plot')) {
              const t = ((plot.layout && plot.layout.title && plot.layout.title.text) || '')
                .replace(/<[^>]+>/g, '');  // Streamlit's chart theme wraps the title in <b>
              if (t.startsWith(title)) return plot.data.map(d => (d.x || []).length); }
            return null; }""", title)


def test_layer_health_fills_while_training_and_shows_every_sample(new_page):
    tab = new_page(viewport={"width": 1280, "height": 900})
    page = tab.page
    goto(page, "/train")
    page.get_by_role("heading", name="Layer health").wait_for()
    set_slider(page, "Training images (train + validation)", "5,000")
    set_number(page, "Epochs", EPOCHS)
    button(page, "Start").click()
    wait_for_run(page, "running", progress=True)
    first = wait_until(lambda: samples_shown(page), timeout=120, message="the first health samples")
    # Live: while the run trains, the section shows later samples without a click.
    wait_until(lambda: (now := samples_shown(page)) and now[1] > first[1] and
               page.locator('[data-testid="stMain"]').inner_text().count("· running ·") > 0,
               timeout=180, message="more samples while the run trains")
    wait_for_run(page, "finished", timeout=600)
    final = wait_until(lambda: (now := samples_shown(page)) and now[1] == 185 and now, timeout=60,
                       message="the last sample (step 185)")
    assert final[0] == 38  # steps 1, 5, 10, ..., 185
    assert wait_until(lambda: plot_traces(page, "How much one step changes") == [38] * 4, timeout=30,
                      message="four update-ratio lines with every sample")
    assert not exception_boxes(page)
    page.get_by_role("tab", name="Update size").scroll_into_view_if_needed()
    screenshot(page, "train_layer_health")
    check_page(page, "train_layer_health")

    page.get_by_role("tab", name="Dead ReLUs").click()
    assert wait_until(lambda: plot_traces(page, "ReLUs that never fired") == [38] * 3, timeout=30,
                      message="three dead-ReLU lines")
    page.get_by_role("tab", name="Weights").click()
    assert wait_until(lambda: plot_traces(page, "Weights of each layer") == [38] * 4, timeout=30,
                      message="four weight heatmaps")
    wait_idle(page)
    screenshot(page, "train_layer_health_weights")
    page.get_by_role("tab", name="Gradients").click()
    assert wait_until(lambda: plot_traces(page, "Gradient sizes of each layer") == [38] * 4, timeout=30,
                      message="four gradient heatmaps")
