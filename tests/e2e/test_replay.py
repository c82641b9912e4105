"""Training replayed, in a real browser: a short run's Results page refreshes its confusion matrix and
mistakes while it trains; afterwards the Replay page follows the learner's drawing through the run's
snapshots, and moving its slider changes the filters and the probabilities."""
from __future__ import annotations

import re

from .conftest import (
    button,
    canvas,
    exception_boxes,
    goto,
    nav_link,
    screenshot,
    set_number,
    set_slider,
    stroke,
    wait_for_run,
    wait_for_text,
    wait_idle,
    sidebar,
    wait_until,
)

from .test_accessibility import check_page  # noqa: E402

VERSION = re.compile(r"Weights version (\d+)")


def plot_data(page, key: str) -> list[dict]:
    """The traces of the plotly chart with this key (its element has the class st-key-<key>), as drawn
    (plotly's _fullData: the typed arrays decoded from the figure's base64 form)."""
    return page.evaluate(
        """(key) => { const p = document.querySelector(`.st-key-${key} .js-plotly-plot`);
            if (!p || !p._fullData) return [];
            return p._fullData.map(t => ({z: t.z ? Array.from(t.z, r => Array.from(r)) : null,
                                     y: t.y ? Array.from(t.y) : null})); }""", key)


def replay_state(page) -> tuple[list, list]:
    """(filter 5's weights, the ten probabilities) as drawn on the Replay page right now."""
    filters, probs = plot_data(page, "replay_filters"), plot_data(page, "replay_probs")
    return filters[5]["z"], probs[0]["y"]


def accuracy(page) -> float:
    text = page.locator('[data-testid="stMain"]').inner_text()
    return float(re.search(r"Test accuracy\s+([\d.]+)%", text).group(1))


def test_results_live_then_replay_slider(new_page):
    tab = new_page(viewport={"width": 1400, "height": 1200})
    page = tab.page
    goto(page, "/train")
    set_slider(page, "Training images (train + validation)", "10,000")
    set_number(page, "Epochs", 2)
    button(page, "Start").click()
    run_id = wait_for_run(page, "running", progress=True)[0]

    # Results while it trains: the live view, its confusion matrix and mistakes, refreshed with new weights.
    nav_link(page, "Results").click()
    wait_for_text(page, "Refreshed during training on the validation split", selector='[data-testid="stMain"]')
    wait_for_text(page, "Misclassified images, most confident first", selector='[data-testid="stMain"]')
    first = int(wait_for_text(page, VERSION, selector='[data-testid="stMain"]').split()[-1])
    later = wait_until(lambda: (v := int(VERSION.search(page.locator('[data-testid="stMain"]').inner_text())
                                         .group(1))) > first and v, timeout=90,
                       message="the live view to show newer weights")
    assert later > first
    assert page.get_by_role("img", name=re.compile(r"^Validation image \d+, labelled")).count() > 0
    screenshot(page, "results_live_training")

    # Replay while it trains: the snapshots appear as the training process writes them (0, 1, 3, 10, 30).
    nav_link(page, "Replay training").click()
    so_far = re.compile(rf"{run_id} is training: (\d+) snapshots? so far")
    wait_until(lambda: int(so_far.search(page.locator('[data-testid="stMain"]').inner_text()).group(1)) >= 5,
               timeout=600, message="five snapshots of the training run")
    # Enough to replay: stop the run (it could be resumed) and let the page settle.
    button(page, "Stop training", scope=sidebar(page)).click()
    wait_until(lambda: not so_far.search(page.locator('[data-testid="stMain"]').inner_text()), timeout=120,
               message="the replay to notice the run stopped")

    # The learner draws a "1"; the replay follows it.
    nav_link(page, "Draw").click()
    drew = False
    try:
        canvas(page).wait_for(state="visible", timeout=30_000)
        stroke(page, [(140, 50), (140, 250)])
        wait_for_text(page, "Prediction:", timeout=45, selector='[data-testid="stMain"]')
        drew = True
    except Exception:  # the Draw page's input changed: the replay then follows a test digit, also fine
        pass

    nav_link(page, "Replay training").click()
    wait_for_text(page, "conv1's 32 filters", selector='[data-testid="stMain"]')
    wait_idle(page)
    if drew:
        wait_for_text(page, "Following your latest drawing", selector='[data-testid="stMain"]')
    slider = page.get_by_role("slider", name="Snapshot")
    assert slider.get_attribute("aria-valuetext") == "step 0 · before training"
    wait_until(lambda: len(plot_data(page, "replay_filters")) == 32, timeout=30, message="the 32 filters")
    filters0, probs0 = replay_state(page)
    assert abs(sum(probs0) - 1.0) < 1e-3
    accuracy0 = accuracy(page)
    screenshot(page, "replay_step0")

    slider.focus()
    slider.press("ArrowRight")  # step 1
    slider.press("ArrowRight")  # step 3
    slider.press("ArrowRight")  # step 10
    wait_idle(page)
    wait_for_text(page, "step 10 · epoch", selector='[data-testid="stMain"]')
    screenshot(page, "replay_step10")

    slider.focus()
    slider.press("End")  # the last snapshot the run kept before it was stopped
    wait_idle(page)
    last = slider.get_attribute("aria-valuetext")
    assert re.match(r"step (30|[1-9]\d+) · ", last), last  # at least the step-30 snapshot
    wait_until(lambda: replay_state(page)[0] != filters0, timeout=30, message="the filters to change")
    filters_end, probs_end = replay_state(page)
    assert filters_end != filters0 and probs_end != probs0
    assert max(probs_end) > max(probs0)  # a trained network is surer than the untrained one
    assert accuracy(page) > accuracy0 + 20, (accuracy0, accuracy(page))  # from chance towards reading digits
    screenshot(page, "replay_trained")
    check_page(page, "replay_trained")  # axe: no serious or critical violation, headings in order

    # What training added to conv1: the change since step 0, drawn instead of the weights.
    page.get_by_text("Change since step 0", exact=True).click()
    wait_idle(page)
    wait_until(lambda: replay_state(page)[0] != filters_end, timeout=30, message="the change to be drawn")
    screenshot(page, "replay_change_since_step0")
    assert exception_boxes(page) == []
    assert tab.problems() == [], tab.problems()
