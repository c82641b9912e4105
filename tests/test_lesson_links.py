"""Lesson settings in a link: every lesson's spec parses good, out-of-range and garbage values, and every
lesson page opened with a link shows those settings (bad ones at their defaults with one note), mirrors
a moved widget in its URL and never trips Streamlit's "default value and Session State" warning."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from streamlit.testing.v1 import AppTest

import dashboard.state as dashboard_state
from dashboard import lesson_params as lp
from dashboard.settings_params import Field, encode, fields_of, parse
from simplecnn.lessons import convolution as cv
from simplecnn.lessons import optim_paths as op
from simplecnn.lessons import pooling_shift as ps
from simplecnn.model import SimpleCNN

ROOT = Path(__file__).resolve().parent.parent
PAGES = {path.name[:2]: path for path in sorted((ROOT / "pages" / "learn").glob("[01][0-9]_*.py"))}


def good_value(field: Field):
    """A value the widget can show, one step away from its default."""
    if field.flag:
        return not field.default
    if field.many:
        return list(field.options[:2]) if list(field.options[:2]) != list(field.default) else list(field.options[:1])
    if field.options is not None:
        return next(o for o in reversed(field.options) if o != field.default)
    step = field.step or (1 if field.whole else (field.high - field.default) / 2 or (field.low - field.default) / 2)
    value = field.default + step if field.default + step <= field.high else field.default - step
    return int(value) if field.whole else round(value, 10)


def good_values(spec) -> dict:
    """A good value for every field (read twice for lesson 7, whose fields follow the chosen surface)."""
    first = {f.key: good_value(f) for f in fields_of(spec)}
    return {f.key: good_value(f) for f in fields_of(spec, first)}


def bad_text(field: Field) -> str:
    if field.flag:
        return "maybe"
    if field.options is not None:
        return "nope"
    return field.encode(field.high + (field.step or 1))  # just past the top of the range


def all_fields():
    return [(num, field) for num, spec in lp.LESSONS.items() for field in fields_of(spec)]


# -- the specs (no Streamlit) ---------------------------------------------------------------------------
def test_every_lesson_has_a_spec_with_unique_params_and_keys():
    assert set(lp.LESSONS) == set(PAGES) and len(PAGES) == 16
    keys = [field.key for _, field in all_fields()]
    assert len(keys) == len(set(keys))  # keys are session-state keys shared by all pages
    for num, spec in lp.LESSONS.items():
        params = [f.param for f in fields_of(spec)]
        assert len(params) == len(set(params)), num
        assert encode({f.key: f.default for f in fields_of(spec)}, spec) == {}  # defaults need no parameter


@pytest.mark.parametrize("num, field", all_fields(), ids=lambda v: v if isinstance(v, str) else v.param)
def test_each_field_reads_a_good_value_and_refuses_a_bad_one(num, field):
    spec = lp.LESSONS[num]
    good = good_value(field)
    assert field.encode(good) != field.encode(field.default)
    values, notes = parse({field.param: field.encode(good)}, spec)
    assert notes == [] and values[field.key] == good
    for text in (bad_text(field), "", "x" * 1000):
        values, notes = parse({field.param: text}, spec)
        assert values[field.key] == field.default
        assert len(notes) == 1 and notes[0].startswith(f"{field.param}=") and len(notes[0]) < 240
        assert notes[0].endswith(f"using the default, {field.encode(field.default)}")


def test_the_specs_option_lists_are_the_lessons_own():
    # Lists the pages take from the core, compared with the core (not with the spec itself).
    assert lp.KERNEL_PRESETS == tuple(cv.preset_kernels())
    assert lp.SHIFTS == tuple(ps.SHIFTS)
    model = SimpleCNN()
    assert (lp.CONV1_CHANNELS, lp.CONV2_CHANNELS, lp.FC1_INPUTS) == \
        (model.conv1.out_channels, model.conv2.out_channels, model.fc1.in_features)
    # Lesson 7's rates: a teacher's round numbers, each surface's own rate and the quiz's 0.7 are options.
    for rate in (0.3, 0.7, 0.15, 0.1, 0.001, 1e-4, 1.0, lp.ADAPTIVE_RATE):
        assert rate in lp.GD_RATES
    assert list(lp.GD_RATES) == sorted(lp.GD_RATES) and len(set(lp.GD_RATES)) == len(lp.GD_RATES)
    for surface in op.SURFACES.values():
        assert lp.nearest_rate(surface.lr) == surface.lr


def test_lesson_7_teacher_link_and_its_surface_dependent_fields():
    spec = lp.LESSONS["07"]
    values, notes = parse({"surface": "Narrow ravine", "lr": "0.3", "show": "Batch GD,Momentum"}, spec)
    assert notes == []
    assert values == {"t07_surface": "Narrow ravine", "t07_lr_Narrow ravine": 0.3, "t07_show": ["Batch GD", "Momentum"]}
    # The start point's range is the chosen surface's: x = -9.5 fits the ravine (-10..10), not the bowl (-4..4).
    ravine, bowl = op.SURFACES["Narrow ravine"], op.SURFACES["Bowl"]
    assert ravine.x_range[0] <= -9.5 <= ravine.x_range[1] and not bowl.x_range[0] <= -9.5 <= bowl.x_range[1]
    assert parse({"surface": "Narrow ravine", "x": "-9.5"}, spec) == ({"t07_surface": "Narrow ravine",
                                                                       "t07_x_Narrow ravine": -9.5}, [])
    values, notes = parse({"x": "-9.5"}, spec)
    assert values == {"t07_x_Bowl": bowl.start[0]} and "outside -4.0 to 4.0" in notes[0]
    # An unknown surface falls back to the bowl, and the other values are then read for the bowl.
    values, notes = parse({"surface": "Volcano", "lr": "0.15"}, spec)
    assert values == {"t07_surface": "Bowl", "t07_lr_Bowl": 0.15} and len(notes) == 1 and "Volcano" in notes[0]
    # A multiselect is written in the options' order, whatever order it was picked in, and round-trips.
    params = encode({"t07_show": ["Momentum", "Batch GD"], "t07_surface": "Narrow ravine",
                     "t07_lr_Narrow ravine": 0.3}, spec)
    assert params == {"surface": "Narrow ravine", "lr": "0.3", "show": "Batch GD,Momentum"}
    for text in ("Momentum,Nesterov", ",", "Batch GD,,Momentum"):
        assert parse({"show": text}, spec)[0] == {"t07_show": list(op.OPTIMIZERS)}


@pytest.mark.parametrize("num", sorted(lp.LESSONS))
def test_a_link_of_good_values_round_trips(num):
    spec = lp.LESSONS[num]
    chosen = good_values(spec)
    params = encode(chosen, spec)
    assert set(params) == {f.param for f in fields_of(spec)}
    values, notes = parse(params, spec)
    assert notes == [] and values == chosen


# -- the pages (AppTest) --------------------------------------------------------------------------------
class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture()
def policy_warnings():
    """Streamlit's widget-policy warnings ("created with a default value but also had its value set via
    the Session State API"): logged by the server, never drawn, so the test listens to the log."""
    handler = _Warnings()
    logger = logging.getLogger("streamlit.elements.lib.policies")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def test_the_warning_listener_hears_the_warning(policy_warnings, tmp_path):
    script = tmp_path / "clash.py"
    script.write_text('import streamlit as st\nst.session_state["k"] = 1\nst.slider("a", 0, 5, 2, key="k")\n')
    AppTest.from_file(str(script)).run()
    assert any("Session State" in m for m in policy_warnings)


def open_lesson(num: str, **params) -> AppTest:
    at = AppTest.from_file(str(PAGES[num]), default_timeout=300)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def widget(at: AppTest, key: str):
    """The widget with this key, or None when the page does not draw it in this state."""
    for kind in ("slider", "select_slider", "number_input", "selectbox", "radio", "multiselect", "checkbox"):
        try:
            return getattr(at, kind)(key=key)
        except KeyError:
            continue
    return None


def check_values(at: AppTest, spec, expected: dict) -> None:
    for field in fields_of(spec, expected):
        want = expected.get(field.key, field.default)
        store = "_keep_" + field.key  # dashboard.widgets.keep's store; absent for a widget never drawn nor set
        assert (at.session_state[store] if store in at.session_state else field.default) == want, field.key
        w = widget(at, field.key)
        if w is not None:
            got = w.value
            assert (math.isclose(got, want) if isinstance(want, float) else got == want), (field.key, got, want)


def settings_in_url(at: AppTest, spec) -> dict:
    names = {f.param for f in fields_of(spec)}
    return {k: at.query_params[k] for k in at.query_params if k in names}


def share_link(at: AppTest) -> str:
    (link,) = [c.value for c in at.code if c.value.startswith("?")]  # AppTest has no host: just the query
    return link


@pytest.mark.parametrize("num", sorted(PAGES))
def test_a_lesson_opens_at_its_defaults_with_the_specs_ranges(num, policy_warnings):
    at = open_lesson(num)
    spec = lp.LESSONS[num]
    check_values(at, spec, {})
    for field in fields_of(spec):
        w = widget(at, field.key)
        if w is None:
            continue
        if field.options is not None:
            assert len(w.options) == len(field.options), field.key
        elif not field.flag:
            assert (float(w.min), float(w.max)) == (field.low, field.high), field.key
            if field.step:
                assert math.isclose(float(w.step), field.step), field.key
    assert settings_in_url(at, spec) == {}
    assert not any("Session State" in m for m in policy_warnings), policy_warnings


@pytest.mark.parametrize("num", sorted(PAGES))
def test_a_link_sets_the_lessons_widgets_and_a_moved_widget_goes_into_the_url(num, policy_warnings):
    spec = lp.LESSONS[num]
    chosen = good_values(spec)
    params = encode(chosen, spec)
    at = open_lesson(num, **params)
    check_values(at, spec, chosen)
    n = len(params)
    assert any(f"{n} setting{'s' if n != 1 else ''} set from the link" in c.value for c in at.caption)
    assert not any("could not be used" in i.value for i in at.info)
    assert settings_in_url(at, spec) == params and "learner" in at.query_params
    link = share_link(at)
    assert "learner" not in link
    assert {k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()} == params

    # Move the last drawn widget back to its default: its parameter leaves the URL, the others stay.
    field = [f for f in fields_of(spec, chosen) if widget(at, f.key) is not None][-1]
    widget(at, field.key).set_value(field.default).run()
    assert not at.exception, at.exception
    assert settings_in_url(at, spec) == {k: v for k, v in params.items() if k != field.param}
    assert not any("Session State" in m for m in policy_warnings), policy_warnings


@pytest.mark.parametrize("num", sorted(PAGES))
def test_bad_values_in_a_link_are_defaults_with_one_note(num, policy_warnings):
    spec = lp.LESSONS[num]
    fields = fields_of(spec)
    params = {f.param: bad_text(f) for f in fields}
    at = open_lesson(num, **params, learner_note="kept")  # an unknown parameter is left alone
    check_values(at, spec, {})
    notes = [i.value for i in at.info if "could not be used" in i.value]
    assert len(notes) == 1
    for field in fields:
        assert f"{field.param}={params[field.param]!r}" in notes[0]
    assert settings_in_url(at, spec) == {} and at.query_params["learner_note"] == "kept"
    assert not any("Session State" in m for m in policy_warnings), policy_warnings


def test_lesson_7_teacher_link_draws_the_ravine_paths_at_lr_0_3(policy_warnings):
    at = open_lesson("07", surface="Narrow ravine", lr="0.3", show="Batch GD,Momentum")
    assert at.selectbox(key="t07_surface").value == "Narrow ravine"
    assert at.select_slider(key="t07_lr_Narrow ravine").value == 0.3
    assert at.multiselect(key="t07_show").value == ["Batch GD", "Momentum"]
    # The momentum caption states the step growth for this lr: 0.3 / (1 - 0.9), by hand.
    assert any(f"= {0.3 / (1 - 0.9):.3g}, {1 / (1 - 0.9):.3g} times" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["optimizer"]) == ["Batch GD", "Momentum"]
    assert not policy_warnings


def test_lesson_3_learned_kernel_link_without_a_model_falls_back_to_a_preset(monkeypatch, tmp_path, policy_warnings):
    monkeypatch.setattr(dashboard_state, "BUNDLED_MODEL_PATH", tmp_path / "missing.pt")
    dashboard_state._bundled_model_and_meta.clear()
    try:
        at = open_lesson("03", kernel=lp.KERNEL_LEARNED, preset="Sharpen")
        assert at.radio(key="t03_source").value == lp.KERNEL_PRESET
        assert at.selectbox(key="t03_preset").value == "Sharpen"
        assert any("Preset kernels only until there is a model" in i.value for i in at.info)
    finally:
        dashboard_state._bundled_model_and_meta.clear()
    assert not policy_warnings
