"""Lessons 1-7 run under AppTest: what the pages show is checked against torch, closed forms and the
bundled trained model, and each predict-then-check question marks a right choice right and a wrong one wrong."""
import ast
import base64
import re
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

import dashboard.state as dashboard_state
from simplecnn.checkpoints import load_checkpoint
from simplecnn.evaluation import predict_logits

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def bundled_model(monkeypatch, bundled_path):
    """The real trained model behind the pages (not the untrained one the other page tests use)."""
    monkeypatch.setattr(dashboard_state, "BUNDLED_MODEL_PATH", bundled_path)
    dashboard_state._bundled_model_and_meta.clear()
    yield load_checkpoint(bundled_path)[0].eval()
    dashboard_state._bundled_model_and_meta.clear()


@pytest.fixture()
def no_model(monkeypatch, tmp_path):
    monkeypatch.setattr(dashboard_state, "BUNDLED_MODEL_PATH", tmp_path / "missing.pt")
    dashboard_state._bundled_model_and_meta.clear()
    yield
    dashboard_state._bundled_model_and_meta.clear()


def _run(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "learn" / page), default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "latex", "caption") for e in getattr(at, kind))


def _array(values) -> np.ndarray:
    """A plotly JSON array: a plain list, or plotly 6's {"dtype", "bdata"} base64 form."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).astype(np.float64)
    return np.asarray(values, dtype=np.float64)


def _traces(at, key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    chart = next(c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id)
    data = json.loads(chart.proto.spec)["data"]
    return {t["name"]: (_array(t["x"]), _array(t["y"])) for t in data if t.get("name") and str(t.get("mode", "")).startswith("lines")}


def _answer(at, prefix: str, choice) -> str:
    """Pick a choice, press Check, return ("right" | "wrong", message) of the question's verdict."""
    at.radio(key=f"{prefix}_guess").set_value(choice).run()
    assert at.radio(key=f"{prefix}_guess").value == choice
    at.button(key=f"{prefix}_check").click().run()
    assert not at.exception, at.exception
    right = [m.value for m in at.success if m.value.startswith("Right")]
    wrong = [m.value for m in at.error if m.value.startswith("Not")]
    assert len(right) + len(wrong) == 1, "one verdict, from this click"
    return ("right", right[0]) if right else ("wrong", wrong[0])


# -- lesson 5 -----------------------------------------------------------------------------------------
def test_universal_approximation_is_stated_with_its_conditions(no_model):
    text = _texts(_run("05_activations.py"))
    assert "approximate any smooth function" not in text
    for condition in ("continuous", "bounded", "enough hidden", "non-polynomial"):
        assert condition in text


# -- lesson 6 -----------------------------------------------------------------------------------------
def test_loss_gradient_plot_shows_the_logit_gradient(no_model):
    at = _run("06_losses.py")
    traces = _traces(at, "t06_slope")
    p, ce = traces["cross-entropy"]
    assert ce == pytest.approx(p - 1, abs=1e-9)  # dCE/dz_y; the old plot showed dCE/dp = -1/p
    q, mse = traces["MSE"]
    assert np.abs(mse).max() < 0.1 and abs(mse[np.argmin(q)]) < 1e-4  # MSE's push fades as p -> 0
    text = _texts(at)
    assert "-1/p" not in text and "p - 1" in text


def test_hinge_table_shows_no_missing_value_and_log_softmax_matches_torch(no_model):
    at = _run("06_losses.py")
    at.slider(key="t06_s2").set_value(3.0).run()
    scores = np.array([at.slider(key=f"t06_s{i}").value for i in range(4)])
    y = at.selectbox(key="t06_true").value
    hinge = next(d.value for d in at.dataframe if "hinge term max(0, ·)" in d.value.columns)
    assert not hinge.isna().any().any() and "None" not in hinge.to_string()
    halves = next(d.value for d in at.dataframe if "F.log_softmax" in d.value.columns)
    reference = F.log_softmax(torch.tensor(scores), 0).numpy()
    assert halves["s_j − logsumexp (by hand)"].to_numpy() == pytest.approx(reference, abs=1e-12)
    nll = float(F.nll_loss(torch.tensor(reference[None]), torch.tensor([y])))
    assert f"by hand {nll:.4f}" in _texts(at)


def test_loss_question_asks_how_hard_a_confident_mistake_is_pushed(no_model):
    """Closed form: softmax - onehot with the rest spread over 9 classes has length (1 - p)·sqrt(1 + 1/9),
    so B/A = 0.99 / 0.1 = 9.9: "about 10 times", not the 90 times that -1/p would claim."""
    ratio = (1 - 0.01) / (1 - 0.9)
    assert ratio == pytest.approx(9.9)
    at = _run("06_losses.py")
    assert at.radio(key="t06_guess").value is None
    verdict, text = _answer(at, "t06", "B's logits are pushed about 100 times harder")
    assert verdict == "wrong"
    verdict, text = _answer(at, "t06", "B's logits are pushed about 10 times harder")
    assert verdict == "right" and "B/A = 9.9" in text
    length = (1 - 0.01) * (1 + 1 / 9) ** 0.5
    assert f"{length:.3f} for B" in text


@pytest.mark.parametrize("count", [500, 2000])
def test_largest_loss_images_are_listed_and_described_truly(bundled_model, mnist, count):
    at = _run("06_losses.py")
    at.slider(key="t06_count").set_value(count).run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "p(true class)" in d.value.columns)
    logits = predict_logits(bundled_model, mnist.test_images[:count])
    labels = mnist.test_labels[:count]
    losses = F.cross_entropy(logits.double(), labels, reduction="none")
    top = torch.topk(losses, 8)
    assert table["test image"].tolist() == top.indices.tolist()
    wrong = int((logits[top.indices].argmax(1) != labels[top.indices]).sum())
    assert (table["label"] != table["predicted"]).sum() == wrong
    text = next(m.value for m in at.markdown if "largest loss" in m.value)
    claim = text.split("largest loss:")[1]
    if wrong == 0:
        assert "mistake" not in claim and "8 are classified correctly" in claim
    else:
        assert f"{wrong} of these 8 are mistakes" in claim
    assert f"**{int((logits.argmax(1) != labels).sum())}** mistakes" in text


# -- lesson 7 -----------------------------------------------------------------------------------------
def test_gradient_descent_page_says_who_misses_the_bowl_minimum(no_model):
    at = _run("07_gradient_descent.py")
    text = _texts(at)
    assert "every method gets to the minimum" not in text
    line = next(m.value for m in at.markdown if "within 0.01 of the lowest loss" in m.value)
    # Adagrad by hand at the page's defaults: lr 0.1, 150 steps from (-3.5, 2.5) on x^2 + y^2
    w, G = np.array([-3.5, 2.5]), np.zeros(2)
    for _ in range(150):
        g = 2 * w
        G += g ** 2
        w = w - 0.1 * g / (np.sqrt(G) + 1e-10)
    assert f"Adagrad ({float(w @ w):.3g} above)" in line
    assert "Batch GD" not in line
    assert "sum of all" in text  # Adagrad divides by all past squared gradients, not recent ones
    for rule in (r"v_t = \beta\, v_{t-1} + g_t", r"G_t = G_{t-1} + g_t^2", r"s_t = \beta_2 s_{t-1}"):
        assert any(rule in l.value for l in at.latex), rule


def test_momentum_slider_is_its_own_and_its_effective_step_is_shown(no_model):
    at = _run("07_gradient_descent.py")
    at.slider(key="t07_mom").set_value(0.5).run()
    lr = at.select_slider(key="t07_lr_Bowl").value
    assert at.slider(key="t07_b1").value == 0.9
    assert f"= {lr / 0.5:.3g}, {2:.3g} times" in _texts(at)


def test_gradient_descent_question_on_the_bowl(no_model):
    at = _run("07_gradient_descent.py")
    question = at.radio(key="t07_guess")
    lr = float(re.search(r"η = (\d+(?:\.\d+)?)", question.label).group(1))
    factor = 1 - 2 * lr  # closed form for x^2: each step multiplies x by 1 - 2 lr
    assert -1 < factor < 0
    right = next(o for o in question.options if o.startswith("jumps across"))
    verdict, message = _answer(at, "t07", right)
    assert verdict == "right" and f"{factor:+.2f}" in message
    for wrong in question.options:
        if wrong != right:
            assert _answer(at, "t07", wrong)[0] == "wrong"


# -- lessons 1-3: transfer questions, right marked right, wrong marked wrong -------------------------------
def test_tensor_question_on_colour_photos(no_model):
    at = _run("01_tensors.py")
    label = at.radio(key="t01_guess").label
    n, side, c = (int(v) for v in re.search(r"hand (\d+) colour photos of (\d+)×\d+ pixels to `nn\.Conv2d\((\d+),",
                                            label).groups())
    right = (n, c, side, side)  # (N, C, H, W), by the lesson's rule, not by running the layer
    options = [ast.literal_eval(o) for o in at.radio(key="t01_guess").options]  # AppTest lists the shown text
    assert right in options
    assert _answer(at, "t01", right)[0] == "right"
    for wrong in options:
        if wrong != right:
            assert _answer(at, "t01", wrong)[0] == "wrong"
    shown = " ".join(str(m.value) for m in at.markdown)
    assert str(right) not in shown.split("Predict, then check")[0]  # the answer is not printed above the question


def test_linear_parameter_question(no_model):
    at = _run("02_fully_connected.py")
    n_in, n_out = (int(v) for v in re.search(r"nn\.Linear\((\d+), (\d+)\)", at.radio(key="t02_guess").label).groups())
    closed_form = n_in * n_out + n_out
    options = [int(o.replace(",", "")) for o in at.radio(key="t02_guess").options]
    right = closed_form
    verdict, message = _answer(at, "t02", right)
    assert verdict == "right" and f"{closed_form:,}" in message
    for wrong in options:
        if wrong != right:
            assert _answer(at, "t02", wrong)[0] == "wrong"
    assert f"{closed_form:,}" not in _texts(at).split(message)[0]  # not printed before Check


def test_output_size_question(no_model):
    at = _run("03_convolution.py")
    label = at.radio(key="t03_guess").label
    k, size, pad, stride = (int(v) for v in re.search(r"(\d+)×\d+ kernel slides over a (\d+)×\d+ digit with padding "
                                                      r"(\d+) and stride (\d+)", label).groups())
    right = (size + 2 * pad - k) // stride + 1  # the guide's formula
    measured = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k), padding=pad, stride=stride).shape[-1]
    assert right == measured
    assert _answer(at, "t03", right)[0] == "right"
    for wrong in (int(o.split("×")[0]) for o in at.radio(key="t03_guess").options):
        if wrong != right:
            assert _answer(at, "t03", wrong)[0] == "wrong"


# -- lesson 4: the one-pixel shift ----------------------------------------------------------------------
def test_shift_question_hides_the_pooled_maps_until_check(no_model, mnist):
    at = _run("04_pooling.py")
    at.radio(key="t04_shift").set_value("down").run()
    x = mnist.test_images[int(at.number_input(key="t04_index").value)].double() / 255.0
    moved = torch.roll(x, 1, 0)
    before = float((moved - x).abs().sum() / x.abs().sum())
    after = float((F.max_pool2d(moved[None], 2) - F.max_pool2d(x[None], 2)).abs().sum() / F.max_pool2d(x[None], 2).sum())
    right = "the input changes more" if before > after + 0.02 else None
    assert right is not None  # test image 0 is one of the digits where it holds
    assert not any(c.proto.id and "t04_shift_pooled" in c.proto.id for c in at.get("plotly_chart"))
    at.radio(key="t04_shift_guess").set_value(right).run()
    at.button(key="t04_shift_check").click().run()
    assert at.success and at.success[-1].value.startswith("Right") and f"{before:.1%}" in at.success[-1].value
    assert any(c.proto.id and "t04_shift_pooled" in c.proto.id for c in at.get("plotly_chart"))
    for wrong in ("the max-pooled map changes more", "both change by about the same share"):
        at.radio(key="t04_shift_guess").set_value(wrong).run()
        at.button(key="t04_shift_check").click().run()
        assert at.error and at.error[-1].value.startswith("Not quite")
