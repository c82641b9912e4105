"""Many learners on one server: ten browser sessions at once, one training, two queued, seven drawing.

One `streamlit run app.py` with SIMPLECNN_MAX_TRAININGS=1, and one headless chromium with ten contexts (ten Streamlit sessions), driven concurrently (asyncio):

* trainer A starts a modest run on the Train page (`--subset`, `--epochs`);
* trainers B and C press Start too (long runs) and must see "Waiting in the server queue: position 1"
  and "2"; when A's run ends, B's starts;
* seven learners draw digits on the Draw page (each timed mouse-up -> `Prediction:` on screen, as in
  draw_latency.py) and browse Results, Inside, Train, Data and Home through the sidebar.

Checked and reported: every drawing read right; no learner ever sees a run id (they train nothing,
so any `run-N` on their pages, model picker included, would be another session's); the queue
positions; a Stop in the training tab ends its run and the next queued one starts (the worker
released the queue, i.e. its process ended); the server's memory (VmRSS,
VmHWM = peak, and OS thread count from /proc/<pid>/status) at each stage, also after the closed
sessions expired (`--session-ttl`, Streamlit's server.disconnectedSessionTTL, default 120 s there).

    python benchmarks/many_learners.py                   # ~5-10 min on a busy 2-core machine
    python benchmarks/many_learners.py --learners 3 --digits 4 --subset 5000
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from draw_latency import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HINT,
    HITS_CANVAS,
    TIMING_SCRIPT,
    AppServer,
    add_streamlit_option_argument,
    drawing_plan,
    proc_status,
    summary_line,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

STATUS = re.compile(r"(run-\d+) · (queued|running|stopping|stopped|finished|cancelled|failed|diverged)")
QUEUE = re.compile(r"Waiting in the server queue: position (\d+)")
RUN_ID = re.compile(r"\brun-[0-9a-f]+\b")
BROWSE = [("results", "Results"), ("inside", "Inside the network"), ("train", "Train"), ("data", "Data"),
          ("", "Home")]
SUBSETS = [500, 1000, 2000, 5000, 10000, 20000, 30000, None]  # pages/train.py's slider, default 5000


@dataclass
class Report:
    strokes: list = field(default_factory=list)  # (learner, Timing)
    leaks: list[str] = field(default_factory=list)
    no_answer: list[str] = field(default_factory=list)  # drawings that never got a prediction
    lost_strokes: int = 0  # strokes that missed the canvas (drawn again)
    errors: list[str] = field(default_factory=list)
    memory: list[tuple[float, dict]] = field(default_factory=list)  # (t, proc_status)
    page_loads: list[float] = field(default_factory=list)  # s from goto(/draw) to a usable canvas
    health: list[float] = field(default_factory=list)  # s for GET /_stcore/health, sampled during load
    events: list[tuple[float, str]] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def log(self, text: str) -> None:
        t = time.monotonic() - self.t0
        self.events.append((t, text))
        print(f"[{t:6.1f}s] {text}", flush=True)


# -- async page helpers ----------------------------------------------------------------------------
async def new_tab(browser, url: str, path: str, timing: bool = False):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(120_000)
    context.set_default_navigation_timeout(300_000)
    if timing:
        await context.add_init_script(TIMING_SCRIPT)
    page = await context.new_page()
    await page.goto(f"{url}/{path}")
    await page.wait_for_selector('[data-testid="stApp"]')
    return page


async def main_text(page) -> str:
    try:
        return await page.locator('[data-testid="stApp"]').inner_text(timeout=10_000)
    except PlaywrightError:  # re-rendering
        return ""


async def wait_text(page, regex: re.Pattern, timeout: float = 180.0) -> re.Match:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = await main_text(page)
        match = regex.search(text)
        if match:
            return match
        await asyncio.sleep(0.3)
    raise TimeoutError(f"{regex.pattern!r} not seen in {timeout:.0f} s; page said: {text[-800:]!r}")


async def wait_idle(page, timeout: float = 120.0) -> None:
    """Until Streamlit's script state is notRunning twice in a row, 0.3 s apart."""
    deadline = time.monotonic() + timeout
    calm = 0
    while time.monotonic() < deadline and calm < 2:
        state = await page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")
        calm = calm + 1 if state == "notRunning" else 0
        await asyncio.sleep(0.3)


async def canvas_box(page, first_point) -> dict:
    """The canvas's box once it stops moving and receives the mouse (see draw_latency.canvas_box)."""
    deadline = time.monotonic() + 120
    canvas = page.locator("canvas.upper-canvas")
    box = await canvas.bounding_box()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        again = await canvas.bounding_box()
        if again == box and box and await page.evaluate(
                HITS_CANVAS, [box["x"] + first_point[0], box["y"] + first_point[1]]):
            return box
        box = again
    raise TimeoutError("the canvas did not settle within 120 s")


async def stroke(page, points) -> None:
    import math

    box = await canvas_box(page, points[0])
    await page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    await page.mouse.down()
    for (x0, y0), (x, y) in pairwise(points):
        steps = max(2, min(20, int(math.dist((x0, y0), (x, y)) / 4)))
        await page.mouse.move(box["x"] + x, box["y"] + y, steps=steps)
    await page.mouse.up()


async def canvas_ready(page) -> None:
    """The hint is shown and exactly one (fresh) canvas is mounted."""
    await page.get_by_text(HINT).first.wait_for()
    await wait_idle(page)
    deadline = time.monotonic() + 60
    while await page.locator("canvas.upper-canvas").count() != 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)


async def clear(page) -> None:
    await page.get_by_role("button", name="Clear").click()
    await canvas_ready(page)


class NoAnswer(Exception):
    """A drawing that got no `Prediction:` within the timeout; says whether the canvas sent it."""


SENT_OR_SHOWN = """() => { const t = window.__lat, up = t.ups[t.ups.length - 1];
  return t.shown !== null || (up !== undefined && t.sends.some(s => s >= up)); }"""


async def timed_stroke(page, digit: str, points, report: Report, name: str, timeout: float = 90.0):
    """Draw and time one digit. A stroke the canvas never sent (it landed beside it while the page was
    still moving) is a miss of this harness, not of the app: it is counted, cleared and drawn again."""
    from draw_latency import Timing, split_timing

    for attempt in range(3):
        await page.evaluate("() => { const t = window.__lat; t.shown = null; t.armed = true; "
                            "t.ups.length = 0; t.sends.length = 0; t.recvs.length = 0; }")
        await stroke(page, points)
        try:
            await page.wait_for_function(SENT_OR_SHOWN, timeout=10_000, polling=50)
            break
        except PlaywrightTimeout:
            report.lost_strokes += 1
            report.log(f"{name}: the canvas sent nothing 10 s after drawing {digit}; drawing it again")
            await page.keyboard.press("Escape")
            await clear(page)
    try:
        await page.wait_for_function("() => window.__lat.shown !== null", timeout=timeout * 1000, polling=50)
    except PlaywrightTimeout as exc:
        lat = await page.evaluate("() => window.__lat")
        up = lat["ups"][-1] if lat["ups"] else None
        sent = [round((s - up) / 1000, 2) for s in lat["sends"]] if up else []
        raise NoAnswer(f"no 'Prediction:' {timeout:.0f} s after drawing {digit}: websocket sends at {sent} s "
                       f"after mouse-up, {len(lat['recvs'])} messages received") from exc
    lat = await page.evaluate("() => window.__lat")
    total, client, server, render = split_timing(lat)
    return Timing(digit, lat["shown"]["text"].strip(), total, client, server, render, None)


async def picker_options(page) -> list[str]:
    """The Draw page's model picker's options (opens the list, reads it, closes it)."""
    await page.locator('[data-testid="stSelectbox"]').first.click()
    options = page.get_by_role("option")
    await options.first.wait_for()
    texts = await options.all_inner_texts()
    await page.keyboard.press("Escape")
    return texts


async def go_via_sidebar(page, path: str) -> None:
    """Client-side navigation (same Streamlit session) through the sidebar link to /path."""
    link = page.locator(f'[data-testid="stSidebarNav"] a[href$="/{path}"]') if path else \
        page.locator('[data-testid="stSidebarNav"] a').first
    await link.first.click()
    await page.wait_for_function(f"() => location.pathname.endsWith('/{path}')")
    await wait_idle(page)


# -- the actors --------------------------------------------------------------------------------------
async def set_training_size(page, subset: int | None, epochs: int) -> None:
    """Set the Epochs box and the 'Training images' slider with the keyboard, as a learner would."""
    box = page.get_by_label("Epochs")
    await box.fill(str(epochs))
    await box.press("Enter")
    await wait_idle(page)
    slider = page.get_by_role("slider", name=re.compile("Training images")).first
    moves = SUBSETS.index(subset) - SUBSETS.index(5000)
    await slider.focus()
    for _ in range(abs(moves)):
        await slider.press("ArrowRight" if moves > 0 else "ArrowLeft")
    await wait_idle(page)


async def start_training(page, report: Report, name: str) -> str:
    await page.get_by_role("button", name=re.compile(r"(^|\s)Start$")).click()
    match = await wait_text(page, STATUS)
    report.log(f"trainer {name}: {match.group(1)} is {match.group(2)}")
    return match.group(1)


async def learner(index: int, browser, url: str, digits: int, browse_every: int, stagger: float,
                  report: Report) -> None:
    name = f"L{index}"
    await asyncio.sleep((index - 1) * stagger)  # a class arrives over a minute, not in one instant
    page = None
    try:
        opened = time.monotonic()
        page = await new_tab(browser, url, "draw", timing=True)
        await canvas_ready(page)
        report.page_loads.append(time.monotonic() - opened)
        report.log(f"{name}: Draw page ready {report.page_loads[-1]:.1f} s after opening it")
        plan = drawing_plan(digits + index)[index:]  # each learner starts at another digit
        for i, (digit, points) in enumerate(plan):
            try:
                timing = await timed_stroke(page, digit, points, report, name)
            except NoAnswer as exc:
                shot = f"/tmp/many_learners_{name}_{i}.png"
                await page.screenshot(path=shot)
                report.no_answer.append(f"{name}: {exc} (screenshot {shot})")
                report.log(f"{name}: NO ANSWER: {exc}")
            else:
                report.strokes.append((name, timing))
                mark = "" if timing.right else "   <-- WRONG"
                report.log(f"{name}: drew {digit}, read {timing.read!r} in {timing.total:.2f} s{mark}")
            await clear(page)
            if (i + 1) % browse_every == 0 or i + 1 == len(plan):
                options = await picker_options(page)
                if options != ["Bundled model (pretrained)"]:
                    report.leaks.append(f"{name} model picker: {options}")
                path, title = BROWSE[(index + i // browse_every) % len(BROWSE)]
                await go_via_sidebar(page, path)
                text = await main_text(page)
                if RUN_ID.search(text):
                    report.leaks.append(f"{name} on /{path}: {RUN_ID.findall(text)}")
                report.log(f"{name}: browsed {title} ({len(text)} characters, "
                           f"{'no run ids' if not RUN_ID.search(text) else 'RUN IDS SEEN'})")
                await go_via_sidebar(page, "draw")
                await canvas_ready(page)
    except Exception as exc:  # noqa: BLE001 - keep the other learners going; the report lists it
        report.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        report.log(f"{name}: ERROR {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        if page is not None:
            await page.context.close()


def health_seconds(url: str) -> float:
    """Time of one GET /_stcore/health: how quickly the server's event loop answers anything."""
    import urllib.request

    start = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=60) as response:
            response.read()
    except OSError:
        return 60.0
    return time.perf_counter() - start


async def sample_server(pid: int, url: str, report: Report, stop: asyncio.Event, probe: asyncio.Event) -> None:
    """Memory every 0.5 s; while `probe` is set, also the health endpoint's answer time every 2 s."""
    tick = 0
    while not stop.is_set():
        try:
            report.memory.append((time.monotonic() - report.t0, proc_status(pid)))
        except OSError:
            return
        if probe.is_set() and tick % 4 == 0:
            report.health.append(await asyncio.to_thread(health_seconds, url))
        tick += 1
        await asyncio.sleep(0.5)


def mem_line(label: str, status: dict) -> str:
    return (f"{label:<44} RSS {status['VmRSS'] / 1024:7.0f} MB   peak (VmHWM) {status['VmHWM'] / 1024:7.0f} MB"
            f"   OS threads {status['Threads']}")


async def run(args) -> int:
    from playwright.async_api import async_playwright

    env = {"SIMPLECNN_MAX_TRAININGS": "1", "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(args.session_ttl)}
    report = Report()
    memory_lines = []
    with AppServer(env, args.streamlit_option) as server:
        pid = server.pid
        stop, probe = asyncio.Event(), asyncio.Event()
        sampler = asyncio.create_task(sample_server(pid, server.url, report, stop, probe))
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # Open "/" first: until app.py has called st.navigation once, Streamlit serves a direct
            # /draw or /train in its old pages/-folder mode (see benchmarks/README.md).
            home = await new_tab(browser, server.url, "")
            await wait_idle(home)
            await home.context.close()
            memory_lines.append(mem_line("server started, Home opened once", proc_status(pid)))

            a = await new_tab(browser, server.url, "train")
            await wait_idle(a)
            await set_training_size(a, args.subset, args.epochs)
            a_id = await start_training(a, report, "A")
            await wait_text(a, re.compile(rf"{a_id} · running"))
            trainers = {"A": (a, a_id)}
            for name, expected in (("B", 1), ("C", 2)):
                tab = await new_tab(browser, server.url, "train")
                await wait_idle(tab)
                # Long runs, so one of them is still training when its tab is closed at the end.
                await set_training_size(tab, 5000, args.queued_epochs)
                run_id = await start_training(tab, report, name)
                position = int((await wait_text(tab, QUEUE)).group(1))
                report.log(f"trainer {name}: sees 'Waiting in the server queue: position {position}'"
                           f" (expected {expected})")
                if position != expected:
                    report.errors.append(f"trainer {name} saw queue position {position}, expected {expected}")
                trainers[name] = (tab, run_id)
            memory_lines.append(mem_line("A training, B and C queued", proc_status(pid)))

            started = time.monotonic()
            probe.set()
            await asyncio.gather(*(learner(i, browser, server.url, args.digits, args.browse_every, args.stagger,
                                           report) for i in range(1, args.learners + 1)))
            probe.clear()
            load_seconds = time.monotonic() - started
            memory_lines.append(mem_line(f"after {args.learners} learners drew and browsed", proc_status(pid)))

            # Stop the run that trains now (runs no longer end with their tab); the next one must start.
            statuses = {n: STATUS.search(await main_text(t)) for n, (t, _) in trainers.items()}
            report.log("trainers now: " + ", ".join(f"{n} {m.group(1)} {m.group(2)}" if m else f"{n} ?"
                                                    for n, m in statuses.items()))
            running = [n for n, m in statuses.items() if m and m.group(2) == "running"]
            handover = None
            if not running:
                report.errors.append("no trainer was running when the run was to be stopped "
                                     "(use a longer run: --epochs / --subset)")
            else:
                closing = running[0]
                waiting = [n for n in ("A", "B", "C") if n != closing and statuses[n]
                           and statuses[n].group(2) == "queued"]
                tab, run_id = trainers.pop(closing)
                await tab.locator('[data-testid="stMain"]').get_by_role("button", name=re.compile(r"Stop$")).click()
                closed_at = time.monotonic()
                await wait_text(tab, re.compile(rf"{run_id} · stopped"), timeout=120)
                await tab.context.close()
                report.log(f"stopped trainer {closing}'s {run_id}")
                if waiting:
                    nxt_tab, nxt_id = trainers[waiting[0]]
                    await wait_text(nxt_tab, re.compile(rf"{nxt_id} · running"), timeout=120)
                    handover = time.monotonic() - closed_at
                    report.log(f"trainer {waiting[0]}: {nxt_id} running {handover:.1f} s after the Stop")
                    if len(waiting) > 1:
                        position = int((await wait_text(trainers[waiting[1]][0], QUEUE)).group(1))
                        report.log(f"trainer {waiting[1]}: now at queue position {position}")
                    # Isolation among trainers: the running one's history lists only its own run (run ids
                    # are per learner, so every trainer's first run is run-1: count them).
                    cells = await nxt_tab.locator('[data-testid="stDataFrame"] td').all_inner_texts()
                    ids = [c for c in cells if RUN_ID.fullmatch(c)]
                    if len(ids) != 1:
                        report.leaks.append(f"trainer {waiting[0]}'s run history shows {ids}")
            memory_lines.append(mem_line("a run stopped, next run training", proc_status(pid)))

            for name, (tab, run_id) in list(trainers.items()):  # stop what is left, then close the tabs
                stop_button = tab.locator('[data-testid="stMain"]').get_by_role("button", name=re.compile(r"Stop$"))
                if await stop_button.is_enabled():
                    await stop_button.click()
                    await wait_text(tab, re.compile(rf"{run_id} · stopped"), timeout=120)
                await tab.context.close()
                report.log(f"stopped trainer {name}'s run and closed the tab")
            await asyncio.sleep(25)
            memory_lines.append(mem_line("all runs stopped, all tabs closed, 25 s later", proc_status(pid)))
            await asyncio.sleep(max(0, args.session_ttl + 10 - 25))
            # Streamlit forgets expired sessions lazily, when its session store is next used: a visit.
            visitor = await new_tab(browser, server.url, "")
            await wait_idle(visitor)
            await visitor.context.close()
            await asyncio.sleep(5)
            memory_lines.append(mem_line(f"sessions past their TTL ({args.session_ttl} s), one new visit",
                                         proc_status(pid)))
            await browser.close()
        stop.set()
        await sampler
        log = server.log()

    timings = [t for _, t in report.strokes]
    print(f"\n=== many learners: {args.learners} drawing + 3 trainers, one server, "
          f"SIMPLECNN_MAX_TRAININGS=1, streamlit options {args.streamlit_option or 'as configured'} ===")
    print(f"load phase: {load_seconds:.0f} s, {len(timings)} drawings")
    if report.page_loads:
        print(summary_line("page load", report.page_loads) + "   <- goto /draw -> canvas usable")
    if report.health:
        print(summary_line("health", report.health) + "   <- GET /_stcore/health during the load phase")
    if timings:
        print("mouse-up -> 'Prediction:' on screen under load (goal: p95 <= 1 s)")
        print(summary_line("total", [t.total for t in timings]))
        print(summary_line("client", [t.client for t in timings]))
        print(summary_line("server", [t.server for t in timings]))
        print(summary_line("render", [t.render for t in timings]))
        wrong = [(n, t.digit, t.read) for n, t in report.strokes if not t.right]
        print(f"read right: {len(timings) - len(wrong)}/{len(timings) + len(report.no_answer)}"
              + (f"  wrong: {wrong}" if wrong else "")
              + (f"  no answer: {len(report.no_answer)}" if report.no_answer else ""))
    for line in report.no_answer:
        print("  " + line)
    if report.lost_strokes:
        print(f"strokes that missed the canvas and were drawn again (harness): {report.lost_strokes}")
    print(f"isolation: {'no session saw another session run id' if not report.leaks else report.leaks}")
    print(f"Stop in the training tab -> next queued run running after: "
          f"{f'{handover:.1f} s' if handover is not None else 'n/a'}")
    print("server memory (/proc/<pid>/status):")
    for line in memory_lines:
        print("  " + line)
    peak = max(s["VmHWM"] for _, s in report.memory) / 1024 if report.memory else float("nan")
    print(f"  peak RSS over the whole run (VmHWM): {peak:.0f} MB; "
          f"threads min/max {min(s['Threads'] for _, s in report.memory)}/"
          f"{max(s['Threads'] for _, s in report.memory)}")
    if report.errors:
        print("errors:\n  " + "\n  ".join(report.errors))
    if "Traceback" in log:
        print("server log has a traceback:\n" + log[-3000:])
    return 1 if report.errors or report.leaks or report.no_answer or any(not t.right for t in timings) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=7, help="drawing/browsing sessions besides the 3 trainers")
    parser.add_argument("--digits", type=int, default=6, help="digits each learner draws")
    parser.add_argument("--stagger", type=float, default=8.0, help="seconds between learners' arrivals")
    parser.add_argument("--browse-every", type=int, default=3, help="visit another page after this many digits")
    parser.add_argument("--subset", type=int, default=10000, choices=[s for s in SUBSETS if s],
                        help="trainer A's training images")
    parser.add_argument("--epochs", type=int, default=2, help="trainer A's epochs")
    parser.add_argument("--queued-epochs", type=int, default=30,
                        help="epochs of B's and C's runs (5,000 images); only a Stop ends them")
    parser.add_argument("--session-ttl", type=int, default=30,
                        help="server.disconnectedSessionTTL: when a closed tab's session is freed (its runs stay on disk)")
    add_streamlit_option_argument(parser)
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
