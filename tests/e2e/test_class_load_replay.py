"""The load test's recording still speaks to today's pages (benchmarks/class_load).

The Locust learners replay websocket messages recorded from chromium. A page change that renames a
widget would make them send values the server ignores, and the load test would measure nothing; this
replays every recorded message once at the protocol level, as one learner, and checks the answers.
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import sys

import pytest

from simplecnn.runstore import RunStore, learner_key

from .conftest import ROOT, running_app

CLASS_LOAD = ROOT / "benchmarks" / "class_load"
PREDICTION = re.compile(r"Prediction: (\S+)")


@pytest.fixture(scope="module")
def recorded():
    pytest.importorskip("websocket", reason="websocket-client is in requirements-dev.txt")
    sys.path.insert(0, str(CLASS_LOAD))
    from streamlit.proto.BackMsg_pb2 import BackMsg

    entries = json.loads((CLASS_LOAD / "recording.json").read_text())["entries"]
    for entry in entries:
        entry["msg"] = BackMsg.FromString(base64.b64decode(entry["backmsg"]))
    return {entry["label"]: entry for entry in entries}


def test_every_recorded_message_gets_its_answer(recorded, tmp_path):
    from streamlit_ws import StreamlitSession

    token = secrets.token_hex(16)
    with running_app(tmp_path) as server:
        session = StreamlitSession(server.url, token, timeout=120)
        try:
            pages = [label for label in recorded if label.startswith("page:")]
            assert len(pages) == 7
            for label in pages:
                run = session.rerun(recorded[label]["msg"])
                assert run.exceptions == [], (label, run.exceptions)
                assert run.texts, f"{label}: the page sent no text"
            digits = [label for label in recorded if label.startswith("draw:")]
            assert len(digits) == 10
            for label in digits:
                run = session.rerun(recorded[label]["msg"])
                match = run.find(PREDICTION)
                assert match and match.group(1) == recorded[label]["digit"], (label, run.texts[-5:])
            run = session.rerun(recorded["train:start"]["msg"])
            assert run.exceptions == []
            assert any("run-1" in text for text in run.texts), run.texts
        finally:
            session.close()
        runs = RunStore(tmp_path / "runs").records(learner_key(token))
        assert [r.id for r in runs] == ["run-1"]  # the replayed Start made a run for this learner only
        config = runs[0].meta["config"]
        assert config["subset"] == 500 and config["epochs"] == 1  # the recorded smallest settings
