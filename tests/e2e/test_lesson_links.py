"""A teacher's lesson link in a real browser: "lesson 7, ravine surface, lr 0.3, momentum on" opens in a
fresh context with those widgets and draws the paths they make (checked against the update rules
computed here), a moved slider goes into the URL beside the learner's token, the shared link carries
no token, and a bad link falls back to the defaults with one note."""
from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np

from .conftest import exception_boxes, goto, page_url_path, screenshot, selected, set_slider, wait_idle, wait_until

LESSON7 = page_url_path("pages/learn/07_gradient_descent.py")
TEACHER = {"surface": "Narrow ravine", "lr": "0.3", "show": "Batch GD,Momentum"}
RAVINE_START = (-9.0, 1.5)  # the ravine's start point (simplecnn.lessons.optim_paths)


def warm_up(new_page) -> None:
    """Open the app once first. The first session of a freshly started server lands on Home whatever
    path it asked for (seen with any page, with or without settings); later sessions open their path."""
    goto(new_page().page, "/", timeout=120)


def query(page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(page.url).query).items()}


def contour_paths(page) -> dict[str, np.ndarray]:
    """{trace name: (n, 2) points} of the lesson's contour chart, NaN where the browser holds null."""
    traces = page.evaluate("""() => {
        const plot = [...document.querySelectorAll('.js-plotly-plot')]
            .find(p => p.data && p.data.length && p.data[0].type === 'contour');
        if (!plot) return null;
        const clean = a => Array.from(a || [], v => (v === null || Number.isNaN(v)) ? null : v);
        // _fullData holds the decoded arrays (data keeps plotly's base64 {dtype, bdata} form as sent).
        return plot._fullData.filter(t => t.name && t.mode === 'lines+markers')
                        .map(t => ({name: t.name, x: clean(t.x), y: clean(t.y)}));
    }""")
    if not traces:
        return {}
    return {t["name"]: np.array([[np.nan if a is None else a, np.nan if b is None else b]
                                 for a, b in zip(t["x"], t["y"])]) for t in traces}


def ravine_path(lr: float, momentum: float, steps: int) -> np.ndarray:
    """Gradient descent (with heavy-ball momentum, torch's form v = m v + g) on 0.05 x^2 + 5 y^2, by hand;
    rows after a coordinate passes 1e6 are NaN, as the lesson stops a path that blew up."""
    w, v = np.array(RAVINE_START), np.zeros(2)
    out = np.full((steps + 1, 2), np.nan)
    out[0] = w
    for step in range(1, steps + 1):
        g = np.array([0.1 * w[0], 10.0 * w[1]])
        v = momentum * v + g
        w = w - lr * v
        if not np.all(np.isfinite(w)) or np.abs(w).max() > 1e6:
            break
        out[step] = w
    return out


def same_path(drawn: np.ndarray, expected: np.ndarray) -> bool:
    if drawn.shape != expected.shape:
        return False
    finite = np.isfinite(expected).all(axis=1)
    return (np.array_equal(finite, np.isfinite(drawn).all(axis=1))
            and np.allclose(drawn[finite], expected[finite], rtol=1e-6, atol=1e-9))


def test_a_teachers_lesson_7_link_opens_that_lesson_for_anyone(new_page):
    warm_up(new_page)
    tab = new_page()
    page = tab.page
    goto(page, f"{LESSON7}?{urlencode(TEACHER)}", timeout=120)
    main = page.locator('[data-testid="stMain"]')
    assert "3 settings set from the link" in main.inner_text()
    assert selected(page, "Loss surface") == "Narrow ravine"
    assert page.get_by_role("slider", name="Learning rate η").get_attribute("aria-valuetext") == "0.3"
    chips = main.locator('[data-testid="stMultiSelect"]').inner_text()
    assert "Batch GD" in chips and "Momentum" in chips and "Adam" not in chips

    # The page draws the two paths these settings make: 150 steps of plain GD and of momentum 0.9.
    paths = wait_until(lambda: contour_paths(page) or None, message="the contour chart's paths")
    assert set(paths) == {"Batch GD", "Momentum"}
    assert same_path(paths["Batch GD"], ravine_path(0.3, 0.0, 150))
    assert same_path(paths["Momentum"], ravine_path(0.3, 0.9, 150))
    # lr 0.3 is too large across the ravine (each plain step multiplies y by 1 - 0.3 * 10 = -2): it blows up.
    assert not np.isfinite(paths["Batch GD"][-1]).all()

    main.get_by_text("Copy link to these settings").click()
    wait_idle(page)
    screenshot(page, "lesson_link_07")

    # The URL keeps the link's settings beside the learner's token, and follows a moved slider.
    token = wait_until(lambda: query(page).get("learner"), message="the learner token in the URL")
    assert {k: v for k, v in query(page).items() if k != "learner"} == TEACHER
    set_slider(page, "Steps", "140")  # one key press (a rerun follows each)
    wait_until(lambda: query(page) == {**TEACHER, "steps": "140", "learner": token},
               message=lambda: f"steps=140 in the URL ({page.url})")
    wait_until(lambda: len(contour_paths(page).get("Momentum", [])) == 141, message="the 140-step paths")
    assert same_path(contour_paths(page)["Momentum"], ravine_path(0.3, 0.9, 140))

    # The shared link has the settings and no token; another learner opens it in the same state.
    link = wait_until(lambda: next((t.strip() for t in main.locator('[data-testid="stCode"]').all_inner_texts()
                                    if "surface=" in t and "steps=140" in t), None), message=lambda: f"the share link (code boxes: {main.locator('[data-testid=stCode]').all_inner_texts()})")
    assert "learner" not in link and token not in link
    assert {k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()} == {**TEACHER, "steps": "140"}
    other = new_page()
    goto(other.page, link, timeout=120)
    assert selected(other.page, "Loss surface") == "Narrow ravine"
    steps = other.page.get_by_role("slider", name="Steps")  # a rerun may show a stale copy for a moment
    wait_until(lambda: steps.count() == 1 and steps.get_attribute("aria-valuetext") == "140",
               message="Steps at 140 for the other learner")
    assert wait_until(lambda: query(other.page).get("learner"), message="the other token") != token
    assert exception_boxes(page) == [] and exception_boxes(other.page) == []
    assert tab.problems() == [] and other.problems() == []


def test_a_bad_lesson_link_falls_back_with_one_note(new_page):
    warm_up(new_page)
    tab = new_page()
    page = tab.page
    goto(page, f"{LESSON7}?{urlencode({'surface': 'Volcano', 'lr': '0.31', 'steps': '9999', 'show': 'Nesterov'})}",
         timeout=120)
    main = page.locator('[data-testid="stMain"]')
    notes = [t for t in main.locator('[data-testid="stAlert"]').all_inner_texts() if "could not be used" in t]
    assert len(notes) == 1
    for shown in ("surface='Volcano'", "lr='0.31'", "steps='9999'", "show='Nesterov'"):
        assert shown in notes[0]
    assert selected(page, "Loss surface") == "Bowl"
    assert page.get_by_role("slider", name="Learning rate η").get_attribute("aria-valuetext") == "0.1"
    assert page.get_by_role("slider", name="Steps").get_attribute("aria-valuetext") == "150"
    assert len(contour_paths(page)) == 6  # every method drawn, as by default
    # The refused values leave the URL; the learner's token stays.
    wait_until(lambda: set(query(page)) == {"learner"}, message=lambda: f"only the token in the URL ({page.url})")
    assert exception_boxes(page) == [] and tab.problems() == []
