"""Train -> Draw -> Results with the keyboard only: Tab, Shift+Tab, Enter, Space and the arrow keys.

No mouse click anywhere. Every focus stop on the way must show a visible focus indicator: its
outline, box-shadow, border or background (of the element or of the wrapper around it) must look
different while it has focus than once focus has moved on. Drawing itself needs a pointer and is
not part of this test (the canvas takes no keyboard focus); on Draw the keyboard must reach the
controls around it.

While the run trains, the page's polite live region (role="status", aria-live="polite") is watched
with a MutationObserver: it must be one element that stays in place (a replaced region is not read
out), change at most every few seconds, and say when the run has finished.
"""
from __future__ import annotations

import re
import time

from dashboard import nav

from .conftest import goto, nav_link, page_url_path, selected, wait_for_run, wait_for_text, wait_idle, wait_until

SUBSET = "2,000"
EPOCHS = 3
MIN_ANNOUNCE_GAP_S = 3.0  # the status may not speak more often than this while a run trains
SETTLE_S = 0.3  # BaseWeb animates focus styles (~200 ms): look once they are done

# Per focus stop: what has focus, and whether the element that had focus before looks different now
# that it has lost it (its look while focused is remembered in window.__focusLook).
FOCUS_PROBE = """() => {
  const look = el => { const out = []; let e = el;
    for (let i = 0; i < 4 && e && e.nodeType === 1; i++, e = e.parentElement) {
      const s = getComputedStyle(e);
      out.push([s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow, s.borderColor,
                s.backgroundColor].join('|'));
    }
    return out.join('//'); };
  const describe = el => {
    const label = el.getAttribute('aria-label') || el.getAttribute('title')
      || (el.labels && el.labels[0] && el.labels[0].innerText) || el.innerText || el.value || '';
    const box = el.closest('[data-testid]');
    return `${el.tagName.toLowerCase()}${el.getAttribute('role') ? '[role=' + el.getAttribute('role') + ']' : ''}`
      + ` "${label.trim().replace(/\\s+/g, ' ').slice(0, 50)}" in ${box ? box.dataset.testid : '?'}`; };
  const el = document.activeElement;
  const memo = window.__focusLook;
  let previous = null;
  const inGrid = e => !!(e && e.closest && e.closest('[data-testid="stDataFrame"] table, [data-testid="stDataFrame"] [role="grid"]'));
  if (memo && memo.el !== el && memo.el.isConnected && memo.el.tagName !== 'IFRAME' && !inGrid(memo.el)) {
    previous = {desc: memo.desc, changed: look(memo.el) !== memo.look};
  }
  window.__focusLook = el && el !== document.body ? {el, desc: describe(el), look: look(el)} : null;
  return {desc: el ? describe(el) : 'none', body: el === document.body, iframe: el && el.tagName === 'IFRAME',
          grid: inGrid(el), previous};
}"""


class Keyboard:
    """Moves focus with Tab/Shift+Tab, remembering every stop and whether it showed it had focus."""

    def __init__(self, page):
        self.page = page
        self.no_indicator: list[str] = []
        self.stops: list[str] = []

    def press(self, key: str) -> dict:
        self.page.keyboard.press(key)
        time.sleep(SETTLE_S)
        probe = self.page.evaluate(FOCUS_PROBE)
        self.stops.append(probe["desc"])
        if probe["previous"] is not None and not probe["previous"]["changed"]:
            self.no_indicator.append(probe["previous"]["desc"])
        return probe

    def to(self, target, backwards: bool = False, max_presses: int = 120) -> None:
        """Tab (or Shift+Tab) until `target` (a locator) has focus."""
        key = "Shift+Tab" if backwards else "Tab"
        for _ in range(max_presses):
            self.press(key)
            if target.evaluate("el => el === document.activeElement"):
                return
        raise AssertionError(f"{key} x{max_presses} never reached {target}; stops: {self.stops[-15:]}")

    def changed_value(self) -> None:
        """After a key changed the focused control's value: remember how it looks now, still focused."""
        time.sleep(SETTLE_S)
        self.page.evaluate(FOCUS_PROBE)

    def sweep(self, presses: int = 60) -> list[str]:
        """Tab through the page from where focus is; the stops reached (checked for an indicator).

        A st.dataframe is drawn on a canvas: its focused cell is marked there, not by CSS. For it, the
        grid's picture with a cell focused must differ from its picture before focus entered it."""
        seen = []
        grid = self.page.locator('[data-testid="stDataFrame"]')
        before = grid.first.screenshot() if grid.count() else None
        grid_checked = before is None
        for _ in range(presses):
            probe = self.press("Tab")
            seen.append(probe["desc"])
            if probe["grid"] and not grid_checked:
                grid_checked = True
                if grid.first.screenshot() == before:
                    self.no_indicator.append(f"{probe['desc']} (the grid looks the same with a cell focused)")
            if probe["body"]:
                break
        self.press("Shift+Tab")  # so the last stop is compared with its unfocused look too
        return seen

    def assert_indicators(self, where: str) -> None:
        missing = sorted(set(self.no_indicator))
        assert not missing, f"{where}: no visible focus indicator on {missing}"


def announcements(page) -> list[dict]:
    """What the polite region said, in order: {"t": seconds, "text": ...} (its empty start left out)."""
    said = page.evaluate("() => (window.__announced || []).map(a => ({t: a.t, text: a.text}))")
    return [a for a in said if a["text"]]


WATCH_POLITE = """() => {
  window.__announced = [];
  const record = () => {
    const regions = [...document.querySelectorAll('[role="status"][aria-live="polite"].simplecnn-status')];
    for (const region of regions) {
      const text = region.innerText.trim();
      const last = window.__announced[window.__announced.length - 1];
      if (!last || last.text !== text || last.node !== region) {
        window.__announced.push({t: performance.now() / 1000, text, node: region});
      }
    }
  };
  record();
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_train_draw_results_with_the_keyboard_only(new_page, bundled_path):
    tab = new_page()
    page = tab.page
    keys = Keyboard(page)
    goto(page, page_url_path(nav.TRAIN))
    main = page.locator('[data-testid="stMain"]')

    # -- Train: a small run, set and started from the keyboard -----------------------------------------
    subset = page.get_by_role("slider", name="Training images (train + validation)")
    keys.to(subset)
    for _ in range(10):
        if subset.get_attribute("aria-valuetext") == SUBSET:
            break
        page.keyboard.press("ArrowLeft")
        time.sleep(0.2)
    assert subset.get_attribute("aria-valuetext") == SUBSET
    wait_idle(page)
    keys.changed_value()
    epochs = page.get_by_label("Epochs", exact=True)
    keys.to(epochs)
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(str(EPOCHS))
    page.keyboard.press("Enter")
    wait_idle(page)
    keys.changed_value()
    assert epochs.input_value() == str(EPOCHS)
    start = main.get_by_role("button", name=re.compile(r"(^|\s)Start$"))
    keys.to(start)
    keys.assert_indicators("Train, before the run")
    page.evaluate(WATCH_POLITE)
    page.keyboard.press("Enter")
    run_id = wait_for_run(page, timeout=120)[0]
    wait_for_run(page, "finished", timeout=900)
    wait_for_text(page, f"Finished {EPOCHS} epochs.")
    time.sleep(1.0)
    said = announcements(page)
    texts = [a["text"] for a in said]
    assert said, "the polite status region never said anything"
    assert page.evaluate("() => new Set(window.__announced.map(a => a.node)).size") == 1, \
        f"the polite region was replaced while it spoke, so it would not be read out: {texts}"
    assert re.search(rf"{run_id}.*finished", texts[-1], re.I), texts
    during = [a for a in said if "finished" not in a["text"].lower()]
    gaps = [b["t"] - a["t"] for a, b in zip(during, during[1:])]
    assert all(gap >= MIN_ANNOUNCE_GAP_S for gap in gaps), f"announced too often: {list(zip(texts, gaps))}"
    assert any(re.search(r"epoch \d+ of \d+", t, re.I) for t in texts), texts
    wait_idle(page)
    keys.sweep()
    keys.assert_indicators("Train, after the run")

    # -- Draw: reached from the sidebar menu with Shift+Tab and Enter ---------------------------------
    keys.to(nav_link(page, "Draw"), backwards=True)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/draw(\?|$)"), timeout=30_000)
    wait_for_text(page, "Draw a digit", selector='[data-testid="stMain"]')
    wait_idle(page)
    stroke_width = page.get_by_role("slider", name="Stroke width")
    keys.to(stroke_width)
    before = int(stroke_width.get_attribute("aria-valuetext"))
    page.keyboard.press("ArrowRight")
    wait_until(lambda: int(stroke_width.get_attribute("aria-valuetext")) == before + 1, timeout=10,
               message="the stroke width to grow by one")
    wait_idle(page)
    keys.changed_value()
    keys.to(main.get_by_role("button", name=re.compile(r"(^|\s)Clear$")))
    model = main.get_by_role("combobox", name="Model")
    keys.to(model)
    assert run_id in selected(page, "Model"), selected(page, "Model")  # the new run is the chosen model
    page.keyboard.press("ArrowDown")  # opens the list of models
    options = page.get_by_role("option")
    wait_until(lambda: options.count() >= 2, timeout=10, message="the model list to open")
    page.keyboard.press("Escape")
    wait_until(lambda: options.count() == 0, timeout=10, message="the model list to close")
    keys.changed_value()
    assert run_id in selected(page, "Model")
    keys.sweep()
    keys.assert_indicators("Draw")

    # -- Results: the run's test-set results, reached the same way ------------------------------------
    keys.to(nav_link(page, "Results"), backwards=True)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/results(\?|$)"), timeout=30_000)
    wait_for_text(page, re.compile(r"Test accuracy\s+\d+\.\d\d%"), timeout=120, selector='[data-testid="stMain"]')
    wait_idle(page)
    assert run_id in selected(page, "Model")
    true_class = main.get_by_role("combobox", name="True class")
    keys.to(true_class)
    page.keyboard.press("ArrowDown")
    wait_until(lambda: page.get_by_role("option").count() >= 2, timeout=10, message="the class list")
    page.keyboard.press("ArrowDown")  # "any" -> the first class
    page.keyboard.press("Enter")
    wait_idle(page)
    keys.changed_value()
    assert selected(page, "True class") != "any"
    keys.sweep()
    keys.assert_indicators("Results")
    assert tab.problems() == [], tab.problems()
