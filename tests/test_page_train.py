"""AppTest for the entry, Home and Train pages: widgets exist, a tiny run trains and fills the history."""
import time

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import nav

from tests.conftest import ROOT

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
        runs = at.session_state["runs"]
        if all(not r.snapshot().active for r in runs.values() if r.job):
            return
        time.sleep(0.2)
    raise AssertionError("training did not finish")


def test_a_tiny_run_trains_to_completion_and_fills_the_history(app):
    at = goto_train(app)
    at.select_slider(key="train_subset").set_value(500)
    at.number_input(key="train_epochs").set_value(2)
    at.run()
    at.button[[b.label for b in at.button].index("Start")].click()
    at.run()
    assert not at.exception, at.exception
    wait_until_done(at)
    at.run()
    assert not at.exception, at.exception
    runs = at.session_state["runs"]
    assert len(runs) == 1
    snap = next(iter(runs.values())).snapshot()
    assert snap.status == "finished" and len(snap.history.epochs) == 2
    assert any("Finished 2 epochs" in s.value for s in at.success)
    assert len(at.dataframe) >= 1 and at.dataframe[-1].value["status"].tolist() == ["finished"]


def test_diverging_run_ends_with_a_clear_message(app):
    at = goto_train(app)
    at.select_slider(key="train_subset").set_value(500)
    at.number_input(key="train_custom_lr").set_value(10.0)
    at.run()
    at.button[[b.label for b in at.button].index("Start")].click()
    at.run()
    wait_until_done(at)
    at.run()
    assert not at.exception
    assert any("lower the learning rate" in e.value for e in at.error)
