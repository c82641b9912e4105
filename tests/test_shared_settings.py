"""Settings in a link: parsing (good, out of range, garbage, missing), and the Train page opened with a
link: widgets set, bad values at their defaults with a note, the learner's token kept apart."""
from __future__ import annotations

import math
from urllib.parse import parse_qs, urlsplit

import pytest

from dashboard.settings_params import (BATCH_SIZES, LEARNING_RATES, MAX_VALUE_CHARS, SUBSETS, TRAIN_FIELDS,
                                       WEIGHT_DECAYS, encode, parse)
from tests.conftest import ROOT
from tests.helpers import new_learner, page_as

FIELDS = {f.param: f for f in TRAIN_FIELDS}
DEFAULTS = {f.key: f.default for f in TRAIN_FIELDS}
TRAIN = str(ROOT / "pages" / "train.py")


def test_good_values_are_read_as_the_widgets_hold_them():
    values, notes = parse({"lr": "0.01", "optimizer": "momentum", "batch_norm": "off", "dropout1": "0.3",
                           "dropout2": "0", "batch_size": "128", "epochs": "7", "images": "all",
                           "val_split": "0.1", "seed": "2147483647", "weight_decay": "1e-4",
                           "schedule": "cosine", "augment": "on", "exact_lr": "0.0123"}, TRAIN_FIELDS)
    assert notes == []
    assert values == {"train_lr": 0.01, "train_optimizer": "momentum", "train_batch_norm": False,
                      "train_dropout1": 0.3, "train_dropout2": 0.0, "train_batch_size": 128, "train_epochs": 7,
                      "train_subset": None, "train_val_split": 0.1, "train_seed": 2**31 - 1, "train_wd": 1e-4,
                      "train_schedule": "cosine", "train_augment": True, "train_custom_lr": 0.0123}
    assert type(values["train_epochs"]) is int and type(values["train_batch_size"]) is int
    assert values["train_lr"] in LEARNING_RATES and values["train_wd"] in WEIGHT_DECAYS
    # Same number, other spelling: still the slider's option.
    assert parse({"lr": "1E-2", "dropout1": "0.30000000000000004"}, TRAIN_FIELDS)[0] == \
        {"train_lr": 0.01, "train_dropout1": 0.3}


@pytest.mark.parametrize("param, text, reason", [
    ("lr", "0.003", "choose one of"),          # between two options of the select slider
    ("lr", "1e9", "choose one of"),
    ("dropout1", "0.95", "outside 0.0 to 0.9"),
    ("dropout1", "-0.05", "outside"),
    ("dropout2", "0.33", "not a multiple of 0.05"),
    ("val_split", "0", "outside 0.05 to 0.5"),
    ("epochs", "0", "outside"),
    ("epochs", "101", "outside"),
    ("epochs", "2.5", "not a whole number"),
    ("seed", "-1", "outside"),
    ("seed", str(2**31), "outside"),
    ("batch_size", "100", "choose one of 8, 16"),
    ("images", "59999", "choose one of"),
    ("exact_lr", "101", "outside"),
    ("exact_lr", "nan", "not a number"),
    ("exact_lr", "inf", "not a number"),
])
def test_out_of_range_values_fall_back_to_the_default_with_a_note(param, text, reason):
    values, notes = parse({param: text}, TRAIN_FIELDS)
    field = FIELDS[param]
    assert values == {field.key: field.default}
    assert len(notes) == 1 and notes[0].startswith(f"{param}={text!r}: ") and reason in notes[0]
    assert notes[0].endswith(f"using the default, {field.encode(field.default)}")


@pytest.mark.parametrize("param, text", [
    ("lr", "fast"), ("optimizer", "adamw"), ("optimizer", "ADAM"), ("batch_norm", "maybe"), ("epochs", "two"),
    ("schedule", "<script>alert(1)</script>"), ("dropout1", ""), ("images", "None"), ("seed", "0x10"),
    ("epochs", "9" * 1000),
])
def test_garbage_falls_back_to_the_default_and_never_raises(param, text):
    values, notes = parse({param: text}, TRAIN_FIELDS)
    assert values == {FIELDS[param].key: FIELDS[param].default} and len(notes) == 1
    assert len(notes[0]) < 200  # a 1,000-character value is cut in the note


def test_missing_and_unknown_parameters_set_nothing():
    assert parse({}, TRAIN_FIELDS) == ({}, [])
    token = new_learner()
    assert parse({"learner": token, "teacher": "x", "foo": "1"}, TRAIN_FIELDS) == ({}, [])
    # A repeated parameter arrives as a list from a plain mapping: the last one counts, as in st.query_params.
    assert parse({"epochs": ["3", "4"]}, TRAIN_FIELDS) == ({"train_epochs": 4}, [])


def test_encode_writes_only_changes_and_round_trips():
    assert encode(DEFAULTS, TRAIN_FIELDS) == {}
    changed = {**DEFAULTS, "train_lr": 0.3 if 0.3 in LEARNING_RATES else 0.2, "train_subset": None,
               "train_batch_norm": False, "train_dropout1": 0.1, "train_custom_lr": 1 / 3, "train_epochs": 12}
    params = encode(changed, TRAIN_FIELDS)
    assert set(params) == {"lr", "images", "batch_norm", "dropout1", "exact_lr", "epochs"}
    assert params["images"] == "all" and params["batch_norm"] == "off"
    values, notes = parse(params, TRAIN_FIELDS)
    assert notes == [] and {**DEFAULTS, **values} == changed  # exact, 1/3 included
    assert all(len(v) <= MAX_VALUE_CHARS for v in params.values())
    # Every option of every select slider survives the trip.
    for param, options in (("lr", LEARNING_RATES), ("batch_size", BATCH_SIZES), ("images", SUBSETS),
                           ("weight_decay", WEIGHT_DECAYS)):
        field = FIELDS[param]
        for option in options:
            assert parse({param: field.encode(option)}, TRAIN_FIELDS)[0][field.key] == option


# -- the Train page (AppTest) ------------------------------------------------------------------------
def train_page(**params):
    at = page_as(TRAIN, new_learner(), timeout=120)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def widget_values(at) -> dict:
    return {f.key: at.session_state[f.key] for f in TRAIN_FIELDS}


def share_link(at) -> str:
    (code,) = [c.value for c in at.code if "torch" not in c.value]
    return code


def test_the_fields_are_the_train_pages_widgets_with_its_defaults():
    at = train_page()
    assert widget_values(at) == DEFAULTS
    assert at.select_slider(key="train_lr").options == [f"{v:g}" for v in LEARNING_RATES]
    assert at.select_slider(key="train_batch_size").options == [str(v) for v in BATCH_SIZES]
    assert at.select_slider(key="train_subset").options == ["all 60,000" if v is None else f"{v:,}" for v in SUBSETS]
    assert at.select_slider(key="train_wd").options == [f"{v:g}" for v in WEIGHT_DECAYS]
    assert at.selectbox(key="train_optimizer").options == [f for f in
                                                             ("Adam", "SGD", "SGD + momentum 0.9", "RMSProp", "Adagrad")]
    slider = at.slider(key="train_dropout1")
    assert (slider.min, slider.max, slider.step) == (0.0, 0.9, 0.05)
    # A default page needs no settings in its link; the learner's token stays in the page's own URL.
    assert set(at.query_params) == {"learner"}
    assert "?" not in share_link(at)


def test_a_link_sets_the_widgets_and_the_config():
    at = train_page(lr="0.01", optimizer="sgd", batch_norm="off", dropout1="0.1", epochs="5", images="1000",
                    schedule="onecycle")
    values = widget_values(at)
    assert values == {**DEFAULTS, "train_lr": 0.01, "train_optimizer": "sgd", "train_batch_norm": False,
                      "train_dropout1": 0.1, "train_epochs": 5, "train_subset": 1000, "train_schedule": "onecycle"}
    assert any("7 settings set from the link" in c.value for c in at.caption)
    assert not at.info or not any("could not be used" in i.value for i in at.info)
    # The page's own code view shows the config those widgets make.
    code = next(c.value for c in at.code if "import torch" in c.value)
    assert "torch.optim.SGD(model.parameters(), lr=0.01," in code and "OneCycleLR" in code
    assert "EPOCHS = 5" in code and "SUBSET = 1000" in code


def test_bad_values_in_a_link_are_defaults_with_a_note_not_an_error():
    at = train_page(lr="huge", epochs="500", dropout2="0.33", batch_size="64", seed="7")
    values = widget_values(at)
    assert values == {**DEFAULTS, "train_seed": 7}
    (note,) = [i.value for i in at.info if "could not be used" in i.value]
    for part in ("lr='huge'", "epochs='500'", "dropout2='0.33'"):
        assert part in note
    assert "seed" not in note and "batch_size" not in note
    assert not at.error and not at.exception


def test_the_url_mirrors_changes_and_the_share_link_has_no_learner_token():
    at = train_page(epochs="3")
    token = at.session_state["_learner_token"]
    at.select_slider(key="train_lr").set_value(0.01)
    at.toggle(key="train_augment").set_value(True)
    at.run()
    assert not at.exception, at.exception
    assert widget_values(at)["train_epochs"] == 3  # the link's value is not applied again over the learner's
    assert at.query_params["learner"] == token
    assert {k: at.query_params[k] for k in at.query_params if k != "learner"} == \
        {"lr": "0.01", "epochs": "3", "augment": "on"}
    link = share_link(at)
    query = parse_qs(urlsplit(link).query)
    assert query == {"lr": ["0.01"], "epochs": ["3"], "augment": ["on"]}
    assert token not in link and "learner" not in link
    # Back to the defaults: the parameter leaves the URL and the link.
    at.number_input(key="train_epochs").set_value(2)
    at.run()
    assert "epochs" not in at.query_params and "epochs" not in share_link(at)
    assert at.query_params["learner"] == token


def test_the_share_link_opens_the_same_settings_for_another_learner():
    first = train_page(lr="0.2", batch_size="256", augment="on")
    link = share_link(first)
    params = {k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()}
    second = train_page(**params)
    assert widget_values(second) == widget_values(first)
    assert second.session_state["_learner_token"] != first.session_state["_learner_token"]
    assert not math.isnan(widget_values(second)["train_lr"])


def test_a_url_that_lags_behind_the_widgets_does_not_throw_them_back():
    """The browser sends each rerun with the URL it shows, which can still hold the previous value while
    a slider is moved key by key; only the link a page opened with is applied."""
    at = train_page(epochs="3")
    at.select_slider(key="train_subset").set_value(500).run()
    at.query_params["images"] = "1000"  # the URL of one run before, arriving with the next rerun
    at.run()
    assert not at.exception, at.exception
    assert widget_values(at)["train_subset"] == 500 and widget_values(at)["train_epochs"] == 3
    assert at.query_params["images"] == "500"  # and the URL follows the widget again

