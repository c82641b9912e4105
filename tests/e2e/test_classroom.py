"""One server, a whole class, nothing lost: in a real browser.

- A tab that is frozen (what Chrome does to hidden tabs, and tablets to sleeping ones: no timers, no
  refreshes) for twice the old heartbeat timeout: its run keeps training.
- The server killed with SIGKILL mid-training and started again: the finished run is back on every
  page, the interrupted one says where it stopped, and Resume finishes it.
- The teacher's page stops a learner's run and changes the number of trainings at once.
- A learner with maximal settings is refused with a message that says what to change.
"""
from __future__ import annotations

import re
import time

from .conftest import (
    PROGRESS,
    button,
    exception_boxes,
    goto,
    nav_link,
    open_tab,
    run_line,
    running_app,
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

TEACHER_TOKEN = "e2e-teacher-" + "7" * 24
SERVER_ENV = {"SIMPLECNN_TEACHER_TOKEN": TEACHER_TOKEN, "SIMPLECNN_MAX_TRAININGS": "1"}
OLD_HEARTBEAT_TIMEOUT_S = 30  # before this change, a run whose tab sent nothing for 30 s was cancelled
MAIN = '[data-testid="stMain"]'


def learner_path(page) -> str:
    """The learner's part of the page's URL: "?learner=<token>"."""
    match = re.search(r"\?learner=[0-9a-f]{32}", page.url)
    assert match, page.url
    return match.group(0)


def test_a_frozen_tab_keeps_its_run_training(browser, app_url):
    tab = open_tab(browser, app_url)
    page = tab.page
    try:
        goto(page, "/train")
        set_slider(page, "Training images (train + validation)", "all 60,000")
        set_number(page, "Epochs", 12)  # 48,000 x 12 = 576,000 images: minutes, longer than the freeze
        button(page, "Start").click()
        run_id, _, text = wait_for_run(page, "running", progress=True)
        before = PROGRESS.search(text).groups()
        link = learner_path(page)

        cdp = page.context.new_cdp_session(page)
        cdp.send("Page.setWebLifecycleState", {"state": "frozen"})  # no script, no timer, no websocket reply
        frozen_at = time.monotonic()
        time.sleep(2 * OLD_HEARTBEAT_TIMEOUT_S + 2)

        other = open_tab(browser, app_url)  # the same learner's link in another tab
        try:
            goto(other.page, "/train" + link)
            line = wait_for_run(other.page, "running", "finished", progress=True, timeout=60)
            after = PROGRESS.search(line[2]).groups()
            assert line[0] == run_id  # the same run, trained on while its tab was frozen (a fast machine may finish it)
            assert (int(after[0]), int(after[2])) > (int(before[0]), int(before[2])), (before, after)
            print(f"after {time.monotonic() - frozen_at:.0f} s frozen: {before} -> {after} ({line[1]})")
            screenshot(other.page, "classroom_frozen_tab_run_still_training")
            if line[1] == "running":
                button(other.page, "Stop").click()
            final = wait_for_run(other.page, "stopped", "finished", timeout=60)[1]
        finally:
            other.page.context.close()
        cdp.send("Page.setWebLifecycleState", {"state": "active"})
        line = wait_for_run(page, final, timeout=60)  # the woken tab catches up with what happened
        assert line[0] == run_id
        assert exception_boxes(page) == []
    finally:
        page.context.close()


def test_maximal_settings_are_refused_with_what_to_change(browser, app_url):
    tab = open_tab(browser, app_url)
    page = tab.page
    try:
        goto(page, "/train")
        set_slider(page, "Training images (train + validation)", "all 60,000")
        set_number(page, "Epochs", 100)
        before = wait_for_text(page, re.compile(r"This run would train on 4,800,000 images[^\n]*"), selector=MAIN)
        assert "use at most 12 epochs" in before
        button(page, "Start").click()
        refusal = wait_for_text(page, re.compile(r"Not started\.[^\n]*"), selector=MAIN)
        assert "4,800,000 images (48,000 × 100 epochs)" in refusal and "at most 12 epochs" in refusal
        assert run_line(page) is None and table_rows(page) == []
        screenshot(page, "classroom_refused_maximal_settings")
        assert exception_boxes(page) == [] and tab.problems() == []
    finally:
        page.context.close()


def test_teacher_stops_a_run_and_changes_the_concurrency(browser, app_url):
    pupil = open_tab(browser, app_url)
    teacher = open_tab(browser, app_url)
    try:
        goto(pupil.page, "/train")
        set_slider(pupil.page, "Training images (train + validation)", "20,000")
        set_number(pupil.page, "Epochs", 10)
        button(pupil.page, "Start").click()
        run_id = wait_for_run(pupil.page, "running", progress=True)[0]

        goto(teacher.page, "/")  # without the token there is no teacher page
        assert nav_link(teacher.page, "Class overview").count() == 0
        goto(teacher.page, f"/?teacher={TEACHER_TOKEN}")
        nav_link(teacher.page, "Class overview").click()
        wait_for_text(teacher.page, "Class overview", selector=MAIN)
        rows = wait_until(lambda: [r for r in table_rows(teacher.page) if r.get("run") == run_id], timeout=30,
                          message="the pupil's run in the teacher's table")
        assert rows[0]["status"] == "running" and rows[0]["learner"].startswith("learner-")
        assert learner_path(pupil.page)[9:] not in teacher.page.locator(MAIN).inner_text()  # no pupil's link
        screenshot(teacher.page, "classroom_teacher_overview")
        button(teacher.page, "Stop (saved, the learner can resume)").click()
        wait_for_run(pupil.page, "stopped", timeout=60)
        wait_for_text(pupil.page, "Stopped by the teacher", selector=MAIN)
        assert button(pupil.page, "Resume").is_enabled()

        box = teacher.page.get_by_label("Trainings at once", exact=True)
        box.fill("2")
        box.press("Tab")
        button(teacher.page, "Apply").click()
        wait_for_text(teacher.page, "Now 2 training(s) at once", selector=MAIN)
        goto(pupil.page, "/train" + learner_path(pupil.page))
        wait_for_text(pupil.page, "trainings on this server at once: 2", selector=MAIN)
        assert exception_boxes(teacher.page) == [] and teacher.problems() == []
        assert exception_boxes(pupil.page) == []
    finally:
        box = teacher.page.get_by_label("Trainings at once", exact=True)
        if box.count():
            box.fill("1")
            box.press("Tab")
            button(teacher.page, "Apply").click()
            wait_idle(teacher.page)
        pupil.page.context.close()
        teacher.page.context.close()


def test_a_server_killed_mid_training_loses_nothing(browser, tmp_path):
    """SIGKILL, as the out-of-memory killer would; then the server is started again on the same runs."""
    runs = tmp_path / "runs"
    env = {"SIMPLECNN_RUNS_DIR": str(runs), "SIMPLECNN_SAVE_EVERY": "2"}
    with running_app(tmp_path, env=env) as server:
        tab = open_tab(browser, server.url)
        page = tab.page
        goto(page, "/train")
        set_slider(page, "Training images (train + validation)", "1,000")
        set_number(page, "Epochs", 2)
        button(page, "Start").click()
        finished_id = wait_for_run(page, "finished", timeout=180)[0]
        set_slider(page, "Training images (train + validation)", "20,000")
        set_number(page, "Epochs", 3)
        button(page, "Start").click()
        wait_until(lambda: (line := run_line(page)) and line[0] != finished_id and line[1] == "running"
                   and PROGRESS.search(line[2]) and int(PROGRESS.search(line[2]).group(3)) >= 60 and line,
                   timeout=180, message="the second run to train 60 batches")
        interrupted_id = run_line(page)[0]
        link = learner_path(page)
        time.sleep(3)  # a save (every 2 s here) after batch 60
        server.kill()
        page.context.close()
        time.sleep(3)  # the orphaned training process notices, saves and ends

        started = time.monotonic()
        server.start()
        tab = open_tab(browser, server.url)
        page = tab.page
        try:
            goto(page, "/train" + link)
            print(f"restart to Train page with both runs: {time.monotonic() - started:.1f} s")
            line = wait_for_run(page, "interrupted", timeout=60)
            assert line[0] == interrupted_id
            message = wait_for_text(page, re.compile(r"The server restarted: interrupted at epoch \d+, batch \d+[^\n]*"),
                                    selector=MAIN)
            epoch, batch = map(int, re.search(r"epoch (\d+), batch (\d+)", message).groups())
            assert (epoch - 1) * 250 + batch >= 60, message  # 16,000 images / 64 = 250 batches an epoch
            rows = {r["run"]: r["status"] for r in table_rows(page)}
            assert rows == {finished_id: "finished", interrupted_id: "interrupted"}
            screenshot(page, "classroom_after_restart_train")
            for title, text in (("Draw", "Draw a digit"), ("Inside the network", "Inside the network"),
                                ("Results", "Results")):
                nav_link(page, title).click()
                wait_for_text(page, text, selector=MAIN)
                wait_idle(page)
                picker = page.locator('[data-testid="stSelectbox"]').filter(
                    has=page.locator("label", has_text=re.compile(r"^Model$"))).first
                picker.click()
                options = page.get_by_role("option").all_inner_texts()
                page.keyboard.press("Escape")
                assert any(o.startswith(f"{finished_id}:") and "finished" in o for o in options), options
                assert any(o.startswith(f"{interrupted_id}:") and "interrupted" in o for o in options), options
                assert exception_boxes(page) == [], title
            nav_link(page, "Train").click()
            wait_for_run(page, "interrupted", timeout=60)
            button(page, "Resume").click()
            wait_for_run(page, "running", "finished", timeout=60)
            wait_for_run(page, "finished", timeout=600)
            wait_for_text(page, "Finished 3 epochs.", selector=MAIN)
            row = wait_until(lambda: next((r for r in table_rows(page) if r.get("run") == interrupted_id
                                           and r.get("status") == "finished"), None),
                             timeout=30, message="the resumed run finished in the history table")
            assert row["epochs"] == "3/3" and float(row["best val acc %"]) > 90, row
            assert sidebar(page).get_by_text("Stop training").count() == 0
            screenshot(page, "classroom_after_restart_resumed")
            assert exception_boxes(page) == []
        finally:
            page.context.close()
        log = server.log()
        assert "Traceback" not in log, log
