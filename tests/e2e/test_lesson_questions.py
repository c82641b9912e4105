"""Lessons 8, 15 and 16 in a real browser: a question answered, its hidden numbers shown after Check.

Lesson 8 also queues its two Adam runs (with and without bias correction) through the worker and
shows them once the bias-correction question is checked. Screenshots: lesson_08_adam_real_run,
lesson_15_question, lesson_16_question.
"""
from __future__ import annotations

import re

from .conftest import button, exception_boxes, goto, page_url_path, screenshot, set_slider, wait_for_text, wait_idle


_warm = []


def _open(new_page, file: str):
    """A fresh session on a lesson. The first session of a freshly started server lands on Home whatever
    path it asks for (see test_lesson_links.warm_up), so the module opens the app once first."""
    if not _warm:
        goto(new_page().page, "/", timeout=120)
        _warm.append(True)
    page = new_page().page
    goto(page, page_url_path(file), timeout=120)
    return page


def _answer(page, question: str, choice: str) -> None:
    """Pick `choice` in the radio group whose label starts with `question`, then press its Check button."""
    group = page.locator('[data-testid="stRadio"]').filter(has_text=question).first
    group.get_by_text(choice, exact=True).click()
    wait_idle(page)
    group.locator("xpath=following::button[contains(., 'Check by running it')][1]").click()
    wait_idle(page)


def _charts(page) -> int:
    return page.locator(".js-plotly-plot").count()


def test_adam_real_run_is_queued_and_shown_after_the_question(new_page):
    page = _open(new_page, "pages/learn/08_adam.py")
    set_slider(page, "steps (batches of 64)", "10")
    button(page, "Train both runs").click()
    wait_for_text(page, "The runs have finished", timeout=400)
    charts_before = _charts(page)
    right = f"about {0.1 / 0.001 ** 0.5:.3g}·α"
    _answer(page, "Turn the bias correction off", right)
    wait_for_text(page, "Right: without the correction")
    wait_for_text(page, re.compile(r"without it \d\.\d{3}·α"))
    assert _charts(page) == charts_before + 1  # the real runs' chart appears only now
    assert exception_boxes(page) == []
    screenshot(page, "lesson_08_adam_real_run")


def test_training_step_question_reveals_the_conv1_bias_row(new_page):
    page = _open(new_page, "pages/learn/15_training_step.py")
    wait_for_text(page, "conv1.bias is left out of the table")
    _answer(page, "conv1's bias is added", "further than conv1.weight's largest change")
    wait_for_text(page, "Not quite: with SGD")
    assert "conv1.bias is left out" not in page.locator('[data-testid="stMain"]').inner_text()
    assert exception_boxes(page) == []
    screenshot(page, "lesson_15_question")


def test_minibatch_question_hides_the_numbers_until_checked(new_page):
    page = _open(new_page, "pages/learn/16_minibatch_noise.py")
    button(page, "Measure").click()
    wait_for_text(page, "Measured. First answer the question", timeout=180)
    assert _charts(page) == 0
    _answer(page, "Go from batches of 16 images", "about 4 times smaller")
    wait_for_text(page, re.compile(r"(Right|Not quite): the mean relative error was"), timeout=180)
    assert _charts(page) == 1
    assert exception_boxes(page) == []
    screenshot(page, "lesson_16_question")
