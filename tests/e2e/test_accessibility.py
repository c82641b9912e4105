"""axe-core (the accessibility engine, shipped inside axe-playwright-python) on every page of the app.

Every dashboard page and lesson is checked once it has rendered; Draw again after a digit is drawn
and Train again while a small run trains and once it has finished. A test fails on any violation
axe rates "serious" or "critical", and its message lists each rule with the elements it found.
Headings are checked separately (axe rates a skipped level only "moderate"): each page starts at
h1 and never goes down more than one level at a time.

axe is injected into every frame (the drawing canvas and the Plotly charts' neighbours live in
iframes), so what those frames contain is checked too. Nothing is excluded: no rule is switched off.
Each page's results are written to artifacts/a11y/<page>.json (git-ignored) for the closing note.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dashboard import nav

from .conftest import (
    ROOT,
    button,
    canvas,
    goto,
    open_tab,
    page_url_path,
    prediction,
    set_slider,
    stroke,
    wait_for_run,
    wait_until,
)

axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright",
                                     reason="pip install -r requirements-dev.txt (axe-playwright-python)")

PAGES = nav.DASHBOARD_PAGES + nav.LESSON_PAGES
BLOCKING = ("serious", "critical")
REPORTS = ROOT / "artifacts" / "a11y"  # git-ignored (/artifacts/)


def run_axe(page, name: str) -> list[dict]:
    """axe's violations on the page as it is now (all impacts), saved to artifacts/a11y/<name>.json."""
    axe = axe_playwright.Axe()
    for frame in page.frames[1:]:  # axe.run in the top page asks each frame's own copy by postMessage
        try:
            frame.evaluate(axe.axe_script)
        except Exception:  # a frame that went away meanwhile (a chart re-rendering)
            pass
    results = axe.run(page, options={"resultTypes": ["violations"]})
    violations = drop_inactive_text(page, results.response["violations"])
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{name}.json").write_text(json.dumps(
        [{"id": v["id"], "impact": v["impact"], "help": v["help"],
          "targets": [n["target"] for n in v["nodes"]],
          "nodes": [{"html": n["html"][:300], "why": n.get("failureSummary", "")[:300]} for n in v["nodes"]]}
         for v in violations], indent=1))
    return violations


# WCAG 1.4.3 exempts "text or images of text that are part of an inactive user interface component".
# axe cannot tell that a disabled Streamlit widget's label belongs to it (the label is a separate,
# aria-hidden element), so it flags its greyed text; only those nodes are dropped, the rule stays on.
DISABLED_WIDGET_TEXT = """(selector) => { const el = document.querySelector(selector);
  const box = el && el.closest('[data-testid="stElementContainer"], .stElementContainer');
  return !!(box && box.querySelector('input[disabled], button[disabled], [aria-disabled="true"]')); }"""


def drop_inactive_text(page, violations: list[dict]) -> list[dict]:
    """The violations less color-contrast nodes that are labels of disabled widgets (see above)."""
    kept = []
    for v in violations:
        if v["id"] == "color-contrast":
            nodes = [n for n in v["nodes"] if len(n["target"]) != 1 or not isinstance(n["target"][0], str)
                     or not page.evaluate(DISABLED_WIDGET_TEXT, n["target"][0])]
            if not nodes:
                continue
            v = {**v, "nodes": nodes}
        kept.append(v)
    return kept


def blocking_report(violations: list[dict]) -> str:
    """One line per serious/critical rule, then the elements it flagged (axe's CSS target of each)."""
    lines = []
    for v in violations:
        if v["impact"] in BLOCKING:
            lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
            lines += [f"    {' >> '.join(map(str, node['target']))}" for node in v["nodes"][:12]]
            if len(v["nodes"]) > 12:
                lines.append(f"    ... and {len(v['nodes']) - 12} more")
    return "\n".join(lines)


def heading_levels(page) -> list[tuple[int, str]]:
    """(level, text) of every visible heading in document order, including ARIA headings."""
    return page.evaluate(
        """() => [...document.querySelectorAll('h1,h2,h3,h4,h5,h6,[role="heading"]')]
            .filter(h => h.getClientRects().length > 0 && h.innerText.trim() !== '')
            .map(h => [h.getAttribute('aria-level') ? Number(h.getAttribute('aria-level'))
                                                     : Number(h.tagName.slice(1)),
                       h.innerText.trim().slice(0, 60)])""")


def heading_problems(levels: list[tuple[int, str]]) -> list[str]:
    """What is wrong with a page's heading outline: no single h1 first, or a level skipped."""
    problems = []
    if not levels or levels[0][0] != 1:
        problems.append(f"the first heading is not an h1: {levels[:1]}")
    if sum(1 for level, _ in levels if level == 1) != 1:
        problems.append(f"not exactly one h1: {[t for lv, t in levels if lv == 1]}")
    for (before, text_before), (level, text) in zip(levels, levels[1:]):
        if level > before + 1:
            problems.append(f"h{before} {text_before!r} is followed by h{level} {text!r}")
    return problems


def check_page(page, name: str) -> None:
    violations = run_axe(page, name)
    report = blocking_report(violations)
    assert not report, f"{name}: serious/critical accessibility violations\n{report}"
    problems = heading_problems(heading_levels(page))
    assert not problems, f"{name}: headings out of order: {problems}"


def test_heading_check_catches_a_skipped_level():
    """The outline check itself: it must flag what it is there to flag."""
    assert heading_problems([(1, "a"), (2, "b"), (3, "c"), (2, "d")]) == []
    assert heading_problems([(1, "a"), (3, "c")]) == ["h1 'a' is followed by h3 'c'"]
    assert heading_problems([(2, "b")])  # no h1 first
    assert heading_problems([(1, "a"), (1, "b")])  # two h1s


def test_blocking_report_names_rule_and_element():
    violations = [{"id": "label", "impact": "critical", "help": "Form elements must have labels",
                   "nodes": [{"target": ["#x > input"]}]},
                  {"id": "region", "impact": "moderate", "help": "ignored here", "nodes": [{"target": ["div"]}]}]
    report = blocking_report(violations)
    assert "label (critical)" in report and "#x > input" in report and "region" not in report


@pytest.fixture(scope="module")
def tab(browser, app_url):
    tab = open_tab(browser, app_url)
    yield tab
    tab.page.context.close()


@pytest.mark.parametrize("file", [f for f, _, _ in PAGES], ids=[Path(f).stem for f, _, _ in PAGES])
def test_page_has_no_serious_accessibility_violation(tab, file):
    goto(tab.page, page_url_path(file), timeout=120)
    check_page(tab.page, Path(file).stem)


def test_draw_after_drawing_a_digit(new_page, bundled_path):
    tab = new_page(viewport={"width": 1400, "height": 1600})
    page = tab.page
    goto(page, page_url_path(nav.DRAW))
    canvas(page).wait_for(state="visible", timeout=60_000)
    stroke(page, [(140, 50), (140, 250)])  # a "1"
    wait_until(lambda: prediction(page), timeout=60, message="a prediction")
    wait_until(lambda: page.locator(".js-plotly-plot").count() >= 2, timeout=60, message="the charts")
    check_page(page, "draw_after_drawing")


def test_train_while_training_and_after(new_page):
    tab = new_page()
    page = tab.page
    goto(page, page_url_path(nav.TRAIN))
    set_slider(page, "Training images (train + validation)", "500")
    button(page, "Start").click()
    wait_for_run(page, "running", progress=True, timeout=120)
    check_page(page, "train_while_training")
    wait_for_run(page, "finished", timeout=600)
    wait_until(lambda: page.get_by_text(re.compile(r"Finished \d+ epochs?\.")).count(), timeout=60,
               message="the finished message")
    check_page(page, "train_finished")
