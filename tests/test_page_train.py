"""AppTest for the entry, Home and Train pages: widgets exist, a tiny run trains and fills the history,
and a learner's runs are kept on the server: a reload or a closed tab loses nothing."""
import time

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import nav

from tests.conftest import ROOT
from tests.helpers import app_runs, page_as, runs_of

APP = str(ROOT / "app.py")


@pytest.fixture
def app():
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def test_home_shows_the_network_with_real_numbers(app):
    text = " ".join(m.value for m in app.markdown) + " ".join(str(m.value) for m in app.metric)
    assert "582,218" in text
    assert len(app.dataframe) >= 1
    table = app.dataframe[0].value
    assert "(1, 32, 24, 24)" in table["output shape"].tolist()


def test_every_registered_page_file_exists():
    from tests.conftest import ROOT
    for path, _, _ in nav.DASHBOARD_PAGES + nav.LESSON_PAGES:
        assert (ROOT / path).is_file(), path


def goto_train(at):
    at.switch_page(nav.TRAIN)
    at.run()
    assert not at.exception, at.exception
    return at


def test_train_page_has_all_controls(app):
    at = goto_train(app)
    labels = {w.label for w in at.select_slider} | {w.label for w in at.slider} | \
        {w.label for w in at.selectbox} | {w.label for w in at.number_input} | {w.label for w in at.toggle}
    for wanted in ("Learning rate (log scale)", "Dropout after conv block 1", "Dropout after conv block 2",
                   "Batch size", "Epochs", "Validation split", "Optimizer", "Batch normalization",
                   "Training images (train + validation)", "Seed"):
        assert wanted in labels, wanted
    buttons = {b.label for b in at.button}
    assert {"Start", "Stop", "Resume", "Reset"} <= buttons
    assert any("import torch" in c.value for c in at.code)  # "show the code"


def wait_until_done(at, timeout=120):
    from dashboard import state  # noqa: F401  (import check)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        runs = app_runs(at)  # the learner's stored runs, read through the classroom
        if all(not r.snapshot().active for r in runs.values() if r.job):
            return
        time.sleep(0.2)
    raise AssertionError("training did not finish")


def start(at):
    at.button[[b.label for b in at.button].index("Start")].click()
    at.run()
    assert not at.exception, at.exception


def test_a_tiny_run_trains_to_completion_and_fills_the_history(app):
    at = goto_train(app)
    at.select_slider(key="train_subset").set_value(500)
    at.number_input(key="train_epochs").set_value(2)
    at.run()
    start(at)
    assert list(app_runs(at)) == ["run-1"]  # run ids count per learner
    wait_until_done(at)
    at.run()
    assert not at.exception, at.exception
    runs = app_runs(at)
    assert len(runs) == 1
    (run,) = runs.values()
    snap = run.snapshot()
    assert run.kind == "trained" and run.job is not None
    assert snap.status == "finished" and len(snap.history.epochs) == 2
    assert run.job.saved_epochs() == [1, 2] and run.record.dir.latest_path.is_file()  # kept on disk
    assert any("Finished 2 epochs" in s.value for s in at.success)
    assert len(at.dataframe) >= 1 and at.dataframe[-1].value["status"].tolist() == ["finished"]

    # A later session with the learner's link (a reload, another tab, the next lesson) still has the run:
    # an earlier session's runs no longer disappear with it.
    token = at.session_state["_learner_token"]
    assert at.query_params["learner"] == token  # the page put the learner's token into its link
    again = page_as(str(ROOT / nav.TRAIN), token, timeout=120)
    again.run()
    assert not again.exception, again.exception
    assert again.session_state["current_run_id"] == "run-1"
    assert any("Finished 2 epochs" in s.value for s in again.success)
    assert again.dataframe[-1].value["status"].tolist() == ["finished"]
    assert again.dataframe[-1].value["run"].tolist() == ["run-1"]


def test_diverging_run_ends_with_a_clear_message(app):
    at = goto_train(app)
    at.select_slider(key="train_subset").set_value(500)
    at.number_input(key="train_custom_lr").set_value(10.0)
    at.run()
    start(at)
    wait_until_done(at)
    at.run()
    assert not at.exception
    assert any("lower the learning rate" in e.value for e in at.error)
    (run,) = app_runs(at).values()
    assert run.snapshot().status == "diverged"


def test_a_run_keeps_training_after_its_tab_is_gone_and_a_new_tab_finds_it(app):
    """No heartbeat any more: closing the tab that started a run no longer cancels it (that lost work)."""
    at = goto_train(app)
    token = at.session_state["_learner_token"]
    at.select_slider(key="train_subset").set_value(500)
    at.number_input(key="train_epochs").set_value(1)
    at.run()
    start(at)
    (job,) = [r.job for r in runs_of(token).values()]
    assert job.snapshot().active
    # The tab is gone: no script of this session runs again, so nothing tells the server it is there.
    # A new tab with the learner's link, opened at once, reattaches to the run on its way.
    other = page_as(str(ROOT / nav.TRAIN), token, timeout=120)
    other.run()
    assert not other.exception, other.exception
    assert other.session_state["current_run_id"] == job.id
    job.join(120)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.epoch == 1, (snap.status, snap.message)
    # The learner comes back with their link: the page reattaches to the run, which kept its work.
    back = page_as(str(ROOT / nav.TRAIN), token, timeout=120)
    back.run()
    assert not back.exception, back.exception
    assert back.session_state["current_run_id"] == job.id
    assert any("Finished 1 epoch." in s.value for s in back.success), [s.value for s in back.success]
    assert back.dataframe[-1].value["status"].tolist() == ["finished"]


def test_a_queued_run_refreshes_slowly_without_a_chart_and_the_curves_are_built_once_per_change():
    """A waiting run's page costs the server little (benchmarks/class_load): no empty chart, a 3 s
    refresh; once it trains, the 1 s refresh comes back and an unchanged figure is not rebuilt."""
    from dashboard.status import QUEUED_REFRESH_SECONDS, REFRESH_SECONDS
    from simplecnn.training import TrainConfig
    from tests.helpers import SlotHolder, classroom, new_learner, page_as, start_run

    token = new_learner()
    holder = SlotHolder()
    scheduler = classroom().scheduler
    assert scheduler.acquire(holder)
    job = start_run(token, TrainConfig(epochs=1, subset=500, log_every=1))
    try:
        at = page_as(str(ROOT / nav.TRAIN), token).run()
        assert not at.exception, at.exception
        assert job.waiting
        assert at.session_state["_refresh_train_live"] == QUEUED_REFRESH_SECONDS
        assert not at.get("plotly_chart")
        assert any("curves start when your run leaves the queue" in c.value for c in at.caption)
    finally:
        scheduler.release(holder)
    job.join(120)
    assert job.snapshot().status == "finished"
    at.run()
    assert not at.exception, at.exception
    # the finished run's curves, beside the Layer health charts (tests/test_health_panel.py)
    assert [c.key for c in at.get("plotly_chart") if not c.key.startswith("health_")] == ["train_curves"]
    key, figure = at.session_state["_train_curves"]
    assert key[1] == "finished" and key[2][0] == len(job.snapshot().history.steps) > 0
    at.run()
    assert at.session_state["_train_curves"][1] is figure  # nothing changed: the same figure, not rebuilt

    # Training again: the live parts refresh every second while it trains.
    again = start_run(token, TrainConfig(epochs=3, subset=2000, log_every=1))
    try:
        assert wait_for_running(again)
        at.run()
        assert at.session_state["_refresh_train_live"] == REFRESH_SECONDS
    finally:
        again.stop()
        again.join(60)


def wait_for_running(job, timeout=90):
    from tests.helpers import wait_for
    return wait_for(lambda: job.snapshot().latest is not None and not job.waiting, timeout=timeout)
