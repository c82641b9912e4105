"""A learner's link brings back their runs; the teacher page exists only for the teacher's link."""
import re

import pytest
from streamlit.testing.v1 import AppTest

from simplecnn.training import TrainConfig
from tests.conftest import ROOT
from tests.helpers import SlotHolder, classroom, new_learner, page_as, start_run, train_run

APP = str(ROOT / "app.py")
TEACHER_TOKEN = "teach-" + "x" * 26


def _param(at: AppTest, name: str) -> str:
    value = at.query_params[name]
    return value[0] if isinstance(value, list) else value


def test_first_visit_gets_a_128_bit_token_in_the_url_that_survives_a_page_switch():
    at = AppTest.from_file(APP, default_timeout=90).run()
    assert not at.exception
    token = _param(at, "learner")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    links = [c.value for c in at.code if "learner=" in c.value]  # the personal link, with st.code's copy button
    assert links == [f"/?learner={token}"]
    at.switch_page("pages/draw.py").run()  # Streamlit clears query parameters on a page switch
    assert not at.exception and _param(at, "learner") == token
    assert AppTest.from_file(APP, default_timeout=90).run().query_params["learner"] != at.query_params["learner"]


def test_the_same_link_in_a_new_session_finds_the_runs():
    token = new_learner()
    job = train_run(token, TrainConfig(epochs=1, subset=500))
    at = page_as(str(ROOT / "pages" / "train.py"), token).run()  # a reload: a brand-new session, same link
    assert not at.exception
    rows = at.dataframe[0].value
    assert list(rows["run"]) == [job.id] and list(rows["status"]) == ["finished"]
    other = page_as(str(ROOT / "pages" / "train.py"), new_learner()).run()
    assert not other.dataframe  # another learner sees none of it


def test_a_reload_reattaches_to_the_run_that_is_training():
    token = new_learner()
    holder = SlotHolder()
    scheduler = classroom().scheduler
    assert scheduler.acquire(holder)
    try:
        job = start_run(token, TrainConfig(epochs=1, subset=500))
        at = page_as(str(ROOT / "pages" / "train.py"), token).run()
        assert not at.exception
        assert f"**{job.id}** · queued" in at.get("progress")[0].proto.text
    finally:
        job.stop()
        scheduler.release(holder)
        job.join(60)


def teacher_app(monkeypatch, token: str | None) -> AppTest:
    monkeypatch.setenv("SIMPLECNN_TEACHER_TOKEN", TEACHER_TOKEN)
    at = AppTest.from_file(APP, default_timeout=90)
    if token is not None:
        at.query_params["teacher"] = token
    return at.run()


def test_no_teacher_page_without_the_variable(monkeypatch):
    monkeypatch.delenv("SIMPLECNN_TEACHER_TOKEN", raising=False)
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params["teacher"] = TEACHER_TOKEN
    at.run()
    assert not at.exception
    with pytest.raises(Exception):
        at.switch_page("pages/teacher.py").run()
    direct = AppTest.from_file(str(ROOT / "pages" / "teacher.py"), default_timeout=30).run()
    assert [e.value for e in direct.error] == ["This page is for the teacher's link only."]
    assert not direct.dataframe and not direct.button


@pytest.mark.parametrize("token", [None, "wrong", TEACHER_TOKEN + "x"])
def test_no_teacher_page_with_a_wrong_token(monkeypatch, token):
    at = teacher_app(monkeypatch, token)
    assert not at.exception
    with pytest.raises(Exception):
        at.switch_page("pages/teacher.py").run()


def test_teacher_sees_every_learners_run_and_controls_the_queue(monkeypatch):
    room = classroom()
    holder = SlotHolder()
    assert room.scheduler.acquire(holder)
    jobs = [start_run(new_learner(), TrainConfig(epochs=1, subset=500)) for _ in range(2)]
    before = (room.scheduler.max_concurrent, room.limits.max_run_images)
    try:
        at = teacher_app(monkeypatch, TEACHER_TOKEN)
        at.switch_page("pages/teacher.py").run()
        assert not at.exception
        assert any(t.value == "Class overview" for t in at.title)
        table = at.dataframe[0].value
        assert {j.id for j in jobs} <= set(table["run"]) and set(table["status"]) == {"queued"}
        assert all(alias.startswith("learner-") for alias in table["learner"])
        assert not any(j.owner in str(table.values) for j in jobs)  # no learner's key (or link) on the page
        key = f"{jobs[1].owner}/{jobs[1].id}"
        at.selectbox(key="teacher_run").set_value(key).run()
        at.button(key="teacher_front").click().run()
        assert not at.exception and jobs[1].snapshot().queue_position == 1
        at.button(key="teacher_cancel").click().run()  # out of the queue: the learner keeps it, resumable
        jobs[1].join(30)
        snap = jobs[1].snapshot()
        assert snap.status == "stopped" and "teacher" in snap.message and snap.can_resume
        at.number_input(key="teacher_concurrent").set_value(2)
        at.number_input(key="teacher_budget").set_value(250_000)
        at.button(key="teacher_apply").click().run()
        assert not at.exception
        assert room.scheduler.max_concurrent == 2 and room.limits.max_run_images == 250_000
        assert jobs[0].snapshot().status in ("running", "finished")  # the second slot started the queue
    finally:
        room.set_max_concurrent(before[0])
        room.set_max_run_images(before[1])
        for job in jobs:
            job.stop()
        room.scheduler.release(holder)
        for job in jobs:
            job.join(60)


def test_a_learner_deletes_a_run_and_its_files():
    token = new_learner()
    keep = train_run(token, TrainConfig(epochs=1, subset=500))
    gone = train_run(token, TrainConfig(epochs=1, subset=500, seed=1))
    folder = gone.run.path
    at = page_as(str(ROOT / "pages" / "train.py"), token).run()
    assert any("2 of 10 stored" in c.value for c in at.caption)
    assert any(c.value.startswith(":material/timer: About **") for c in at.caption)  # the estimate before Start
    at.selectbox(key="train_delete_choice").set_value(gone.id).run()
    at.button(key="train_delete").click().run()
    assert not at.exception
    assert not folder.exists() and keep.run.path.exists()
    assert list(at.dataframe[0].value["run"]) == [keep.id]
    assert any("1 of 10 stored" in c.value for c in at.caption)


def test_no_traceback_reaches_the_browser():
    import tomllib
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] in ("type", "none")
