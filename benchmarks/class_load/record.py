"""Record, once, what a real chromium session sends to the server; the Locust learners replay it.

Starts `streamlit run app.py` on a free loopback port, drives Debian's headless chromium with
Playwright like a learner, and keeps every `rerun_script` BackMsg the page sends on its websocket:

* "page:<name>": opening each dashboard page from the sidebar menu (Home, Draw, Train, Results,
  Inside the network, Data) and one lesson;
* "draw:<digit>": the canvas value after a digit is drawn with the mouse (0-9, one fresh session
  per digit so the canvas key is the one a new session has), with the prediction the browser showed;
* "train:start": pressing Start on the Train page with the smallest settings (500 images, 1 epoch).

Each message is checked by replaying it once through `streamlit_ws` in a new session before it is
saved, so a recording that would not be understood fails here rather than in the load test.

    python benchmarks/class_load/record.py            # writes benchmarks/class_load/recording.json
"""
from __future__ import annotations

import argparse
import base64
import json
import re
import secrets
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from draw_latency import AppServer, HINT, drawing_plan, launch_browser, prediction_text, stroke  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit_ws import StreamlitSession  # noqa: E402

RECORDING = HERE / "recording.json"
PAGES = ["Draw", "Train", "Results", "Inside the network", "Data", "Home"]
LESSON = "3 · Convolution"
LESSON_PATH = "/convolution"
PREDICTION = re.compile(r"Prediction: (\S+)")


class Recorder:
    """Keeps the rerun_script BackMsgs a page sends; `take()` returns those since the last take."""

    def __init__(self) -> None:
        self.sent: list[BackMsg] = []

    def attach(self, page) -> None:
        page.on("websocket", lambda ws: ws.on("framesent", self._frame))

    def _frame(self, payload) -> None:
        if isinstance(payload, str):
            return
        msg = BackMsg()
        msg.ParseFromString(payload)
        if msg.WhichOneof("type") == "rerun_script" and not msg.rerun_script.fragment_id:
            self.sent.append(msg)

    def take(self) -> list[BackMsg]:
        taken, self.sent = self.sent, []
        return taken


def _presses_a_button(msg: BackMsg) -> bool:
    return any(w.WhichOneof("value") == "trigger_value" and w.trigger_value
               for w in msg.rerun_script.widget_states.widgets)


def idle(page, timeout: float = 120.0) -> None:
    page.wait_for_function("() => document.querySelector('[data-testid=\"stApp\"]')"
                           "?.getAttribute('data-test-script-state') === 'notRunning'",
                           polling=100, timeout=timeout * 1000)
    time.sleep(0.5)


def nav(page, title: str) -> None:
    name = re.compile(rf"(^|\s){re.escape(title)}$")
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=name).first.click()
    idle(page)


def new_session(browser, recorder: Recorder, url: str, path: str = "/"):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(120_000)
    page = context.new_page()
    recorder.attach(page)
    page.goto(f"{url}{path}?learner={secrets.token_hex(16)}")
    page.wait_for_selector('[data-testid="stApp"]')
    idle(page)
    return context, page


def record(url: str, browser) -> list[dict]:
    recorder = Recorder()
    entries: list[dict] = []

    def keep(label: str, msg: BackMsg, **extra) -> None:
        entries.append({"label": label, "backmsg": base64.b64encode(msg.SerializeToString()).decode(),
                        **extra})

    # Pages, followed through the sidebar as a learner does.
    context, page = new_session(browser, recorder, url)
    recorder.take()
    for title in PAGES:
        nav(page, title)
        sent = recorder.take()
        keep(f"page:{title}", sent[0])
        print(f"recorded page {title!r} ({len(sent)} rerun message(s))", flush=True)
    context.close()
    context, page = new_session(browser, recorder, url, LESSON_PATH)  # the menu folds the lessons away
    keep(f"page:{LESSON}", recorder.take()[0])
    context.close()

    # Digits: one fresh session each, so the canvas widget is the one a new session shows.
    for digit, points in drawing_plan(10):
        context, page = new_session(browser, recorder, url, "/draw")
        page.get_by_text(HINT).first.wait_for()
        time.sleep(0.5)
        recorder.take()
        stroke(page, points)
        deadline = time.monotonic() + 60
        while not prediction_text(page) and time.monotonic() < deadline:
            time.sleep(0.1)
        idle(page)
        shown = prediction_text(page)
        sent = recorder.take()
        keep(f"draw:{digit}", sent[-1], digit=digit, browser_read=shown.removeprefix("Prediction: "))
        print(f"recorded digit {digit}: the browser showed {shown!r} ({len(sent)} message(s))", flush=True)
        context.close()

    # A small training: smallest subset, one epoch, Start.
    context, page = new_session(browser, recorder, url, "/train")
    slider = page.get_by_role("slider", name="Training images (train + validation)")
    slider.focus()
    for _ in range(12):
        slider.press("ArrowLeft")
    idle(page)
    box = page.get_by_label("Epochs", exact=True)
    box.fill("1")
    box.press("Tab")  # the number input commits its value when it loses focus
    idle(page)
    recorder.take()
    start = page.locator('[data-testid="stMain"]').get_by_role("button", name=re.compile(r"(^|\s)Start"))
    for _ in range(3):  # a click during a re-render can be lost: press again if nothing was sent
        start.first.click()
        deadline = time.monotonic() + 20
        while not any(map(_presses_a_button, recorder.sent)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if any(map(_presses_a_button, recorder.sent)):
            break
    sent = recorder.take()
    keep("train:start", next(filter(_presses_a_button, sent)))
    print(f"recorded train:start ({len(sent)} message(s))", flush=True)
    context.close()
    return entries


def verify(url: str, entries: list[dict]) -> None:
    """Replay each recorded message in a fresh protocol-level session; the answers must make sense."""
    for entry in entries:
        if entry["label"] == "train:start":
            continue  # checked by the load test itself (it would start one more run here)
        session = StreamlitSession(url, secrets.token_hex(16))
        msg = BackMsg()
        msg.ParseFromString(base64.b64decode(entry["backmsg"]))
        try:
            run = session.rerun(msg)
        finally:
            session.close()
        if run.exceptions:
            raise SystemExit(f"{entry['label']}: the replay raised {run.exceptions}")
        if entry["label"].startswith("draw:"):
            match = run.find(PREDICTION)
            read = match.group(1) if match else None
            entry["replay_read"] = read
            print(f"replayed {entry['label']}: read {read!r} in {run.seconds * 1000:.0f} ms", flush=True)
            if read != entry["browser_read"]:
                raise SystemExit(f"{entry['label']}: the browser read {entry['browser_read']!r}, the replay {read!r}")
        else:
            print(f"replayed {entry['label']}: {run.messages} messages, {run.received_bytes / 1e3:.0f} kB "
                  f"in {run.seconds * 1000:.0f} ms", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RECORDING, help=f"where to write (default: {RECORDING})")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    import tempfile
    with tempfile.TemporaryDirectory(prefix="simplecnn-record-") as runs_dir, \
            AppServer(env={"SIMPLECNN_RUNS_DIR": runs_dir}) as server, sync_playwright() as playwright:
        browser = launch_browser(playwright)
        try:
            entries = record(server.url, browser)
        finally:
            browser.close()
        verify(server.url, entries)
    args.out.write_text(json.dumps({"recorded": time.strftime("%Y-%m-%d %H:%M:%S"), "entries": entries}, indent=1))
    print(f"wrote {len(entries)} messages to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
