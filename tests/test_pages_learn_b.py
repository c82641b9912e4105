"""Lesson pages 8-14 run headless: widgets exist, the predict-then-check button reveals the answer.

Each page is run twice: with no model at all (the fallback path) and with an injected model standing
in for the bundled one (so the live-model path runs even where models/simplecnn_mnist.pt is absent).
"""
import copy
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from simplecnn.model import SimpleCNN

LEARN = Path(__file__).resolve().parent.parent / "pages" / "learn"


def _model() -> SimpleCNN:
    torch.manual_seed(1)
    m = SimpleCNN()
    with torch.no_grad():
        m.batch1.running_mean.uniform_(-0.2, 0.2)
        m.batch1.running_var.uniform_(0.5, 2.0)
        m.batch1.num_batches_tracked.fill_(100)
    return m.eval()


def _app(page: str, model: SimpleCNN | None) -> AppTest:
    at = AppTest.from_file(str(LEARN / page), default_timeout=60)
    at.session_state["_bundled_copy"] = model  # None: no model at all; else stands in for the bundled one
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _messages(at: AppTest) -> str:
    return " ".join(m.value for m in list(at.success) + list(at.error) + list(at.warning))


def _check(at: AppTest, prefix: str, answer: str) -> str:
    radio = at.radio(key=f"{prefix}_guess")
    assert radio.value is None  # nothing is pre-selected
    assert answer in radio.options
    radio.set_value(answer).run()
    at.button(key=f"{prefix}_check").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return _messages(at)


@pytest.fixture(params=["no model", "model"])
def model(request):
    return None if request.param == "no model" else _model()


def test_adam_page(model):
    at = _app("08_adam.py", model)
    for key in ("adam_lr", "adam_theta0"):
        at.number_input(key=key)
    for key in ("adam_beta1", "adam_steps"):
        at.slider(key=key)
    # the hand-written table against a torch.optim.Adam run made here (defaults: α 0.1, k 1, θ₀ 0, 10 steps)
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    reference = []
    for _ in range(10):
        opt.zero_grad()
        ((theta - 3.0) ** 2).sum().backward()
        opt.step()
        reference.append(float(theta.detach()[0]))
    table = next(df.value for df in at.dataframe if "θ after" in df.value.columns)
    assert table["θ after"].tolist() == pytest.approx(reference, abs=1e-12)
    if model is None:
        assert any("missing" in i.value for i in at.info)
    _assert_scale_question(at)
    _assert_bias_correction_question(at)
    at.select_slider(key="adam_eps").set_value(1.0).run()  # a huge ε breaks the scale invariance
    assert not at.exception and any("**yes**" in s.value for s in at.success)


def _captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def _assert_scale_question(at: AppTest) -> None:
    """k = 100 makes g 100x larger; Adam's step 1 is α·g/(|g| + ε) (closed form), so its size barely moves."""
    g1, g100 = 2 * 1 * (0.0 - 3.0), 2 * 100 * (0.0 - 3.0)  # dL/dθ of the bowl k·(θ − 3)² at θ₀ = 0
    step = [0.1 * abs(g) / (abs(g) + 1e-8) for g in (g1, g100)]
    assert step[1] / step[0] == pytest.approx(1.0, abs=1e-6)  # hence "about the same size"
    hidden = _captions(at)
    assert "about α in the direction" not in hidden and "close to α" not in hidden  # the answer is not printed
    wrong = _check(at, "adam", "about 100 times larger")
    assert "Not quite" in wrong and "**about the same size**" in wrong
    at.radio(key="adam_guess").set_value("about the same size").run()
    assert "Right" in _messages(at)
    assert "about α in the direction" in _captions(at)  # explained once checked


def _columns(at: AppTest) -> set[str]:
    return {c for df in at.dataframe for c in df.value.columns}


def _assert_bias_correction_question(at: AppTest) -> None:
    """Step 1 without bias correction at β₁ = 0.9, β₂ = 0.999 is (1 − β₁)/√(1 − β₂) = 3.16·α (closed form)."""
    assert "step without bias correction" not in _columns(at)  # the answer is hidden before Check
    right = f"about {0.1 / 0.001 ** 0.5:.3g}·α"
    radio = at.radio(key="adam_bc_guess")
    assert radio.value is None and right in radio.options
    radio.set_value("about α, the same as with correction").run()
    at.button(key="adam_bc_check").click().run()
    assert "Not quite: without the correction" in _messages(at) and f"**{right}**" in _messages(at)
    at.radio(key="adam_bc_guess").set_value(right).run()
    assert "Right: without the correction" in _messages(at) and "Not quite" not in _messages(at)
    assert "step without bias correction" in _columns(at)


def _sign_of_dl_dw(x: float, w: float, b: float, t: float) -> str:
    """Independent reference: ∂/∂w of (σ(wx + b) − t)² by torch autograd."""
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    ((torch.sigmoid(wt * x + b) - t) ** 2).backward()
    g = float(wt.grad)
    return "zero" if g == 0 else "positive" if g > 0 else "negative"


def test_backprop_page(model):
    at = _app("09_backprop.py", model)
    assert len(at.get("plotly_chart")) == 3  # the graph, the gradient norms, the real layers
    # the "by hand" column against autograd run here on the default x=1.5, w=0.8, b=-0.2, t=1
    leaves = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in (("x", 1.5), ("w", 0.8), ("b", -0.2))}
    ((torch.sigmoid(leaves["w"] * leaves["x"] + leaves["b"]) - 1.0) ** 2).backward()
    table = next(df.value for df in at.dataframe if "by hand" in df.value.columns)
    by_hand = dict(zip(table["gradient"], table["by hand"]))
    for n, leaf in leaves.items():
        assert by_hand[f"∂L/∂{n}"] == pytest.approx(float(leaf.grad), abs=1e-12), n
    # defaults x=1.5, w=0.8, b=-0.2, t=1: the question asks about t = 0, which the tables do not show
    truth = _sign_of_dl_dw(1.5, 0.8, -0.2, 0.0)
    assert truth == "positive"
    assert "Right" in _check(at, "bp", truth)
    at.radio(key="bp_guess").set_value("negative").run()
    assert "Not quite" in _messages(at) and f"**{truth}**" in _messages(at)
    at.number_input(key="bp_x").set_value(0.0).run()
    at.button(key="bp_check").click().run()
    assert "**zero**" in _messages(at)
    # the real-layer backward: digit, target class and channel are widgets; the stage table is there
    at.selectbox(key="bp_target").set_value(3).run()
    at.slider(key="bp_channel").set_value(5).run()
    assert not at.exception
    table = next(df.value for df in at.dataframe if "backward step" in df.value.columns)
    assert len(table) == 5


def test_dropout_page(model):
    at = _app("10_dropout.py", model)
    for key in ("do_p", "do_channel"):
        at.slider(key=key)
    assert at.slider(key="do_p").value == pytest.approx(0.45)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["module output = h × mask"] == "yes"
    assert float(metrics["scale on kept units"]) == pytest.approx(1 / 0.55, rel=1e-3)
    if model is not None:
        _assert_dropout_alone_text(at, model)
    assert "Right" in _check(at, "do", f"0 or {1 / 0.55:.4g}")
    at.slider(key="do_p").set_value(0.8).run()
    assert float({m.label: m.value for m in at.metric}["scale on kept units"]) == pytest.approx(5.0)


def _assert_dropout_alone_text(at: AppTest, model: SimpleCNN) -> None:
    """The page's "dropout alone" range is eval mode with only dropout training (not full train mode),
    and its exact Monte-Carlo error at K = 1 is 2p·mean|h|: both recomputed here by plain forwards."""
    from simplecnn.data import load_dataset, to_float

    image = to_float(load_dataset("mnist").test_images[:1])
    work = copy.deepcopy(model).eval()
    with torch.no_grad():
        best = int(work(image).argmax())
        h = work.max1(work.relu1(work.batch1(work.conv1(image))))
    probs = []
    for seed in range(20):
        for m in (work.dropout1, work.dropout2):
            m.train()
            m.__dict__.pop("_rng", None)
        torch.manual_seed(seed)
        with torch.no_grad():
            probs.append(float(work(image).softmax(1)[0, best]))
    text = " ".join(m.value for m in at.markdown)
    assert f"ranged from **{min(probs):.1%}** to **{max(probs):.1%}**" in text
    caption = " ".join(c.value for c in at.caption)
    assert f"exact expected value {2 * 0.45 * float(h.abs().double().mean()):.4g} = 2p·mean|h|" in caption


def test_batch_norm_page_does_not_touch_the_live_model(model):
    saved = None if model is None else {k: v.clone() for k, v in model.state_dict().items()}
    at = _app("11_batch_norm.py", model)
    assert any("nn.BatchNorm2d" in s.value and "**yes**" in s.value for s in at.success)
    at.slider(key="bn_channel").set_value(5).run()
    at.slider(key="bn_gamma_5").set_value(2.0).run()
    at.slider(key="bn_beta_5").set_value(-1.0).run()
    assert any("mean β = -1" in s.value and "|γ| = 2" in s.value and "**yes**" in s.value for s in at.success)
    if model is not None:  # the statistics in the table, recomputed here from conv1 of the same 64 digits
        from simplecnn.data import load_dataset, to_float

        with torch.no_grad():
            conv = model.conv1(to_float(load_dataset("mnist").test_images[:64]))[:, 5]
        table = next(df.value for df in at.dataframe if "mean μ used" in df.value.columns)
        rows = dict(zip(table[""], zip(table["mean μ used"], table["variance σ² used"])))
        assert rows["train mode: batch statistics"] == (f"{float(conv.mean()):.4g}", f"{float(conv.var(unbiased=False)):.4g}")
        assert rows["eval mode: running statistics (buffers)"][0] == f"{float(model.batch1.running_mean[5]):.4g}"
    assert "Right" in _check(at, "bn", "It changes only in train mode")
    if model is not None:
        live = at.session_state["_bundled_copy"]
        for k, v in live.state_dict().items():
            assert torch.equal(v, saved[k]), k


def test_overfitting_page_trains_in_the_queue_not_on_the_page_thread(model):
    import threading

    from simplecnn.comparison import load_result
    from tests.helpers import classroom, key_of, wait_for

    at = _app("12_overfitting.py", model)
    assert not at.get("plotly_chart")  # nothing trained yet
    at.select_slider(key="of_subset").set_value(50)
    at.slider(key="of_epochs").set_value(1)
    at.button(key="of_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    learner = key_of(at.session_state["_learner_token"])
    job = classroom().comparison(learner)
    # The page returned at once: the comparison waits for (or holds) a slot in the class's queue and
    # trains in a worker process, never in the page's script thread.
    assert job is not None and job._thread.name == "simplecnn-comparison"
    assert job._thread is not threading.current_thread()
    assert wait_for(lambda: not job.active, timeout=120), job.progress_text
    assert job.status == "finished", job.message
    stored = load_result(classroom().comparison_path(learner, "lesson-12-overfitting"))
    assert stored is not None and len(stored["runs"]) == 2
    at.run()  # a later visit (or a reload) reads the result from disk
    assert not at.exception, [e.value for e in at.exception]
    assert not at.get("plotly_chart") and not at.dataframe  # the curves would answer the question: hidden
    runs = stored["runs"]
    assert all(len(r["val_loss"]) == 1 for r in runs)
    gaps = {r["label"]: r["val_loss"][-1] - r["train_loss"][-1] for r in runs}  # from the raw curves
    widest = max(gaps, key=gaps.get)
    other = next(label for label in gaps if label != widest)
    msg = _check(at, "of", widest)
    assert "Right" in msg and f"**{widest}**" in msg
    assert len(at.get("plotly_chart")) == 1 and len(at.dataframe) == 1  # shown once checked
    at.radio(key="of_guess").set_value(other).run()
    assert "Not quite" in _messages(at) and f"**{widest}**" in _messages(at)
    at.session_state["of_checked"] = False  # as after pressing Train again: hidden, until skipped
    at.run()
    assert not at.get("plotly_chart")
    at.button(key="of_reveal").click().run()
    assert not at.exception and len(at.get("plotly_chart")) == 1


def _mistake_counts(model: SimpleCNN) -> torch.Tensor:
    """Independent reference: (10, 10) counts of (true, predicted) by argmax and bincount."""
    from simplecnn.data import load_dataset, to_float

    ds = load_dataset("mnist")
    with torch.no_grad():
        pred = torch.cat([model.eval()(to_float(ds.test_images[i:i + 2000])).argmax(1) for i in range(0, 10000, 2000)])
    return torch.bincount(ds.test_labels * 10 + pred, minlength=100).view(10, 10)


def test_mnist_page(model):
    at = _app("13_mnist.py", model)
    assert "60,000" in at.markdown[0].value and "10,000" in at.markdown[0].value
    assert len(at.get("plotly_chart")) == 2 and len(at.get("image")) == 1
    if model is None:
        assert not at.radio and any("needs a trained model" in i.value for i in at.info)
        return
    counts = _mistake_counts(model)
    radio = at.radio(key="mn_guess")
    options = [tuple(int(d) for d in o.removeprefix("a ").split(" read as ")) for o in radio.options]
    assert len(options) >= 2 and all(t != p for t, p in options)
    offered = {o: int(counts[o]) for o in options}
    assert len(set(offered.values())) == len(offered)  # distinct counts: exactly one right answer
    best = max(offered, key=offered.get)
    assert offered[best] == max(int(counts[t, p]) for t in range(10) for p in range(10) if t != p)
    msg = _check(at, "mn", f"a {best[0]} read as {best[1]}")
    assert "Right" in msg and f"**a {best[0]} read as {best[1]}** ({offered[best]} of" in msg
    wrong = next(o for o in options if o != best)
    at.radio(key="mn_guess").set_value(f"a {wrong[0]} read as {wrong[1]}").run()
    assert "Not quite" in _messages(at)


def test_layer_by_layer_page(model):
    at = _app("14_layer_by_layer.py", model)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["total parameters (sum of the table)"] == "582,218"
    assert metrics["model.num_parameters()"] == "582,218"
    # softmax, eight stages (batch1 and batch2 included), the channel trail, receptive fields, fc1 vector
    assert len(at.get("plotly_chart")) >= 12
    at.number_input(key="lw_index").set_value(3).run()
    assert not at.exception
    # flatten question for channel 0, row 2, column 3: row-major (C, H, W) gives 0·16 + 2·4 + 3 = 11
    assert at.radio(key="lw_guess").options == ["11", "14", "704", "896"]
    msg = _check(at, "lw", "11")
    assert "Right" in msg and "**11**" in msg
    at.radio(key="lw_guess").set_value("704").run()  # channels-last order: wrong
    assert "Not quite" in _messages(at) and "**11**" in _messages(at)
    at.slider(key="lw_channel").set_value(7).run()  # the question follows the chosen channel
    at.radio(key="lw_guess").set_value(str(7 * 16 + 2 * 4 + 3)).run()
    assert "Right" in _messages(at) and "**123**" in _messages(at)
    at.number_input(key="lw_flat_index").set_value(123).run()
    assert "channel **7**, row **2**, column **3**" in " ".join(m.value for m in at.markdown)
    assert "the same number" in " ".join(m.value for m in at.markdown)
