"""A learner's training session in a real browser: start, watch, wander off, stop, resume, finish.

The run is sized (5,000 images, 6 epochs: 24,000 training images) so that it cannot finish on a
2-core machine before the test has watched it, visited Draw and come back (about 10 s), and small
enough that the whole test stays well under a minute on an idle machine.
"""
from __future__ import annotations

import re

from .conftest import (
    PROGRESS,
    button,
    chart_points,
    exception_boxes,
    goto,
    nav_link,
    run_line,
    screenshot,
    set_number,
    set_slider,
    sidebar,
    table_rows,
    wait_for_run,
    wait_for_text,
    wait_idle,
    wait_until,
)

EPOCHS = 6
SUBSET = "5,000"


def batch_points(page) -> int:
    """Points on the batch-loss trace of the Train page's chart (the first trace)."""
    points = chart_points(page)
    return points[0] if points else 0


def history_row(page, run_id: str) -> dict | None:
    return next((row for row in table_rows(page) if row.get("run") == run_id), None)


def test_start_watch_visit_draw_stop_resume_finish(new_page):
    tab = new_page()
    page = tab.page
    goto(page, "/train")
    set_slider(page, "Training images (train + validation)", SUBSET)
    set_number(page, "Epochs", EPOCHS)

    button(page, "Start").click()
    # The progress text appears and moves on; the loss curve gains points.
    first = wait_for_run(page, "running", progress=True)
    run_id = first[0]
    points = wait_until(lambda: batch_points(page), timeout=60, message="the loss curve's first points")
    wait_until(lambda: batch_points(page) > points, timeout=90, message="the loss curve to gain points")
    later = wait_until(lambda: (line := run_line(page)) and line[2] != first[2] and line, timeout=60,
                       message="the progress text to change")
    assert later[1] == "running" and PROGRESS.search(later[2]), later
    screenshot(page, "flow_1_training")

    # To Draw while it trains: the sidebar shows the run and its progress there.
    nav_link(page, "Draw").click()
    wait_for_text(page, "Draw a digit", selector='[data-testid="stMain"]')
    wait_for_text(page, re.compile(rf"Training\s+{run_id}"), selector='[data-testid="stSidebar"]')
    wait_for_text(page, PROGRESS, selector='[data-testid="stSidebar"]')
    assert button(page, "Stop training", scope=sidebar(page)).is_enabled()
    screenshot(page, "flow_2_draw_while_training")

    # Back to Train: the same run, still training, further along.
    nav_link(page, "Train").click()
    back = wait_for_run(page, timeout=60)
    assert back[0] == run_id and back[1] == "running", back

    button(page, "Stop").click()
    wait_for_run(page, "stopped", timeout=90)
    wait_for_text(page, "Press Resume to continue from here.")
    stopped_at = PROGRESS.search(run_line(page)[2])
    assert stopped_at and int(stopped_at.group(1)) <= EPOCHS
    row = wait_until(lambda: (r := history_row(page, run_id)) and r["status"] == "stopped" and r,
                     timeout=30, message="the stopped run in the history table")
    assert row["epochs"].endswith(f"/{EPOCHS}") and int(row["epochs"].split("/")[0]) < EPOCHS, row
    assert button(page, "Resume").is_enabled() and not button(page, "Stop").is_enabled()
    assert sidebar(page).get_by_text("Stop training").count() == 0  # no run is active any more
    screenshot(page, "flow_3_stopped")

    button(page, "Resume").click()
    wait_for_run(page, "running", "finished", timeout=60)
    wait_for_run(page, "finished", timeout=1200)  # ~20 s on an idle 2-core machine; minutes under load
    wait_for_text(page, f"Finished {EPOCHS} epochs.")
    row = wait_until(lambda: (r := history_row(page, run_id)) and r["status"] == "finished" and r,
                     timeout=30, message="the finished run in the history table")
    assert row["epochs"] == f"{EPOCHS}/{EPOCHS}" and float(row["best val acc %"]) > 80, row
    assert len(table_rows(page)) == 1  # stop + resume continued the same run, it made no new one
    wait_idle(page)
    screenshot(page, "flow_4_finished")
    assert exception_boxes(page) == []
    assert tab.problems() == [], tab.problems()
