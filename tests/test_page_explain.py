"""The Explain page headless (AppTest): it runs with and without a model, its widgets recompute, and the
numbers it prints match torch computed here independently (autograd, plain forward passes, slicing)."""
from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from streamlit.testing.v1 import AppTest

import dashboard.state as dashboard_state
from helpers import new_learner, page_as, train_run
from simplecnn.checkpoints import load_checkpoint
from simplecnn.data import to_float
from simplecnn.explain.invariance import Pose, transform
from simplecnn.training import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor .* did not already require gradients")

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "explain.py")
CANVAS_KEY = "explain_canvas_0"  # dashboard.canvas.canvas_key("explain_canvas") before any Clear


# -- helpers -----------------------------------------------------------------------------------------
def decode(value) -> np.ndarray:
    """A plotly JSON array: a plain list, or the typed-array form {"dtype", "bdata", "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if value.get("shape"):
            arr = arr.reshape([int(s) for s in str(value["shape"]).split(",")])
        return arr
    return np.asarray(value, dtype=float)


def chart(at: AppTest, key: str) -> dict:
    for element in at.get("plotly_chart"):
        if element.key == key:
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart {key!r}; found {[e.key for e in at.get('plotly_chart')]}")


def text(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info])


def percent(p: float) -> str:
    return f"{p:.1%}"


def probs_of(model, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return F.softmax(model.eval()(x).double(), dim=1).numpy()


def canvas_value(digit_u8: torch.Tensor) -> dict:
    """The canvas component's value for a 28x28 digit drawn white on black at 280x280."""
    grey = Image.fromarray(np.asarray(digit_u8, dtype=np.uint8)).resize((280, 280), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    grey.convert("RGBA").save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    path = {"type": "path", "stroke": "#FFFFFF", "strokeWidth": 20, "path": [["M", 140, 40], ["L", 140, 240]]}
    return {"drawing": {"raw": {"version": "6.0.0", "objects": [path]}, "data": url}, "backgroundFit": None}


@pytest.fixture(scope="module")
def bundled(bundled_path):
    return load_checkpoint(bundled_path)[0].eval()


@pytest.fixture
def app(bundled_path) -> AppTest:
    at = page_as(PAGE, new_learner(), timeout=120).run()
    assert not at.exception, at.exception
    return at


# -- without a model -------------------------------------------------------------------------------
def test_without_any_model_the_page_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(dashboard_state, "BUNDLED_MODEL_PATH", tmp_path / "missing.pt")
    dashboard_state._bundled_model_and_meta.clear()
    try:
        at = page_as(PAGE, new_learner(), timeout=60).run()
        assert not at.exception, at.exception
        assert any("bundled model is missing" in i.value for i in at.info)
        assert not at.get("plotly_chart")
    finally:
        dashboard_state._bundled_model_and_meta.clear()


# -- 1. attacks ------------------------------------------------------------------------------------
def hand_fgsm(model, x, label: int, eps: float) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x).double(), torch.tensor([label]))
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


def test_fgsm_slider_recomputes_the_answer_torch_gives(app, bundled, mnist):
    x = to_float(mnist.test_images[:1])
    assert "## The model says 7" in text(app)
    for eps in (0.1, 0.3):
        app.slider(key="explain_eps").set_value(eps).run()
        assert not app.exception
        probs = probs_of(bundled, hand_fgsm(bundled, x, 7, eps))[0]
        after = int(probs.argmax())
        said = (f"now says **{after}** with {percent(probs[after])}" if after != 7
                else f"still says **7**, now with {percent(probs[7])}")
        assert f"**FGSM, ε = {eps:.2f}**: the model {said}" in text(app), text(app)
        shown = decode(chart(app, "explain_attack_fig")["data"][1]["z"]).reshape(28, 28)
        np.testing.assert_allclose(shown, hand_fgsm(bundled, x, 7, eps)[0, 0].numpy(), atol=1e-6)
    assert "now says **9**" in text(app)  # at ε = 0.3 the 7 is read as a 9


def test_pgd_keeps_the_change_within_eps_and_reports_what_torch_reads(app, bundled, mnist):
    x = to_float(mnist.test_images[:1])[0, 0].numpy()
    app.segmented_control(key="explain_method").set_value("PGD").run()
    app.slider(key="explain_eps").set_value(0.2).run()
    app.slider(key="explain_steps").set_value(30).run()
    assert not app.exception
    adv = decode(chart(app, "explain_attack_fig")["data"][1]["z"]).reshape(28, 28)
    assert np.abs(adv - x).max() <= 0.2 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    probs = probs_of(bundled, torch.tensor(adv, dtype=torch.float32)[None, None])[0]
    after = int(probs.argmax())
    assert after != 7 and f"**PGD, ε = 0.20**: the model now says **{after}** with {percent(probs[after])}" in text(app)
    match = re.search(r"none by more than L∞ = ([\d.]+)", text(app))
    assert match and float(match.group(1)) == pytest.approx(np.abs(adv - x).max(), abs=5e-4)


def test_make_it_a_three(app, bundled, mnist):
    x = to_float(mnist.test_images[:1])[0, 0].numpy()
    app.selectbox(key="explain_target").set_value(3).run()
    assert not app.exception
    adv = decode(chart(app, "explain_target_fig")["data"][1]["z"]).reshape(28, 28)
    probs = probs_of(bundled, torch.tensor(adv, dtype=torch.float32)[None, None])[0]
    assert int(probs.argmax()) == 3
    match = re.search(r"Smallest change found: \*\*ε = ([\d.]+)\*\*\. The model says \*\*3\*\* with ([\d.]+)%.*"
                      r"\*\*L∞ = ([\d.]+)\*\*.*\*\*L2 = ([\d.]+)\*\*", text(app))
    assert match, text(app)
    eps, p, linf, l2 = (float(g) for g in match.groups())
    delta = adv.astype(np.float64) - x
    assert linf == pytest.approx(np.abs(delta).max(), abs=5e-4) and linf <= eps + 5e-4
    assert l2 == pytest.approx(np.sqrt((delta ** 2).sum()), abs=5e-3)
    assert p == pytest.approx(100 * probs[3], abs=0.051)
    app.selectbox(key="explain_target").set_value(7).run()
    assert "already says **7**" in text(app)


# -- 2. attributions -------------------------------------------------------------------------------
def test_attribution_bench_numbers_and_class_switch(app, bundled, mnist):
    x = to_float(mnist.test_images[:1])
    for cls, steps in ((7, 128), (3, 64)):
        if cls != 7:
            app.selectbox(key="explain_attr_class").set_value(cls).run()
            app.slider(key="explain_ig_steps").set_value(steps).run()
        assert not app.exception
        with torch.no_grad():
            logits = bundled(torch.cat([x, torch.zeros_like(x)])).double()
        difference = float(logits[0, cls] - logits[1, cls])
        traces = chart(app, "explain_bench_fig")["data"]
        ig = decode([t for t in traces if t.get("name") == "Integrated Gradients"][0]["customdata"])
        match = re.search(rf"Integrated Gradients for \*\*{cls}\*\* add up to \*\*(-?[\d.]+)\*\*; the score of the "
                          rf"image minus the score of a black image is \*\*(-?[\d.]+)\*\* .*{steps} steps", text(app))
        assert match, text(app)
        assert float(match.group(1)) == pytest.approx(ig.sum(), abs=1e-3)
        assert float(match.group(2)) == pytest.approx(difference, abs=1e-3)
        assert abs(ig.sum() - difference) <= 0.05 * abs(difference) + 0.01
    names = [t.get("name") for t in chart(app, "explain_bench_fig")["data"] if t["type"] == "heatmap"]
    assert names == ["Saliency", "Integrated Gradients", "Grad-CAM (conv2)", "Occlusion"]


def test_sanity_check_button_fills_the_table(app):
    assert not app.dataframe  # nothing before the learner asks
    app.button(key="explain_sanity").click().run()
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["weights"]) == ["trained weights", "fc2 random", "fc2, fc1 random", "fc2 … conv2 random",
                                      "all four random"]
    np.testing.assert_allclose(table.iloc[0, 1:].astype(float), 1.0, atol=1e-9)
    assert table["Saliency · all"].iloc[-1] < 0.8 and table["Saliency · ink"].iloc[-1] < 0.5
    assert table["IG · all"].iloc[-1] > 0.9


# -- 6. invariance ---------------------------------------------------------------------------------
def test_shift_slider_moves_the_digit_and_the_curves_match_single_passes(app, bundled, mnist):
    x = to_float(mnist.test_images[:1])
    app.slider(key="explain_shift_x").set_value(5.0).run()
    assert not app.exception
    moved = torch.zeros_like(x)
    moved[..., 5:] = x[..., :-5]  # 5 px to the right, by slicing
    probs = probs_of(bundled, moved)[0]
    now = int(probs.argmax())
    said = (f"The model still reads **7** ({percent(probs[7])})." if now == 7 else
            f"The model now reads **{now}** ({percent(probs[now])}); P(7) = {percent(probs[7])}.")
    assert said in text(app), text(app)
    curve = chart(app, "explain_probe_shift_y")["data"][0]
    ys, values = decode(curve["y"]), decode(curve["x"])
    singles = [probs_of(bundled, transform(x, Pose(shift_x=5.0, shift_y=float(v))))[0, 7] for v in values]
    np.testing.assert_allclose(ys, singles, atol=1e-5)
    assert ys[values == 0][0] > 0.99 and ys[-1] < 0.1  # read when in place, lost 10 px down
    app.button(key="explain_reset").click().run()
    assert app.slider(key="explain_shift_x").value == 0.0
    assert "The model still reads **7** (100.0%)." in text(app)


def test_the_curve_ranges_are_stated(app):
    assert re.search(r"still answers \*\*7\*\* for: shift right −\d+ px to \+\d+ px; shift down", text(app)), text(app)
    assert "trained with random shifts of ±2 px" in text(app)


# -- input from the canvas -------------------------------------------------------------------------
def test_a_drawing_is_the_input_once_drawn(app, bundled, mnist):
    app.segmented_control(key="explain_source").set_value("Your drawing").run()
    assert not app.exception
    assert any(i.value.startswith("Draw a digit") for i in app.info)
    app.session_state[CANVAS_KEY] = canvas_value(mnist.test_images[1])  # a 2
    app.run()
    assert not app.exception
    assert "Input: your drawing" in text(app) and "## The model says 2" in text(app)
    assert "the model's answer, **2**" in text(app)


# -- a learner's run -------------------------------------------------------------------------------
def test_robustness_of_a_run_compared_with_the_bundled_model(bundled, mnist):
    token = new_learner()
    job = train_run(token, TrainConfig(epochs=1, subset=500, batch_size=64, validation_split=0.0, seed=2))
    at = page_as(PAGE, token, model_key=job.id, timeout=180).run()
    assert not at.exception
    assert at.selectbox(key="explain_compare").value == dashboard_state.BUNDLED
    at.button(key="explain_robust").click().run()
    assert not at.exception
    rows = at.dataframe[0].value
    assert len(rows) == 2 and rows["model"][0].startswith("this model: ") and job.id in rows["model"][0]
    x, y = to_float(mnist.test_images[:100]), mnist.test_labels[:100]
    for row, model in ((0, job.model()), (1, bundled)):
        clean = float((torch.as_tensor(probs_of(model, x).argmax(1)) == y).double().mean())
        assert rows["clean accuracy"][row] == f"{clean:.0%}"
    curves = chart(at, "explain_robust_fig")["data"]
    assert sorted(t["name"] for t in curves) == sorted(
        f"{m} · {who}" for m in ("FGSM", "PGD") for who in ("this model", "compared model"))


def test_whole_app_switches_to_the_page(bundled_path):
    at = page_as(str(ROOT / "app.py"), new_learner(), timeout=120).run()
    assert not at.exception
    at.switch_page("pages/explain.py").run()
    assert not at.exception
    assert any(t.value == "Explain" for t in at.title)


# -- 3. what excites a unit --------------------------------------------------------------------------
def unit_by_hand(model, x: torch.Tensor, layer: str, index: int, reduce: str = "mean") -> torch.Tensor:
    """A unit's value (N,) from the model's stages called one by one: conv channels after batch norm and
    before the ReLU, fc1 before its ReLU, the class logit."""
    m = model.eval()
    values = []
    with torch.no_grad():
        for batch in x.split(1000):
            a1 = m.batch1(m.conv1(batch))
            a2 = m.batch2(m.conv2(m.max1(m.relu1(a1))))
            h = m.fc1(m.max2(m.relu2(a2)).reshape(len(batch), -1))
            if layer == "class":
                values.append(m.fc2(m.relu3(h))[:, index])
            elif layer == "fc1":
                values.append(h[:, index])
            else:
                a = (a1 if layer == "conv1" else a2)[:, index]
                values.append(a.mean(dim=(1, 2)) if reduce == "mean" else a[:, a.shape[1] // 2, a.shape[2] // 2])
    return torch.cat(values).double()


def run_search(at: AppTest, rounds: int = 40) -> None:
    """Press Run and let the fragment's chunks go on until the search says it is done."""
    at.button(key="explain_max_run").click().run()
    for _ in range(rounds):
        assert not at.exception, at.exception
        if re.search(r"^(Done|Stopped)", text(at), re.M):
            return
        at.run()
    raise AssertionError(f"the search did not finish: {text(at)}")


def check_search(at: AppTest, model, mnist, layer: str, index: int, reduce: str = "mean") -> tuple[float, list]:
    """The value printed and drawn is the unit's value on the image shown; the nine images shown are the
    nine test images with the largest values, largest first. Returns (search value, top-9 values)."""
    image = decode(chart(at, "explain_max_image")["data"][0]["z"]).reshape(28, 28)
    reached = float(unit_by_hand(model, torch.tensor(image, dtype=torch.float32)[None, None], layer, index, reduce)[0])
    match = re.search(r"the value \*\*(-?[\d.]+)\*\* at step (\d+); the most exciting test image gives "
                      r"\*\*(-?[\d.]+)\*\*, the 9th \*\*(-?[\d.]+)\*\*, the average test image \*\*(-?[\d.]+)\*\*",
                      text(at))
    assert match, text(at)
    assert float(match.group(1)) == pytest.approx(reached, abs=0.006)
    x = to_float(mnist.test_images)
    values = unit_by_hand(model, x, layer, index, reduce).numpy()
    best = sorted(range(len(values)), key=lambda i: (-values[i], i))[:9]
    cells = [t for t in chart(at, "explain_max_top")["data"] if t["type"] == "heatmap"]
    assert len(cells) == 9
    for cell, i in zip(cells, best):
        np.testing.assert_allclose(decode(cell["z"]).reshape(28, 28), x[i, 0].numpy(), atol=1e-6)
    assert float(match.group(3)) == pytest.approx(values[best[0]], abs=0.006)
    assert float(match.group(4)) == pytest.approx(values[best[8]], abs=0.006)
    average = unit_by_hand(model, x.mean(dim=0, keepdim=True), layer, index, reduce)[0]
    assert float(match.group(5)) == pytest.approx(float(average), abs=0.006)
    return reached, [float(values[i]) for i in best]


def test_what_a_three_looks_like_beside_the_nine_most_three_like_test_images(app, bundled, mnist):
    assert app.segmented_control(key="explain_max_layer").value == "class"
    assert app.selectbox(key="explain_max_class").value == 3
    assert "Press Run" in text(app)
    run_search(app)
    assert "Done." in text(app) and app.slider(key="explain_max_steps").value == 200
    reached, top = check_search(app, bundled, mnist, "class", 3)
    assert all(int(mnist.test_labels[int(re.match(r"#(\d+)", c["name"]).group(1))]) == 3
               for c in chart(app, "explain_max_top")["data"])
    assert reached > top[0]  # the search beats every real test image on the logit of 3
    curve = chart(app, "explain_max_curve")["data"][0]
    assert decode(curve["x"])[-1] == 200 and decode(curve["y"])[-1] == pytest.approx(reached, abs=1e-4)


@pytest.mark.parametrize("layer,index,reduce", [("conv1", 5, "centre"), ("conv2", 10, "mean"), ("fc1", 42, None)])
def test_the_unit_selector_takes_conv_channels_and_fc1_units(app, bundled, mnist, layer, index, reduce):
    app.segmented_control(key="explain_max_layer").set_value(layer).run()
    app.number_input(key=f"explain_max_{layer}_index").set_value(index).run()
    if reduce is not None:
        app.segmented_control(key="explain_max_reduce").set_value(reduce).run()
    app.slider(key="explain_max_steps").set_value(100).run()
    assert not app.exception
    run_search(app)
    reached, top = check_search(app, bundled, mnist, layer, index, reduce or "mean")
    assert "Done." in text(app)
    first = decode(chart(app, "explain_max_curve")["data"][0]["y"])[0]
    assert reached > first  # higher than on the start image


def test_stop_ends_a_running_search_before_its_next_chunk(app, bundled):
    """AppTest follows the fragment's reruns to the end within one run, so a search caught between two
    chunks is put in the session here: 20 of 200 steps done, still running. Stop's callback must end it
    before another chunk runs; the page then shows the image of step 20 and says so."""
    from simplecnn.explain import maximise

    unit, settings = maximise.Unit("class", 3), maximise.Settings(jitter=1, blur=0.5, decay=0.0)
    ascent = maximise.Ascent(unit, settings)
    last = list(ascent.run(bundled, 20, 10))[-1]
    app.button(key="explain_max_run").click().run()  # creates the page's Search for these settings
    key, made = next(iter(app.session_state["_explain_searches"].items()))
    assert made.status == "done" and key[2] == unit and key[3] == settings
    made.ascent, made.last, made.status, made.seconds = ascent, last, "running", 0.1
    app.button(key="explain_max_stop").click().run()
    assert not app.exception
    assert made.status == "stopped" and made.ascent.step == 20
    assert "Stopped at step 20." in text(app), text(app)
    image = decode(chart(app, "explain_max_image")["data"][0]["z"]).reshape(28, 28)
    np.testing.assert_allclose(image, last.image[0, 0].numpy(), atol=1e-7)
    assert not app.button(key="explain_max_run").disabled
