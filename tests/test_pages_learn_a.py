"""Lesson pages 1-7 run headless, with and without a model, and their widgets recompute real numbers."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

import dashboard.state as dashboard_state
from simplecnn.checkpoints import load_checkpoint, save_checkpoint
from simplecnn.lessons import convolution as cv
from simplecnn.model import SimpleCNN

PAGES = {
    "pages/learn/01_tensors.py": ["t01_index", "t01_row", "t01_batch"],
    "pages/learn/02_fully_connected.py": ["t02_x0", "t02_w0", "t02_bias", "t02_act"],
    "pages/learn/03_convolution.py": ["t03_row", "t03_col", "t03_preset", "t03_k"],
    "pages/learn/04_pooling.py": ["t04_k", "t04_s", "t04_row"],
    "pages/learn/05_activations.py": ["t05_slope", "t05_T", "t05_z0"],
    "pages/learn/06_losses.py": ["t06_y0", "t06_t0", "t06_s0", "t06_true"],
    "pages/learn/07_gradient_descent.py": ["t07_surface", "t07_b1", "t07_b2", "t07_mom", "t07_steps", "t07_step"],
}
ROOT = Path(__file__).resolve().parent.parent
PREFIX = {page: page.split("/")[-1][:2] for page in PAGES}  # "01" ... "07"


def _use_model_file(monkeypatch, path):
    """Point the dashboard's bundled model at `path` and forget any model cached by an earlier test."""
    monkeypatch.setattr(dashboard_state, "BUNDLED_MODEL_PATH", path)
    dashboard_state._bundled_model_and_meta.clear()


@pytest.fixture()
def no_model(monkeypatch, tmp_path):
    _use_model_file(monkeypatch, tmp_path / "missing.pt")
    yield
    dashboard_state._bundled_model_and_meta.clear()


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "simplecnn_mnist.pt"
    save_checkpoint(path, SimpleCNN().eval())
    return path


@pytest.fixture()
def with_model(monkeypatch, model_file):
    _use_model_file(monkeypatch, model_file)
    yield
    dashboard_state._bundled_model_and_meta.clear()


def _widget(at, key):
    for kind in ("slider", "select_slider", "number_input", "selectbox", "radio", "multiselect", "checkbox"):
        try:
            return getattr(at, kind)(key=key)
        except KeyError:
            continue
    raise AssertionError(f"no widget with key {key!r}")


def _run(page):
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at):
    return " ".join(str(e.value) for kind in ("markdown", "latex", "caption") for e in getattr(at, kind))


def _check_common(at, page):
    for key in PAGES[page]:
        _widget(at, key)
    guess = at.radio(key=f"t{PREFIX[page]}_guess")
    assert guess.value is None and guess.index is None  # nothing chosen before the learner predicts
    assert at.button(key=f"t{PREFIX[page]}_check").label == "Check by running it"
    assert "See it in the live model" in _texts(at) or any(
        "See it in the live model" in str(getattr(e, "proto", "")) for e in at.get("page_link"))
    assert at.latex, "every lesson shows its formula"


@pytest.mark.parametrize("page", list(PAGES))
def test_page_runs_without_a_model(page, no_model):
    at = _run(page)
    _check_common(at, page)
    assert any("missing" in i.value for i in at.info), "the missing model is explained"


@pytest.mark.parametrize("page", list(PAGES))
def test_page_runs_with_a_model(page, with_model):
    at = _run(page)
    _check_common(at, page)
    assert not any("missing" in i.value for i in at.info)


def test_conv_position_slider_changes_the_stepped_sum(no_model, mnist):
    at = _run("pages/learn/03_convolution.py")
    kernel = torch.tensor(cv.preset_kernels()[at.selectbox(key="t03_preset").value])
    image = mnist.test_images[int(at.number_input(key="t03_index").value)].double() / 255.0
    reference = F.conv2d(image[None, None], kernel[None, None])[0, 0]  # torch, computed here, not by the page

    def shown(at):
        line = next(l.value for l in at.latex if r"\text{out}(" in l.value and "mathbf" in l.value)
        return float(re.search(r"\\mathbf\{(-?[\d.]+)\}", line).group(1))

    at.slider(key="t03_row").set_value(4).run()
    at.slider(key="t03_col").set_value(6).run()
    assert any(r"\text{out}(4, 6)" in l.value for l in at.latex)
    assert shown(at) == pytest.approx(float(reference[4, 6]), abs=1e-4)
    at.slider(key="t03_row").set_value(14).run()
    assert shown(at) == pytest.approx(float(reference[14, 6]), abs=1e-4)


def test_conv_page_uses_the_models_filters(with_model, model_file, mnist):
    at = _run("pages/learn/03_convolution.py")
    at.radio(key="t03_source").set_value("SimpleCNN's conv1 filter").run()
    at.slider(key="t03_filter").set_value(5).run()
    assert not at.exception
    assert any("conv1 filter 5" in str(c.proto) for c in at.get("plotly_chart"))
    line = next(m.value for m in at.markdown if "the model's own conv2 output" in m.value)
    hand, _ = [float(v) for v in re.findall(r"\*\*(-?[\d.]+)\*\*", line)]
    model = load_checkpoint(model_file)[0].eval()
    seen = {}
    model.conv2.register_forward_hook(lambda module, inputs, output: seen.update(out=output))
    with torch.no_grad():
        model(mnist.test_images[0].float()[None, None] / 255.0)
    h = seen["out"].shape[-1] // 2  # the page's default filter 0 at the middle pixel
    assert hand == pytest.approx(float(seen["out"][0, 0, h, h]), abs=2e-4)


def test_neuron_sliders_recompute_and_match_linear(no_model):
    at = _run("pages/learn/02_fully_connected.py")
    at.selectbox(key="t02_act").set_value("Identity").run()
    at.slider(key="t02_x0").set_value(1.5).run()
    at.slider(key="t02_w0").set_value(-2.0).run()
    xs = np.array([at.slider(key=f"t02_x{i}").value for i in range(4)])
    ws = np.array([at.slider(key=f"t02_w{i}").value for i in range(4)])
    expected = float(xs @ ws + at.slider(key="t02_bias").value)
    assert float(at.metric[0].value) == pytest.approx(expected, abs=1e-4)


def test_check_without_a_guess_asks_for_one(no_model):
    at = _run("pages/learn/01_tensors.py")
    at.button(key="t01_check").click().run()
    assert at.warning and "Pick an answer" in at.warning[0].value
    at.radio(key="t01_guess").set_value((8, 32, 32, 3)).run()
    at.button(key="t01_check").click().run()
    assert at.error and at.dataframe  # the wrong guess is explained with torch's own error messages
