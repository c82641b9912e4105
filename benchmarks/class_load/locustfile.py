"""Locust learners that speak Streamlit's websocket protocol, replaying a real chromium session.

Each simulated learner has its own `?learner=` token and its own websocket session, and replays the
messages `record.py` captured from chromium (see `streamlit_ws.py`):

* `Drawer`: opens Draw, then every 5-10 s draws one of the recorded digits (0-9) and checks that the
  answer's "Prediction: D" names that digit; one time in four it opens another page first
  (Train, Results, Inside, Data, Home or a lesson) and comes back to Draw. While it "thinks" it
  reruns the page's live fragments at their `run_every`, as an open tab does.
* `Trainer` (`CLASS_LOAD_TRAINERS` of them, default 0): opens Train, presses Start with the recorded
  smallest settings (500 images, 1 epoch), watches its run through the Train page's live fragment
  until the run store says it ended, thinks 5-10 s, and starts again.

Each answer is reported to Locust as a request ("draw", "page:<name>", "train:start",
"fragment") with its time in ms, and failures say what was wrong (wrong digit, exception on the
page, no answer in time). Raw samples are also written as JSON lines to `CLASS_LOAD_SAMPLES` for
exact percentiles (run.py reads them).

Run through `run.py`, which starts the server(s), pins CPUs and writes the report; or by hand:

    CLASS_LOAD_URLS=http://127.0.0.1:8501 locust -f benchmarks/class_load/locustfile.py --headless \\
        --users 10 --spawn-rate 2 --run-time 60s
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import random
import re
import secrets
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from locust import User, events, task  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit_ws import ProtocolError, StreamlitSession  # noqa: E402

RECORDING = Path(os.environ.get("CLASS_LOAD_RECORDING", HERE / "recording.json"))
URLS = os.environ.get("CLASS_LOAD_URLS", "http://127.0.0.1:8501").split(",")  # one per web server
RUNS_DIR = os.environ.get("CLASS_LOAD_RUNS_DIR")  # the servers' SIMPLECNN_RUNS_DIR (trainers watch it)
SAMPLES = os.environ.get("CLASS_LOAD_SAMPLES")  # JSON lines of raw samples, for exact percentiles
THINK_S = (5.0, 10.0)  # a learner draws every 5-10 s
BROWSE_SHARE = 0.25  # share of turns in which a drawer visits another page first
PREDICTION = re.compile(r"Prediction: (\S+)")
_next_server = itertools.count()
_samples: list[dict] = []


def _load_recording() -> dict[str, list[dict]]:
    entries = json.loads(RECORDING.read_text())["entries"]
    for entry in entries:
        msg = BackMsg()
        msg.ParseFromString(base64.b64decode(entry["backmsg"]))
        entry["msg"] = msg
    return {
        "draw": [e for e in entries if e["label"].startswith("draw:")],
        "pages": {e["label"].removeprefix("page:"): e for e in entries if e["label"].startswith("page:")},
        "train": [e for e in entries if e["label"] == "train:start"],
    }


RECORDED = _load_recording()


def _report(user: "Learner", name: str, started: float, seconds: float, size: int = 0,
            error: str | None = None, **extra) -> None:
    """One answer to Locust (ms) and to the raw samples file."""
    events.request.fire(request_type="WS", name=name, response_time=seconds * 1000, response_length=size,
                        exception=ProtocolError(error) if error else None, context={})
    _samples.append({"name": name, "t": started, "s": seconds, "error": error, "server": user.server,
                     "user": user.token[:8], **extra})


@events.test_stop.add_listener
def _write_samples(**_kwargs) -> None:
    if SAMPLES:
        with open(SAMPLES, "a") as out:
            for sample in _samples:
                out.write(json.dumps(sample) + "\n")


class Learner(User):
    """A tab of one learner: its own token, its own Streamlit session, on one web server (sticky)."""

    abstract = True
    wait_time = staticmethod(lambda: 0)  # tasks think (and refresh fragments) themselves

    def on_start(self) -> None:
        self.server = URLS[next(_next_server) % len(URLS)]
        self.token = secrets.token_hex(16)
        self.session = StreamlitSession(self.server, self.token, timeout=120.0)
        self.here = None

    def on_stop(self) -> None:
        self.session.close()

    # -- helpers ---------------------------------------------------------------------------------
    def open_page(self, name: str) -> bool:
        entry = RECORDED["pages"][name]
        started = time.time()
        try:
            run = self.session.rerun(entry["msg"])
        except ProtocolError as exc:
            _report(self, f"page:{name}", started, time.time() - started, error=str(exc))
            return False
        error = f"exception on the page: {run.exceptions[0]}" if run.exceptions else None
        _report(self, f"page:{name}", started, run.seconds, run.received_bytes, error,
                first_delta_s=run.first_delta_s)
        self.here = name
        return error is None

    def think(self, seconds: float) -> None:
        """Wait like a learner looking at the page, rerunning its live fragments when they are due."""
        end = time.monotonic() + seconds
        while True:
            due = self.session.next_fragment_due()
            now = time.monotonic()
            if due is None or due >= end:
                time.sleep(max(0.0, end - now))
                return
            time.sleep(max(0.0, due - now))
            started = time.time()
            try:
                for run in self.session.rerun_due_fragments():
                    error = f"exception in a fragment: {run.exceptions[0]}" if run.exceptions else None
                    _report(self, f"fragment:{self.here}", started, run.seconds, run.received_bytes, error)
                    started = time.time()
            except ProtocolError as exc:
                _report(self, f"fragment:{self.here}", started, time.time() - started, error=str(exc))


class Drawer(Learner):
    """Draws a digit every 5-10 s on the Draw page; now and then looks at another page."""

    weight = 1

    def on_start(self) -> None:
        super().on_start()
        self.open_page("Draw")

    @task
    def draw_or_browse(self) -> None:
        self.think(random.uniform(*THINK_S))
        if random.random() < BROWSE_SHARE:
            self.open_page(random.choice([p for p in RECORDED["pages"] if p != "Draw"]))
            self.think(random.uniform(1.0, 3.0))
            self.open_page("Draw")
        self.draw()

    def draw(self) -> None:
        entry = random.choice(RECORDED["draw"])
        expected = entry["browser_read"]
        started = time.time()
        try:
            run = self.session.rerun(entry["msg"])
        except ProtocolError as exc:
            _report(self, "draw", started, time.time() - started, error=str(exc))
            return
        match = run.find(PREDICTION)
        read = match.group(1) if match else None
        error = None
        if run.exceptions:
            error = f"exception on the page: {run.exceptions[0]}"
        elif read != expected:
            error = f"drew a {expected}, the page read {read!r}"
        _report(self, "draw", started, run.seconds, run.received_bytes, error,
                answer_s=run.text_seconds(PREDICTION), digit=expected)


def _learner_dir(token: str) -> Path | None:
    """The learner's folder in the run store (simplecnn.runstore.learner_key), when RUNS_DIR is known."""
    if not RUNS_DIR:
        return None
    return Path(RUNS_DIR) / "learners" / hashlib.sha256(token.encode()).hexdigest()[:32]


def _run_states(token: str) -> dict[str, str]:
    """run id -> status, read from the run store's run.json files (what every web server sees)."""
    folder = _learner_dir(token)
    states = {}
    if folder is not None and folder.is_dir():
        for run_json in folder.glob("run-*/run.json"):
            try:
                states[run_json.parent.name] = json.loads(run_json.read_text()).get("status", "?")
            except (OSError, ValueError):
                continue  # being replaced right now: read it next time
    return states


ENDED = {"finished", "stopped", "failed", "diverged", "interrupted"}


class Trainer(Learner):
    """Starts the smallest run, watches it on the Train page until it ends, and starts another."""

    weight = 0
    fixed_count = int(os.environ.get("CLASS_LOAD_TRAINERS", "0"))

    def on_start(self) -> None:
        super().on_start()
        self.open_page("Train")

    @task
    def train(self) -> None:
        before = _run_states(self.token)
        started = time.time()
        try:
            run = self.session.rerun(RECORDED["train"][0]["msg"])
        except ProtocolError as exc:
            _report(self, "train:start", started, time.time() - started, error=str(exc))
            self.think(5.0)
            return
        error = f"exception on the page: {run.exceptions[0]}" if run.exceptions else None
        refused = next((t for t in run.texts if "cannot start" in t.lower() or "refused" in t.lower()), None)
        _report(self, "train:start", started, run.seconds, run.received_bytes, error or refused)
        deadline = time.monotonic() + 600
        new_run = None
        while time.monotonic() < deadline:
            self.think(1.0)
            states = _run_states(self.token)
            new_run = next((r for r in states if r not in before), new_run)
            if new_run is None and RUNS_DIR is None:
                break  # cannot watch the store: just think as long as a small run takes
            if new_run is not None and states.get(new_run) in ENDED:
                _samples.append({"name": "training", "t": started, "s": time.time() - started,
                                 "status": states[new_run], "server": self.server, "user": self.token[:8],
                                 "error": None})
                break
        self.think(random.uniform(*THINK_S))
