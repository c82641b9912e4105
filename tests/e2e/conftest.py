"""Shared fixtures for the real-browser suite: the whole app on a free port, Debian's chromium, helpers.

The server is `streamlit run app.py`, one per test module (a module may set `SERVER_ENV = {...}` to
pass extra environment variables), stopped by its PID. Every test gets its own browser context, so
its own Streamlit session. Without chromium or playwright the tests are skipped with the reason,
except on CI (CI=true), where a missing browser is a failure: the suite must really run there.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"  # git-ignored (/artifacts/)
VIEWPORT = {"width": 1400, "height": 1000}


def pytest_collection_modifyitems(items):
    """Everything in tests/e2e drives a real browser."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def unavailable(reason: str) -> None:
    """Skip, or fail on CI, where the browser suite must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser suite must run on CI, it may not be skipped)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it: bind to port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Opened directly at a page's URL (/train), Streamlit's frontend does not know whether "/train" is
# the server's base path, so it first asks /train/_stcore/health and /train/_stcore/host-config
# (404), then the root ones (200) and goes on. That pair of 404s (and the console lines the browser
# logs for them) is Streamlit's, not the app's: streamlit/streamlit#7074, open and confirmed.
# Only those two endpoints under a non-root path are ignored.
STREAMLIT_BASE_PATH_PROBE = re.compile(r"(^404 |status of 404 .* @ )https?://[^/]+/[^/_][^/]*/_stcore/(health|host-config)$")


# -- the app server --------------------------------------------------------------------------------
class AppServer:
    """`streamlit run app.py` on 127.0.0.1:<free port>, its output in a log file."""

    def __init__(self, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # Each server keeps its runs beside its log, never in the repository's runs/.
        self.env = {**os.environ, "SIMPLECNN_RUNS_DIR": str(log_path.parent / "runs"), **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> "AppServer":
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                 "--server.port", str(self.port), "--server.address", "127.0.0.1",
                 "--browser.gatherUsageStats", "false"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {self.process.returncode} before serving:\n"
                                   + self.log())
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"streamlit did not answer on {self.url} within {timeout:.0f} s:\n" + self.log())

    def stop(self) -> None:
        """terminate, then kill if it lingers: only this server's own PID."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def kill(self) -> None:
        """SIGKILL, as the out-of-memory killer would: no cleanup of any kind. Only this server's PID."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)

    def log(self, tail: int = 20_000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


@contextlib.contextmanager
def running_app(tmp_dir: Path, env: dict[str, str] | None = None):
    """An AppServer for the duration of a `with` block (for tests that need special settings)."""
    server = AppServer(tmp_dir / "server.log", env)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def app_server(playwright_api, request, tmp_path_factory):
    """One server per test module; the module's SERVER_ENV (if any) is added to its environment."""
    env = getattr(request.module, "SERVER_ENV", {})
    server = AppServer(tmp_path_factory.mktemp("streamlit") / "server.log", env)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def app_url(app_server) -> str:
    return app_server.url


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(autouse=True)
def _server_log_on_failure(request):
    """When a test fails, print the tail of its module's server log (pytest shows it with the failure)."""
    yield
    failed = any(getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
                 for when in ("setup", "call"))
    if failed and "app_server" in request.fixturenames:
        server = request.getfixturevalue("app_server")
        print(f"\n===== streamlit server log ({server.log_path}) =====\n{server.log(8000)}")


# -- the browser -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def playwright_api():
    """A started sync Playwright, or a skip (a failure on CI) when chromium or playwright is missing."""
    if not CHROMIUM.is_file():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install playwright)")
    api = sync_playwright().start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="session")
def browser(playwright_api):
    """Debian's chromium, headless, with every background network feature off."""
    browser = playwright_api.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@dataclass
class Tab:
    """A page in its own browser context (one Streamlit session) and what went wrong in it."""

    page: object  # playwright.sync_api.Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)  # "404 http://..." for any 4xx/5xx

    def problems(self) -> list[str]:
        """Every error seen, less Streamlit's own base-path probe (see STREAMLIT_BASE_PATH_PROBE)."""
        return [p for p in self.console_errors + self.page_errors + self.failed_responses
                if not STREAMLIT_BASE_PATH_PROBE.search(p)]


def open_tab(browser, base_url: str, viewport: dict | None = None, **context_args) -> Tab:
    """A new context (base_url set, so goto(page, "/train") works) with its errors recorded."""
    context = browser.new_context(base_url=base_url, viewport=viewport or VIEWPORT, **context_args)
    context.set_default_timeout(60_000)
    page = context.new_page()
    tab = Tab(page)
    page.on("console", lambda msg: msg.type == "error" and tab.console_errors.append(
        f"console.error: {msg.text} @ {msg.location.get('url', '')}"))
    page.on("pageerror", lambda exc: tab.page_errors.append(f"page error: {exc}"))
    page.on("response", lambda r: r.status >= 400 and tab.failed_responses.append(f"{r.status} {r.url}"))
    return tab


@pytest.fixture
def new_page(browser, app_url):
    """Factory: `tab = new_page()` opens a fresh session; every context is closed after the test."""
    contexts = []

    def make(**context_args) -> Tab:
        tab = open_tab(browser, app_url, **context_args)
        contexts.append(tab.page.context)
        return tab

    yield make
    for context in contexts:
        context.close()


# -- helpers -----------------------------------------------------------------------------------------
def page_url_path(file: str) -> str:
    """The URL path Streamlit gives a page file under st.navigation: "pages/learn/01_tensors.py" -> "/tensors".

    Streamlit infers it from the file name with the same rule as for the old pages/ folder (leading
    number and separators dropped); the default page (Home) is the root.
    """
    from streamlit.source_util import page_icon_and_name

    from dashboard import nav

    if file == nav.HOME:
        return "/"
    return "/" + page_icon_and_name(Path(file))[1]


def goto(page, path: str, timeout: float = 90.0) -> None:
    """Open an app path (relative to the server) and wait until its script has run and rendered."""
    page.goto(path)
    page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
    wait_idle(page, timeout=timeout)


def script_state(page) -> str | None:
    """Streamlit's own flag on the app root: "initial", "running", "notRunning", "rerunRequested", ..."""
    return page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")


def is_idle(page) -> bool:
    return (script_state(page) == "notRunning"
            and page.locator('[data-testid="stStatusWidgetRunningIcon"]').count() == 0
            and page.locator('[data-testid="stSkeleton"]').count() == 0)


def wait_idle(page, timeout: float = 90.0, settle: float = 0.5) -> None:
    """Wait until the script is not running and nothing is still loading, and stays so for `settle` s.

    Streamlit marks the app root with data-test-script-state; its running-man icon only appears
    after half a second of running, so the attribute is the reliable signal. Pages that refresh
    themselves (a fragment with run_every while a run trains) are never idle for long: for those,
    wait on the text you expect instead.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_idle(page):
            time.sleep(settle)
            if is_idle(page):
                return
        time.sleep(0.2)
    raise TimeoutError(f"the app was still running after {timeout:.0f} s (script state {script_state(page)!r})")


def wait_for_text(page, pattern, timeout: float = 60.0, selector: str = '[data-testid="stApp"]') -> str:
    """Poll the rendered text until it matches `pattern` (str or compiled regex); returns the match."""
    import re

    regex = pattern if hasattr(pattern, "search") else re.compile(re.escape(pattern))
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = page.locator(selector).first.inner_text(timeout=5_000)
        except Exception:  # the element is being re-rendered
            text = ""
        match = regex.search(text)
        if match:
            return match.group(0)
        time.sleep(0.25)
    raise AssertionError(f"{regex.pattern!r} did not appear within {timeout:.0f} s; the page said:\n{text[-3000:]}")


def screenshot(page, name: str) -> Path:
    """A full-page PNG in artifacts/screenshots/<name>.png.

    Streamlit scrolls its main area inside a div, not the document, so Playwright's full_page sees
    only the viewport: the viewport is made as tall as the content for the shot, then restored.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = page.viewport_size or VIEWPORT
    height = page.evaluate(
        """() => Math.max(...['[data-testid="stMain"]', '[data-testid="stAppViewContainer"]',
                              '[data-testid="stSidebarContent"]']
            .map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight),
            document.documentElement.scrollHeight)""")
    page.set_viewport_size({"width": size["width"], "height": int(min(max(height, size["height"]), 12_000))})
    try:
        time.sleep(0.8)  # charts re-lay out to the new size
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return path


def exception_boxes(page) -> list[str]:
    """The text of every Streamlit exception box on the page (a raw traceback shown to the learner)."""
    return page.locator('[data-testid="stException"]').all_inner_texts()


def sidebar(page):
    return page.locator('[data-testid="stSidebar"]')


def button(page, name: str, scope=None):
    """The button in the main area (or `scope`) named `name`; a material icon's ligature may precede it."""
    root = scope if scope is not None else page.locator('[data-testid="stMain"]')
    return root.get_by_role("button", name=re.compile(rf"(^|\s){re.escape(name)}$"))


# -- widgets -----------------------------------------------------------------------------------------
def set_slider(page, label: str, value_text: str, max_presses: int = 40) -> None:
    """Move a (select) slider with the keyboard until it shows `value_text` (its aria-valuetext)."""
    slider = page.get_by_role("slider", name=label)
    for _ in range(3):  # a rerun answering an older key press may still move it: check once idle
        slider.focus()
        for _ in range(max_presses):
            now = slider.get_attribute("aria-valuetext")
            if now == value_text:
                break
            options_before = now
            slider.press("ArrowLeft" if _slider_is_above(slider, value_text) else "ArrowRight")
            if slider.get_attribute("aria-valuetext") == options_before:  # at an end, or a rerun redrew it
                wait_idle(page)
                if slider.get_attribute("aria-valuetext") == options_before:
                    break
        wait_idle(page)
        if slider.get_attribute("aria-valuetext") == value_text:
            return
    assert slider.get_attribute("aria-valuetext") == value_text, \
        f"{label}: wanted {value_text}, the slider shows {slider.get_attribute('aria-valuetext')}"


def _slider_is_above(slider, value_text: str) -> bool:
    """Compare the slider's current text with the target as numbers ("5,000" > "1,000", "all" is top)."""
    def number(text: str) -> float:
        try:
            return float(text.replace(",", ""))
        except ValueError:
            return float("inf")
    return number(slider.get_attribute("aria-valuetext")) > number(value_text)


def set_number(page, label: str, value) -> None:
    """Type a value into a number input and commit it (Enter), as a learner would."""
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


MENU = ".st-key-app_menu"  # the app's own page menu in the sidebar (dashboard.nav.sidebar_menu)


def nav_link(page, title: str):
    """The sidebar menu link of a page (client-side navigation: the session and its runs stay)."""
    name = re.compile(rf"(^|\s){re.escape(title)}$")  # a material icon's ligature may precede the title
    return page.locator(MENU).get_by_role("link", name=name)


def table_rows(page, scope='[data-testid="stDataFrame"]') -> list[dict[str, str]]:
    """The rows of the first st.dataframe in `scope`, read from the grid's accessible cells."""
    frame = page.locator(scope).first
    headers = frame.locator('[role="columnheader"]').all_inner_texts()
    cells = frame.locator('[role="gridcell"]').all_inner_texts()
    if not headers:
        return []
    return [dict(zip(headers, cells[i:i + len(headers)])) for i in range(0, len(cells), len(headers))]


def wait_until(condition, timeout: float = 60.0, interval: float = 0.25, message="condition"):
    """Poll `condition()` until it returns something truthy; return that value.

    `message` (text, or a function giving it at the time of failure) says what was awaited.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # an element mid re-render
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message() if callable(message) else message}")


RUN_LINE = re.compile(r"(run-\d+) · (\w+) · ([^\n]*)")
PROGRESS = re.compile(r"Epoch (\d+)/(\d+) · batch (\d+)/(\d+)")


def run_line(page) -> tuple[str, str, str] | None:
    """(run id, status, progress text) from the Train page's progress bar, or None before a run."""
    match = RUN_LINE.search(page.locator('[data-testid="stMain"]').inner_text())
    return match.groups() if match else None


def wait_for_run(page, *statuses: str, progress: bool = False, timeout: float = 120.0):
    """The Train page's run line once its status is one of `statuses` (any if none given) and, with
    progress=True, once it reports an epoch and batch."""
    seen = []

    def ready():
        line = run_line(page)
        seen[:] = [line]
        if line is None or (statuses and line[1] not in statuses):
            return None
        return line if not progress or PROGRESS.search(line[2]) else None
    wanted = "/".join(statuses) or "any status"
    return wait_until(ready, timeout=timeout, message=lambda: f"the run to be {wanted}"
                      f"{' with progress' if progress else ''} (last seen: {seen[0] if seen else None})")


def chart_points(page, selector: str = ".js-plotly-plot") -> list[int]:
    """How many points each trace of the first plotly chart holds right now."""
    return page.evaluate(
        """(selector) => { const plot = document.querySelector(selector);
            return plot && plot.data ? plot.data.map(t => (t.x || []).length) : []; }""", selector)


def choose(page, label: str, option, scope=None) -> None:
    """Pick an option of a st.selectbox by its label; `option` is text or a regex of the option."""
    root = scope if scope is not None else page.locator('[data-testid="stMain"]')
    box = root.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.locator('[role="combobox"], input').first.click()
    page.get_by_role("option", name=option).first.click()
    wait_idle(page)


def selected(page, label: str) -> str:
    """The option a st.selectbox shows (it lives in the value of its combobox input)."""
    return page.get_by_role("combobox", name=label).first.input_value()


# -- the drawing canvas ----------------------------------------------------------------------------
def canvas(page):
    """The canvas a learner draws on: Fabric.js draws on the upper of its canvases."""
    return page.locator("canvas.upper-canvas")


def stroke(page, points: list[tuple[float, float]], steps: int = 20) -> None:
    """One pen stroke through `points` (canvas pixels), `steps` mouse moves per segment like a hand."""
    target = canvas(page)
    target.wait_for(state="visible", timeout=60_000)
    box = target.bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=steps)
    page.mouse.up()
    time.sleep(0.5)  # the component sends the drawing ~0.2 s after mouse-up: one rerun per stroke


PREDICTION = re.compile(r"Prediction: (\S+)")
CONFIDENCE = re.compile(r"Confidence: (\d+\.\d)%")


def prediction(page) -> str | None:
    """The text of the Draw page's "Prediction: D" heading, or None when there is none."""
    headings = page.locator("h2", has_text="Prediction:").all_inner_texts()
    return headings[0].strip() if headings else None
