"""Draw latency in a real browser: mouse-up on the Draw page's canvas -> the `Prediction:` text on screen.

Starts the whole app (`streamlit run app.py`, free port, headless), opens /draw in Debian's headless
chromium and draws `--strokes` digits, each one pen stroke on a cleared canvas, cycling through 0-9
at different sizes and places. For every stroke it times, inside the page (performance.now()):

* `total`: mouse-up -> the first animation frame after the `Prediction: D` heading is in the DOM;
* `client`: mouse-up -> the canvas sends the drawing over the websocket (the component waits
  ~0.2 s after mouse-up, then encodes the image);
* `server`: that send -> the websocket message after which the heading appeared (the script's run
  up to the prediction, plus loopback transfer);
* `render`: that message -> the heading on screen (React and the browser).

It prints each stroke, then p50 and p95 of each part (goal: total p95 <= 0.5 s) and how many digits
the bundled model read right. The other two scripts in this folder import the server, browser and
digit helpers from here.

    python benchmarks/draw_latency.py --strokes 20
"""
from __future__ import annotations

import argparse
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CANVAS_PX = 280  # the Draw page's canvas side (dashboard.canvas.CANVAS_SIZE)
HINT = "Draw a digit on the black canvas"

# -- digits as pen strokes -----------------------------------------------------------------------
# Each digit is one polyline in a unit box (x right, y down), drawn the way a person writes it in
# one movement. `place()` maps it onto the canvas at a given size and position.


def _arc(cx: float, cy: float, rx: float, ry: float, start_deg: float, end_deg: float, n: int = 14):
    """Points on an ellipse from start to end angle (degrees; 0 = right, 90 = down, like the screen)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in (start_deg + (end_deg - start_deg) * i / n for i in range(n + 1))]


def _eight(n: int = 28):
    """A figure eight: top loop to the right, bottom loop to the left, crossing in the middle."""
    return [(0.5 + 0.28 * math.sin(2 * t), 0.5 - 0.5 * math.cos(t))
            for t in (2 * math.pi * i / n for i in range(n + 1))]


DIGIT_PATHS: dict[str, list[tuple[float, float]]] = {
    "0": _arc(0.5, 0.5, 0.3, 0.48, -90, 280, 20),
    "1": [(0.52, 0.0), (0.48, 1.0)],
    "2": _arc(0.5, 0.27, 0.3, 0.25, 190, 380, 10) + [(0.2, 1.0), (0.85, 1.0)],
    "3": _arc(0.48, 0.25, 0.27, 0.24, 200, 450, 12)[:-1] + _arc(0.48, 0.74, 0.3, 0.26, -90, 160, 12),
    "4": [(0.68, 1.0), (0.68, 0.0), (0.12, 0.66), (0.9, 0.66)],
    "5": [(0.8, 0.0), (0.3, 0.0), (0.26, 0.42)] + _arc(0.48, 0.68, 0.3, 0.3, -120, 150, 12),
    "6": [(0.72, 0.0), (0.45, 0.2), (0.28, 0.5)] + _arc(0.5, 0.74, 0.24, 0.25, 180, 530, 16),
    "7": [(0.12, 0.0), (0.88, 0.0), (0.42, 1.0)],
    "8": _eight(),
    "9": _arc(0.48, 0.28, 0.26, 0.27, 0, -360, 16) + [(0.72, 1.0)],
}

# (height in canvas px, left, top) of successive drawings: sizes and places vary like a real hand's.
# Everything stays out of the top-right strip, where the canvas toolbar appears on hover.
PLACEMENTS = [(200, 70, 50), (150, 40, 100), (170, 110, 60), (220, 60, 40), (130, 120, 120),
              (190, 30, 70), (160, 90, 90)]


def place(digit: str, height: float, left: float, top: float) -> list[tuple[float, float]]:
    """Canvas points (px) of a digit drawn `height` px tall, its unit box's corner at (left, top)."""
    width = height * 0.7
    return [(left + x * width, top + y * height) for x, y in DIGIT_PATHS[digit]]


def drawing_plan(count: int) -> list[tuple[str, list[tuple[float, float]]]]:
    """`count` (digit, canvas points) pairs: 0-9 over and over, each time at another size and place."""
    plan = []
    for i in range(count):
        digit = str(i % 10)
        plan.append((digit, place(digit, *PLACEMENTS[i % len(PLACEMENTS)])))
    return plan


def rasterize(points: list[tuple[float, float]], width: int = 20):
    """The stroke as the canvas would hold it: (280, 280, 4) uint8 RGBA, white ink on black (offline checks)."""
    import numpy as np
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (CANVAS_PX, CANVAS_PX), (0, 0, 0, 255))
    pen = ImageDraw.Draw(image)
    pen.line(points, fill=(255, 255, 255, 255), width=width, joint="curve")
    r = width / 2
    for x, y in (points[0], points[-1]):
        pen.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 255))
    return np.asarray(image)


# -- the app server ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`streamlit run app.py --server.headless true` on 127.0.0.1:<free port>; stopped by its own PID."""

    def __init__(self, env: dict[str, str] | None = None, options: list[str] | None = None,
                 prefix: list[str] | None = None) -> None:
        self.prefix = prefix or []  # e.g. ["taskset", "-c", "0"]: pins the server and its children
        self.options = [a for opt in (options or []) for a in (f"--{opt.partition('=')[0]}", opt.partition("=")[2])]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix="simplecnn-bench-", suffix=".log")[1])
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                 "--server.port", str(self.port), "--server.address", "127.0.0.1",
                 "--browser.gatherUsageStats", "false", *self.options],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited ({self.process.returncode}):\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"streamlit did not answer on {self.url}:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) in kB and Threads of a process, read from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            values[key] = int(rest.split()[0])
    return values


# -- the browser ---------------------------------------------------------------------------------
# Installed before the app's own scripts: records performance.now() of every mouse-up, websocket
# send and websocket message, and of the first frame showing a "Prediction:" heading after a mark.
TIMING_SCRIPT = """
(() => {
  const t = window.__lat = {ups: [], sends: [], recvs: [], shown: null, armed: false};
  window.addEventListener('mouseup', () => { t.ups.push(performance.now()); }, true);
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => { t.recvs.push(performance.now()); });
    }
    send(data) { t.sends.push(performance.now()); return super.send(data); }
  };
  const check = () => {
    if (!t.armed || t.shown !== null) return;
    for (const h of document.querySelectorAll('h3')) {
      if (h.textContent.startsWith('Prediction:')) {
        const inDom = performance.now();
        t.armed = false;
        requestAnimationFrame(() => { t.shown = {dom: inDom, frame: performance.now(), text: h.textContent}; });
        return;
      }
    }
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true, characterData: true});
})();
"""


def add_streamlit_option_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--streamlit-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra `streamlit run` option for the server, e.g. runner.postScriptGC=false "
                             "(repeatable); default: the app's own .streamlit/config.toml")


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def prime_navigation(browser, url: str) -> None:
    """Open "/" once in a throwaway session, so the timed sessions find a warm server.

    The first run of a fresh server loads the datasets and the bundled model, and (Streamlit 1.67,
    app.py beside a pages/ folder) leaves the legacy pages/-folder mode, which
    dashboard/__init__.py does with one extra rerun; neither belongs in a timing.
    """
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Dashboard").first.wait_for(timeout=120_000)
    context.close()


def open_draw_page(browser, url: str, timing: bool = True):
    """A fresh context (its own Streamlit session) on /draw, once the canvas is ready."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(90_000)
    if timing:
        context.add_init_script(TIMING_SCRIPT)
    page = context.new_page()
    page.goto(f"{url}/draw")
    page.wait_for_selector('[data-testid="stApp"]')
    page.locator("canvas.upper-canvas").wait_for(state="visible")
    page.get_by_text(HINT).first.wait_for()
    return page


# True when the point (page px) hits the drawing canvas, looking inside the component's shadow root.
HITS_CANVAS = """([x, y]) => {
  let el = document.elementFromPoint(x, y);
  while (el && el.shadowRoot) {
    const inner = el.shadowRoot.elementFromPoint(x, y);
    if (!inner || inner === el) break;
    el = inner;
  }
  return !!el && el.classList.contains('upper-canvas');
}"""


def canvas_box(page, first_point) -> dict:
    """The canvas's box once it has stopped moving and really receives the mouse at the first point.

    While Streamlit re-renders, elements above the canvas can still shift; a stroke measured against
    a stale box lands beside the canvas and selects text instead of drawing.
    """
    deadline = time.monotonic() + 60
    canvas = page.locator("canvas.upper-canvas")
    box = canvas.bounding_box()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        again = canvas.bounding_box()
        if again == box and box and page.evaluate(
                HITS_CANVAS, [box["x"] + first_point[0], box["y"] + first_point[1]]):
            return box
        box = again
    raise TimeoutError("the canvas did not settle within 60 s")


def stroke(page, points: list[tuple[float, float]]) -> None:
    """One pen stroke through canvas points, ~20 mouse moves per segment like a real hand."""
    box = canvas_box(page, points[0])
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for (x0, y0), (x, y) in pairwise(points):
        steps = max(2, min(20, int(math.dist((x0, y0), (x, y)) / 4)))
        page.mouse.move(box["x"] + x, box["y"] + y, steps=steps)
    page.mouse.up()


def clear(page) -> None:
    """Press Clear and wait for the empty canvas's hint (no prediction on screen)."""
    page.get_by_role("button", name="Clear").click()
    page.get_by_text(HINT).first.wait_for()
    # The cleared canvas is a new component (new key); the old one lingers until the rerun ends.
    page.wait_for_function("() => document.querySelector('[data-testid=\"stApp\"]')"
                           ".getAttribute('data-test-script-state') === 'notRunning'", polling=50)
    deadline = time.monotonic() + 60
    while page.locator("canvas.upper-canvas").count() != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the remounted canvas attaches its mouse handlers


def prediction_text(page) -> str:
    headings = page.locator("h3", has_text="Prediction:").all_inner_texts()
    return headings[0].strip() if headings else ""


@dataclass
class Timing:
    digit: str
    read: str  # what the page said, e.g. "Prediction: 7"
    total: float  # seconds, mouse-up -> heading on screen
    client: float | None  # mouse-up -> websocket send
    server: float | None  # send -> the message that brought the heading
    render: float | None  # that message -> heading on screen
    compute_ms: float | None  # "Prepared and predicted in N ms" (preprocessing + forward pass)

    @property
    def right(self) -> bool:
        return self.read == f"Prediction: {self.digit}"


def split_timing(lat: dict) -> tuple[float, float | None, float | None, float | None]:
    """(total, client, server, render) seconds of the last stroke from TIMING_SCRIPT's stamps."""
    up, shown = lat["ups"][-1], lat["shown"]
    sends = [s for s in lat["sends"] if s >= up]
    client = server = render = None
    if sends:
        client = (sends[0] - up) / 1000
        carriers = [r for r in lat["recvs"] if sends[0] <= r <= shown["dom"]]
        if carriers:
            server = (carriers[-1] - sends[0]) / 1000
            render = (shown["frame"] - carriers[-1]) / 1000
    return (shown["frame"] - up) / 1000, client, server, render


def timed_stroke(page, digit: str, points, timeout: float = 60.0) -> Timing:
    """Draw one digit on an empty canvas and time mouse-up -> its `Prediction:` heading on screen."""
    page.evaluate("() => { const t = window.__lat; t.shown = null; t.armed = true; "
                  "t.ups.length = 0; t.sends.length = 0; t.recvs.length = 0; }")
    stroke(page, points)
    page.wait_for_function("() => window.__lat.shown !== null", timeout=timeout * 1000, polling=50)
    lat = page.evaluate("() => window.__lat")
    total, client, server, render = split_timing(lat)
    from playwright.sync_api import Error as PlaywrightError

    compute_ms = None
    caption = page.get_by_text("Prepared and predicted in").first
    try:
        match = re.search(r"in (\d+) ms", caption.inner_text(timeout=10_000))
        compute_ms = float(match.group(1)) if match else None
    except PlaywrightError:  # caption not rendered in time: the other figures still stand
        compute_ms = None
    return Timing(digit, lat["shown"]["text"].strip(), total, client, server, render, compute_ms)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_line(name: str, values: list[float | None], unit: str = "s", scale: float = 1.0) -> str:
    vals = [v * scale for v in values if v is not None]
    if not vals:
        return f"{name:>10}: n/a"
    return (f"{name:>10}: p50 {percentile(vals, 50):.3f} {unit}  p95 {percentile(vals, 95):.3f} {unit}  "
            f"mean {statistics.fmean(vals):.3f}  max {max(vals):.3f}  (n={len(vals)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strokes", type=int, default=20, help="digits to draw, one stroke each")
    parser.add_argument("--url", default=None, help="use an app already running here instead of starting one")
    parser.add_argument("--warmup", type=int, default=1, help="untimed digits drawn first (first-run caches)")
    add_streamlit_option_argument(parser)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server = None if args.url else AppServer(options=args.streamlit_option)
    url = args.url or server.__enter__().url
    try:
        with sync_playwright() as p:
            browser = launch_browser(p)
            prime_navigation(browser, url)
            page = open_draw_page(browser, url)
            for digit, points in drawing_plan(args.warmup):
                timed_stroke(page, digit, points)
                clear(page)
            timings = []
            for i, (digit, points) in enumerate(drawing_plan(args.strokes)):
                t = timed_stroke(page, digit, points)
                timings.append(t)
                parts = " ".join(f"{k} {v:.3f}s" for k, v in
                                 (("client", t.client), ("server", t.server), ("render", t.render)) if v is not None)
                print(f"stroke {i + 1:2d}: drew {digit} -> {t.read!r:17} total {t.total:.3f}s  ({parts}; "
                      f"compute {t.compute_ms if t.compute_ms is not None else '?'} ms)", flush=True)
                clear(page)
            browser.close()
    finally:
        if server is not None:
            server.__exit__()
    print(f"\nmouse-up -> 'Prediction:' on screen, {len(timings)} strokes (goal: p95 <= 0.5 s)")
    print(summary_line("total", [t.total for t in timings]))
    print(summary_line("client", [t.client for t in timings]) + "   <- canvas debounce + PNG encode, in the browser")
    print(summary_line("server", [t.server for t in timings]) + "   <- script run up to the heading + transfer")
    print(summary_line("render", [t.render for t in timings]) + "   <- React + first frame")
    print(summary_line("compute", [t.compute_ms for t in timings], unit="ms") + "   <- preprocessing + forward pass")
    right = sum(t.right for t in timings)
    print(f"read right: {right}/{len(timings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
