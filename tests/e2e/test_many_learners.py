"""Four learners on one server at once: a training, a queued one, a drawing, a browsing session.

The server runs one training at a time (SIMPLECNN_MAX_TRAININGS=1). A starts a long run; B presses
Start and waits in the queue at position 1; C draws a 7 and reads `Prediction: 7`; D browses Results
and Inside. C's and D's pages (model pickers included) show no run id at all: runs belong to the
learner whose link started them. Then A's tab closes: A's run keeps training (a run no longer depends
on its tab), A comes back with their link, finds it still running and stops it, and B's starts.

benchmarks/many_learners.py is the heavier version (ten sessions, latency and memory figures).
"""
from __future__ import annotations

import re
import time

from .conftest import button, exception_boxes, goto, open_tab, sidebar, wait_for_text, wait_idle

SERVER_ENV = {"SIMPLECNN_MAX_TRAININGS": "1"}
RUN_ID = re.compile(r"\brun-\d+\b")
BUNDLED = "Bundled model (pretrained)"
SEVEN = [(87, 50), (193, 50), (129, 250)]  # canvas px: top bar, then the diagonal, in one stroke


def run_status(page, run_id: str | None = None) -> re.Match:
    """Wait for the Train page's progress line "run-N · <status>" and return its match."""
    ident = re.escape(run_id) if run_id else r"run-\d+"
    text = wait_for_text(page, re.compile(rf"{ident} · (queued|running|stopping|stopped|finished|cancelled)"),
                         timeout=120, selector='[data-testid="stMain"]')
    return re.match(r"(run-\d+) · (\w+)", text)


def model_options(page) -> list[str]:
    """Open the page's "Model" picker, read its options, close it."""
    picker = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.locator("label", has_text=re.compile(r"^Model$")))
    picker.first.click()
    options = page.get_by_role("option")
    options.first.wait_for()
    texts = options.all_inner_texts()
    page.keyboard.press("Escape")
    return texts


def draw(page, points) -> None:
    canvas = page.locator("canvas.upper-canvas")
    canvas.wait_for(state="visible")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=20)
    page.mouse.up()


def test_four_sessions_share_the_queue_and_nothing_else(browser, app_url):
    tabs = []
    started = time.monotonic()

    def step(what: str) -> None:  # progress in the log: where the time goes on a slow machine
        print(f"[{time.monotonic() - started:5.1f} s] {what}")

    def tab():
        t = open_tab(browser, app_url)
        tabs.append(t)
        return t

    try:
        a = tab()
        goto(a.page, "/train")  # a deep link as the fresh server's first visit
        epochs = a.page.get_by_label("Epochs")
        epochs.fill("60")  # far longer than this test: only a Stop ends it
        epochs.press("Enter")
        wait_idle(a.page)
        button(a.page, "Start").click()
        a_id = run_status(a.page).group(1)
        wait_for_text(a.page, f"{a_id} · running", timeout=120)
        step(f"A: {a_id} running")

        b = tab()
        goto(b.page, "/train")
        button(b.page, "Start").click()
        b_id, b_status = run_status(b.page).groups()
        # Run ids are per learner ("run-1" is each learner's first run); what matters is whose run it is.
        assert b_status == "queued", f"B's run should wait behind A's, but it is {b_status}"
        wait_for_text(b.page, "Waiting in the server queue: position 1", timeout=60)
        wait_for_text(b.page, "Waiting in the server queue: position 1", timeout=60,
                      selector='[data-testid="stSidebar"]')  # the status shown on every page
        step(f"B: {b_id} queued at position 1")

        c = tab()
        goto(c.page, "/draw")
        draw(c.page, SEVEN)
        wait_for_text(c.page, "Prediction: 7", timeout=90)
        step("C: drew a 7, read 'Prediction: 7'")
        assert model_options(c.page) == [BUNDLED]
        c_text = c.page.locator('[data-testid="stApp"]').inner_text()
        assert not RUN_ID.search(c_text), f"C (never trained) sees run ids: {RUN_ID.findall(c_text)}"

        d = tab()
        for path in ("/results", "/inside"):
            goto(d.page, path, timeout=180)
            assert exception_boxes(d.page) == []
            assert model_options(d.page) == [BUNDLED]
            d_text = d.page.locator('[data-testid="stApp"]').inner_text()
            assert not RUN_ID.search(d_text), f"D on {path} sees run ids: {RUN_ID.findall(d_text)}"
            step(f"D: {path} shows no run id")
        assert not RUN_ID.search(sidebar(d.page).inner_text())

        # A's tab goes away: A's run keeps training and B keeps waiting.
        a_link = a.page.url
        assert "learner=" in a_link
        assert run_status(a.page, a_id).group(2) == "running"
        a.page.context.close()
        tabs.remove(a)
        time.sleep(5)
        assert run_status(b.page, b_id).group(2) == "queued"
        # A comes back with their link (another tab, or after a reload): the same run, still training.
        a2 = tab()
        goto(a2.page, a_link.replace(app_url, ""))
        wait_for_text(a2.page, f"{a_id} · running", timeout=60, selector='[data-testid="stMain"]')
        step(f"A: back with the link, {a_id} still running after the tab was closed")
        button(a2.page, "Stop").click()
        stopped = time.monotonic()
        wait_for_text(a2.page, f"{a_id} · stopped", timeout=60, selector='[data-testid="stMain"]')
        wait_for_text(b.page, f"{b_id} · running", timeout=120, selector='[data-testid="stMain"]')
        step(f"B: {b_id} running {time.monotonic() - stopped:.1f} s after A pressed Stop")
        rows = b.page.locator('[data-testid="stDataFrame"]').first.locator('[role="gridcell"]').all_inner_texts()
        assert "stopped" not in rows, f"B's history shows A's stopped run: {rows}"
    finally:
        for t in tabs:
            t.page.context.close()
