"""Figure builders: each figure carries exactly the numbers it was given, the right way up."""
import time

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

from simplecnn import plots
from simplecnn.data import load_dataset, to_float
from simplecnn.evaluation import evaluate
from simplecnn.inspection import activations, first_layer_filters, saliency
from simplecnn.training import BatchEvent, History, StopTraining, TrainConfig, Trainer

CLASSES = tuple(str(d) for d in range(10))


@pytest.fixture(scope="module")
def run():
    """A real two-epoch run on 600 images: 480 training images in batches of 64 = 8 batches per epoch."""
    trainer = Trainer(TrainConfig(epochs=2, subset=600, batch_size=64, log_every=2))
    history = trainer.fit()
    assert history.status == "finished" and len(history.epochs) == 2
    return trainer, history


@pytest.fixture(scope="module")
def images():
    return to_float(load_dataset("mnist").test_images[:200])  # (200, 1, 28, 28)


def annotation_texts(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def traces_named(fig: go.Figure, fragment: str) -> list:
    return [t for t in fig.data if t.name and fragment in t.name]


def assert_house_style(fig: go.Figure) -> None:
    assert isinstance(fig, go.Figure)
    assert fig.layout.template.layout.plot_bgcolor == pio.templates["plotly_white"].layout.plot_bgcolor
    assert fig.layout.height and fig.layout.height > 0


# -- training curves -------------------------------------------------------------------------------

@pytest.mark.parametrize("empty", [None, {}, History(), History().to_dict()])
def test_training_curves_without_data_says_so(empty):
    fig = plots.training_curves(empty)
    assert_house_style(fig)
    assert "No training yet" in annotation_texts(fig)
    assert all(len(t.x or []) == 0 or all(v is None for v in t.x) for t in fig.data)


def test_training_curves_live_batches_before_the_first_epoch(run):
    _, history = run
    live = history.to_dict()
    live.update(steps=live["steps"][:3], batch_losses=live["batch_losses"][:3],
                smoothed_losses=live["smoothed_losses"][:3], epochs=[], status="running")
    fig = plots.training_curves(live)
    raw = traces_named(fig, "batch loss")[0]
    assert list(raw.x) == live["steps"] and list(raw.y) == live["batch_losses"]
    smooth = traces_named(fig, "smoothed")[0]
    assert list(smooth.y) == live["smoothed_losses"]
    assert not traces_named(fig, "validation")
    assert any("Accuracy appears" in text for text in annotation_texts(fig))
    assert "No training yet" not in annotation_texts(fig)


@pytest.mark.parametrize("as_dict", [False, True])
def test_training_curves_two_epochs_on_real_history(run, as_dict):
    trainer, history = run
    source = history.to_dict() if as_dict else history
    fig = plots.training_curves(source, batches_per_epoch=trainer.batches_per_epoch)
    assert_house_style(fig)
    val_loss, val_acc = traces_named(fig, "validation")  # loss panel first, then accuracy
    assert list(val_loss.y) == [e["val_loss"] for e in history.epochs]
    assert list(val_loss.x) == [8.0, 16.0]  # epoch ends, on the optimizer-step axis
    assert val_loss.xaxis == "x" and val_acc.xaxis == "x2"
    assert list(val_acc.y) == [e["val_accuracy"] for e in history.epochs]
    assert list(val_acc.x) == [1, 2]
    train_loss, train_acc = traces_named(fig, "train")
    assert list(train_loss.y) == [e["train_loss"] for e in history.epochs]
    assert list(train_acc.y) == [e["train_accuracy"] for e in history.epochs]
    assert list(traces_named(fig, "batch loss")[0].y) == history.batch_losses
    assert not [a for a in annotation_texts(fig) if "No training" in a or "appears" in a]


def test_training_curves_without_validation(run):
    _, history = run
    no_val = history.to_dict()
    no_val["epochs"] = [dict(e, val_loss=None, val_accuracy=None) for e in no_val["epochs"]]
    fig = plots.training_curves(no_val)
    assert not traces_named(fig, "validation")
    assert len(traces_named(fig, "train")) == 2


def test_overlaid_runs_are_labelled_and_coloured_apart(run):
    _, history = run
    other = history.copy()
    other.epochs = [dict(e, val_loss=e["val_loss"] * 2) for e in other.epochs]
    fig = plots.training_curves(history, other_runs=[("sgd lr=0.1", other)], label="adam lr=0.001")
    assert traces_named(fig, "adam lr=0.001") and traces_named(fig, "sgd lr=0.1")
    first = traces_named(fig, "adam lr=0.001: validation")
    second = traces_named(fig, "sgd lr=0.1: validation")
    assert list(second[0].y) == [2 * e["val_loss"] for e in history.epochs]
    assert first[0].line.color != second[0].line.color
    legend = [t.name for t in fig.data if t.showlegend is not False and t.name]
    assert legend[:2] == ["adam lr=0.001", "sgd lr=0.1"]  # one entry per run, then the style key
    assert fig.layout.height > plots.training_curves(history).layout.height  # room for the legend


def test_epoch_ends_inferred_from_logged_steps(run):
    trainer, history = run
    assert plots.epoch_end_steps(history) == [8.0, 16.0]  # finished: last step / epochs

    def stop_mid_epoch_two(event):
        if isinstance(event, BatchEvent) and event.epoch == 2 and event.batch >= 6:
            raise StopTraining()

    stopped = Trainer(TrainConfig(epochs=3, subset=600, batch_size=64, log_every=3),
                      callbacks=[stop_mid_epoch_two])
    h = stopped.fit()
    assert h.status == "stopped" and len(h.epochs) == 1 and h.steps == [3, 6, 8, 11, 14]
    assert plots.epoch_end_steps(h) == [8.0]
    assert plots.epoch_end_steps(h, batches_per_epoch=10) == [10.0]  # an explicit value wins


# -- evaluation plots ------------------------------------------------------------------------------

def test_confusion_matrix_on_real_predictions(run, images):
    trainer, _ = run
    labels = load_dataset("mnist").test_labels[:200]
    result = evaluate(trainer.model, images, labels)
    fig = plots.confusion_matrix(result.confusion, CLASSES)
    assert_house_style(fig)
    (heat,) = fig.data
    np.testing.assert_array_equal(np.asarray(heat.z), result.confusion.numpy())
    assert list(heat.x) == list(CLASSES) and list(heat.y) == list(CLASSES)
    assert fig.layout.yaxis.autorange == "reversed"  # true class 0 in the top row
    assert "%{z}" in heat.texttemplate
    assert fig.layout.xaxis.title.text.startswith("Predicted")


def test_bar_per_class_values_and_missing_classes():
    values = [99.0, 98.5, float("nan")] + [90.0] * 7
    fig = plots.bar_per_class(values, CLASSES, "Per-class accuracy", "Accuracy (%)",
                              reference=95.0, reference_label="overall")
    assert_house_style(fig)
    np.testing.assert_array_equal(np.asarray(fig.data[0].y), np.array(values))
    assert fig.data[0].text[0] == "99.0" and fig.data[0].text[2] == ""
    assert fig.layout.shapes[0].y0 == 95.0
    assert fig.layout.yaxis.title.text == "Accuracy (%)"


# -- predictions -----------------------------------------------------------------------------------

def test_probability_bars_on_real_softmax(run, images):
    trainer, _ = run
    probs = activations(trainer.model, images[:1])["softmax"][0]  # (10,)
    fig = plots.probability_bars(probs, CLASSES)
    assert_house_style(fig)
    (bars,) = fig.data
    np.testing.assert_allclose(np.asarray(bars.y), probs.numpy(), rtol=1e-6)
    predicted = int(probs.argmax())
    assert bars.marker.color[predicted] == plots.TRAIN_COLOR
    assert sum(c == plots.TRAIN_COLOR for c in bars.marker.color) == 1
    assert tuple(fig.layout.yaxis.range) == (0, 1)
    assert bars.text[predicted] == f"{float(probs[predicted]):.1%}"
    other = (predicted + 1) % 10
    assert plots.probability_bars(probs, CLASSES, highlight=other).data[0].marker.color[other] == plots.TRAIN_COLOR


def test_probabilities_over_epochs():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=4)  # (4 epochs, 10 classes)
    fig = plots.probabilities_over_epochs(probs, CLASSES, highlight=3)
    assert_house_style(fig)
    assert len(fig.data) == 10
    for c, trace in enumerate(fig.data):
        np.testing.assert_allclose(np.asarray(trace.y), probs[:, c])
        assert list(trace.x) == [1, 2, 3, 4]
    assert fig.data[3].line.width > fig.data[0].line.width
    empty = plots.probabilities_over_epochs(np.zeros((0, 10)), CLASSES)
    assert "No epochs yet" in annotation_texts(empty) and len(empty.data) == 0


# -- images ----------------------------------------------------------------------------------------

def test_image_grid_of_32_real_feature_maps(run, images):
    trainer, _ = run
    maps = activations(trainer.model, images[:1])["relu1"][0].numpy()  # (32, 24, 24)
    fig = plots.image_grid(maps, titles=[f"#{i}" for i in range(32)])
    assert_house_style(fig)
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 32
    for i, trace in enumerate(heatmaps):
        np.testing.assert_array_equal(np.asarray(trace.z), maps[i])
        assert fig.layout[trace.yaxis.replace("y", "yaxis")].autorange == "reversed"
    assert annotation_texts(fig) == [f"#{i}" for i in range(32)]
    assert fig.layout.coloraxis.cmin == pytest.approx(maps.min())
    assert fig.layout.coloraxis.cmax == pytest.approx(maps.max())
    # cells do not overlap: row 1 sits entirely below row 0
    assert fig.layout.yaxis9.domain[1] < fig.layout.yaxis.domain[0]


def test_image_grid_filters_diverging_and_per_map_scales(run):
    trainer, _ = run
    filters = first_layer_filters(trainer.model)  # (32, 5, 5)
    fig = plots.image_grid(filters, colorscale=plots.DIVERGING, zmid=0)
    reach = np.abs(filters).max()
    assert fig.layout.coloraxis.cmin == pytest.approx(-reach)
    assert fig.layout.coloraxis.cmax == pytest.approx(reach)
    own = plots.image_grid(filters, shared_scale=False, zmid=0)
    assert all(t.coloraxis is None and t.zmid == 0 and t.showscale is False for t in own.data)
    batch = plots.image_grid(filters[None])  # (1, N, H, W) is taken as N maps
    assert len(batch.data) == 32


def test_image_grid_builds_64_maps_quickly():
    maps = np.random.default_rng(0).random((64, 8, 8))
    plots.image_grid(maps)  # warm-up: first use loads plotly's validators
    start = time.process_time()
    for _ in range(3):
        fig = plots.image_grid(maps, titles=[str(i) for i in range(64)])
    per_figure = (time.process_time() - start) / 3
    assert len(fig.data) == 64
    assert per_figure < 0.3, f"{per_figure:.3f} s of CPU per 64-map grid"


def test_digit_image_is_drawn_the_right_way_up():
    raw = load_dataset("mnist").test_images[0]  # (28, 28) uint8, a 7: ink in the upper rows
    fig = plots.digit_image(raw, title="A seven")
    assert_house_style(fig)
    (heat,) = fig.data
    np.testing.assert_array_equal(np.asarray(heat.z), raw.numpy().astype(float))
    assert fig.layout.yaxis.autorange == "reversed"  # z row 0 is drawn at the top
    assert fig.layout.yaxis.scaleanchor == "x"  # square pixels
    assert heat.texttemplate is None
    shown = plots.digit_image(to_float(raw)[0], show_values=True)
    assert shown.data[0].texttemplate == "%{z:.1f}"
    assert shown.layout.height > fig.layout.height
    assert plots.digit_image(raw, show_values=True).data[0].texttemplate == "%{z:.0f}"


def test_saliency_overlay(run, images):
    trainer, _ = run
    x = images[:1]
    sal = saliency(trainer.model, x)
    fig = plots.saliency_overlay(x, sal)
    assert_house_style(fig)
    base, overlay = fig.data
    np.testing.assert_array_equal(np.asarray(base.z), x[0, 0].numpy())
    np.testing.assert_array_equal(np.asarray(overlay.z), sal)
    assert overlay.zmax == pytest.approx(sal.max())
    assert overlay.colorscale[0][1].endswith(",0)")  # fully transparent where saliency is zero
    assert fig.layout.yaxis.autorange == "reversed"


def test_builders_accept_torch_lists_and_custom_heights():
    z = torch.arange(100).reshape(10, 10)
    assert plots.confusion_matrix(z, CLASSES, height=300).layout.height == 300
    assert plots.probability_bars([0.1] * 10, CLASSES, height=250).layout.height == 250
    assert plots.image_grid(torch.zeros(4, 3, 3), cols=2, height=200).layout.height == 200
    with pytest.raises(ValueError):
        plots.digit_image(np.zeros((2, 28, 28)))


# -- colour: a palette safe for colour-blind readers, and a second cue wherever colour tells apart ---
# Every figure builder that can be called with small inputs is walked: every colour it sets must come
# from plots' palette or be a neutral (grey, black, white, transparent), every colour scale must read
# by lightness alone (no red-green scale), signed maps use plots.DIVERGING, and series that differ in
# colour also differ in dash, marker symbol or hatch. Colour-vision deficiencies are simulated with
# the matrices of Machado, Oliveira & Fernandes, "A Physiologically-based Model for Simulation of
# Color Vision Deficiency", IEEE TVCG 15(6), 2009 (severity 1.0), applied to linear RGB; distances
# are CIE76 ΔE in CIELAB (D65).
import itertools  # noqa: E402
import re  # noqa: E402

import torch.nn as nn  # noqa: E402
from plotly.colors import get_colorscale  # noqa: E402

from simplecnn import explain_plots  # noqa: E402
from simplecnn.lessons import figures_a, figures_b  # noqa: E402
from simplecnn.lessons.adam_table import AdamSettings, Bowl, adam_by_hand  # noqa: E402
from simplecnn.lessons.backprop import trace as backprop_trace  # noqa: E402
from simplecnn.lessons.minibatch import BatchNoise  # noqa: E402
from simplecnn.lessons.regularization import MonteCarloResult, TinyRun, batch_norm_view, dropout_view  # noqa: E402

MACHADO_2009 = {
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}
# The Tableau/D3 palette the charts used before: a negative control for the simulated check.
D3_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
              "#bcbd22", "#17becf")
MIN_DELTA_E = 12.0  # Okabe-Ito here: >= 15.7 under every simulation; D3: 4.6 (protanopia), 7.2 (deuteranopia)
NAMED = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128)}
LIGHT_BACKGROUND, DARK_BACKGROUND = "#ffffff", "#171614"  # Streamlit 1.67's light and dark app backgrounds


def rgba(colour: str) -> tuple[float, float, float, float]:
    """(r, g, b, alpha) of '#rgb', '#rrggbb', 'rgb(...)', 'rgba(...)' or a few names; fails on others."""
    c = colour.strip().lower()
    if c in NAMED:
        return (*NAMED[c], 1.0)
    if c.startswith("#") and len(c) in (4, 7):
        digits = c[1:] if len(c) == 7 else "".join(ch * 2 for ch in c[1:])
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), 1.0)
    match = re.fullmatch(r"rgba?\(([^)]*)\)", c)
    assert match, f"unexpected colour {colour!r}"
    parts = [float(p) for p in match.group(1).split(",")]
    return (parts[0], parts[1], parts[2], parts[3] if len(parts) == 4 else 1.0)


def linear_rgb(colour: str) -> np.ndarray:
    srgb = np.array(rgba(colour)[:3]) / 255
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def lab(linear: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of a linear-RGB colour."""
    xyz = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                    [0.0193339, 0.1191920, 0.9503041]]) @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def seen(colour: str, deficiency: str | None = None) -> np.ndarray:
    """The colour in CIELAB as a reader with `deficiency` (None: typical vision) sees it."""
    linear = linear_rgb(colour)
    if deficiency:
        linear = np.clip(MACHADO_2009[deficiency] @ linear, 0.0, 1.0)
    return lab(linear)


def delta_e(a: str, b: str, deficiency: str | None = None) -> float:
    return float(np.linalg.norm(seen(a, deficiency) - seen(b, deficiency)))


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio."""
    la, lb = (float(np.array([0.2126, 0.7152, 0.0722]) @ linear_rgb(c)) for c in (a, b))
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def min_delta_e(palette, deficiency):
    return min(delta_e(a, b, deficiency) for a, b in itertools.combinations(palette, 2))


def test_simulation_matches_the_published_identity_and_separates_red_from_green():
    """The check itself: white stays white, and pure red and green fall together for a deuteranope."""
    for deficiency in MACHADO_2009:
        assert delta_e("#ffffff", "#ffffff", deficiency) == 0
        np.testing.assert_allclose(MACHADO_2009[deficiency].sum(axis=1), 1.0, atol=2e-5)  # greys unchanged
    assert delta_e("#d62728", "#2ca02c") > 80  # typical vision: far apart
    assert delta_e("#d62728", "#2ca02c", "deuteranopia") < 10  # deuteranopia: nearly the same


@pytest.mark.parametrize("deficiency", sorted(MACHADO_2009))
def test_palette_stays_distinguishable_under_simulated_colour_blindness(deficiency):
    assert min_delta_e(plots.COLORS, deficiency) >= MIN_DELTA_E
    assert min_delta_e(plots.COLORS, None) >= MIN_DELTA_E


def test_the_old_palette_fails_the_same_check():
    assert min_delta_e(D3_PALETTE, "protanopia") < MIN_DELTA_E
    assert min_delta_e(D3_PALETTE, "deuteranopia") < MIN_DELTA_E


def test_classes_that_share_a_colour_have_their_own_symbol_and_dash():
    n = len(plots.CLASS_COLORS)
    assert n == len(plots.CLASS_SYMBOLS) == len(plots.CLASS_DASHES) == 10
    assert len(set(plots.CLASS_SYMBOLS)) == 10
    for i, j in itertools.combinations(range(n), 2):
        close = any(delta_e(plots.CLASS_COLORS[i], plots.CLASS_COLORS[j], d) < MIN_DELTA_E
                    for d in [None, *MACHADO_2009])
        if close:
            assert plots.CLASS_SYMBOLS[i] != plots.CLASS_SYMBOLS[j], (i, j)
            assert plots.CLASS_DASHES[i] != plots.CLASS_DASHES[j], (i, j)


def test_first_series_colours_and_neutral_show_on_light_and_dark_backgrounds():
    """WCAG 1.4.11 asks 3:1 for graphics; the first four series colours and the grey meet it on both."""
    for colour in (*plots.COLORS[:4], plots.NEUTRAL):
        assert contrast(colour, LIGHT_BACKGROUND) >= 3.0, colour
        assert contrast(colour, DARK_BACKGROUND) >= 3.0, colour
    assert plots.TRAIN_COLOR != plots.VAL_COLOR and plots.TRAIN_DASH != plots.VAL_DASH
    assert min(delta_e(plots.TRAIN_COLOR, plots.VAL_COLOR, d) for d in MACHADO_2009) > 40


def scale_colours(scale) -> list[tuple[float, str]]:
    if isinstance(scale, str):
        return [(float(t), c) for t, c in get_colorscale(scale)]
    return [(float(t), c) for t, c in scale]


def lightness_profile(scale) -> np.ndarray:
    return np.array([seen(c)[0] for _, c in scale_colours(scale)])


def test_diverging_map_is_blue_white_orange_and_reads_by_lightness():
    stops = scale_colours(plots.DIVERGING)
    assert stops[0][0] == 0.0 and stops[-1][0] == 1.0
    middle = [c for t, c in stops if t == 0.5]
    assert middle and rgba(middle[0])[:3] == rgba("#f7f7f7")[:3]  # zero is (near) white
    lightness = lightness_profile(plots.DIVERGING)
    peak = int(np.argmax(lightness))
    assert stops[peak][0] == 0.5
    assert np.all(np.diff(lightness[: peak + 1]) > 0) and np.all(np.diff(lightness[peak:]) < 0)
    low, high = np.array(rgba(stops[0][1])[:3]), np.array(rgba(stops[-1][1])[:3])
    assert low[2] > low[0] and high[0] > high[2]  # blue below zero, orange above
    for deficiency in MACHADO_2009:  # the two ends stay apart for every reader
        assert delta_e(stops[1][1], stops[-2][1], deficiency) > 30


def _small_figures() -> dict[str, go.Figure]:
    """Every builder this test can call with small made-up inputs (no training)."""
    rng = np.random.default_rng(0)
    classes = [str(c) for c in range(10)]
    image = rng.random((28, 28))
    probs = rng.dirichlet(np.ones(10))
    epoch = {"epoch": 1, "train_loss": 0.5, "val_loss": 0.6, "train_accuracy": 80.0, "val_accuracy": 78.0}
    history = {"steps": [1, 2, 3, 4], "batch_losses": [2.3, 1.9, 1.2, 0.9], "smoothed_losses": [2.3, 2.1, 1.8, 1.5],
               "epochs": [dict(epoch, step=4)], "status": "finished"}
    other = {**history, "epochs": [dict(epoch, train_loss=0.4, step=4)]}
    bowl = Bowl()
    adam_rows = adam_by_hand(bowl, 0.0, AdamSettings(), steps=5)
    h = torch.rand(1, 4, 6, 6)
    drop = dropout_view(nn.Dropout(0.5), h, 0.5, seed=0)
    norm = batch_norm_view(nn.BatchNorm2d(4), torch.randn(8, 4, 5, 5))
    counts = [1, 10, 100]
    monte = MonteCarloResult(counts=counts, mean_abs_error=[0.5, 0.2, 0.05], theory=[0.5, 0.16, 0.05],
                             average=h[0], exact=[0.45, 0.15, 0.05])
    runs = [TinyRun(label=f"run {i}", config={}, epochs=[1, 2], train_loss=[1.0, 0.5], val_loss=[1.1, 0.8],
                    train_accuracy=[60.0, 80.0], val_accuracy=[55.0, 70.0]) for i in range(3)]
    noise = [BatchNoise(batch_size=b, cosines=list(rng.random(4)), relative_errors=list(rng.random(4) + 0.1),
                        seconds_per_batch=0.01) for b in (8, 32, 128)]
    xs = np.linspace(-1, 1, 20)
    paths = {name: np.stack([xs, xs ** 2], axis=1) for name in figures_a.OPTIMIZER_COLOURS}
    return {
        "training_curves": plots.training_curves(history),
        "training_curves_runs": plots.training_curves(history, other_runs=[("B", other), ("C", other)]),
        "confusion_matrix": plots.confusion_matrix(rng.integers(0, 50, (10, 10)), classes),
        "bar_per_class": plots.bar_per_class(rng.random(10) * 100, classes, reference=50.0),
        "probability_bars": plots.probability_bars(probs, classes, true=int(np.argmin(probs))),
        "probabilities_over_epochs": plots.probabilities_over_epochs(rng.dirichlet(np.ones(10), 3), classes, 2),
        "digit_image": plots.digit_image(image),
        "saliency_overlay": plots.saliency_overlay(image, image),
        "image_grid_signed": plots.image_grid(rng.normal(size=(4, 5, 5)), colorscale=plots.DIVERGING, zmid=0.0),
        "image_grid": plots.image_grid(rng.random((4, 5, 5)), colorscale=plots.SEQUENTIAL),
        "attack_images": explain_plots.attack_images(image, np.clip(image + 0.1, 0, 1), 0.1),
        "probability_change": explain_plots.probability_change(probs, probs[::-1], classes),
        "attribution_maps": explain_plots.attribution_maps(image, {"IG": image - 0.5, "Saliency": image},
                                                           {"IG": True, "Saliency": False}),
        "robustness_curves": explain_plots.robustness_curves(
            [0.0, 0.1], {"A": {"FGSM": [0.9, 0.5], "PGD": [0.9, 0.3]}, "B": {"FGSM": [0.8, 0.4], "PGD": [0.8, 0.2]}}),
        "probe_curve": explain_plots.probe_curve(xs[:5], rng.random(5), [3, 3, 1, 3, 3], 3, classes, 0.0, "Shift",
                                                 "px", readable=(-0.5, 0.5)),
        "unit_image": explain_plots.unit_image(image, "unit"),
        "top_image_grid": explain_plots.top_image_grid(rng.random((3, 28, 28)), ["a", "b", "c"]),
        "objective_curve": explain_plots.objective_curve([1, 2, 3], [0.1, 0.5, 0.9], {"top image": 0.8, "mean": 0.2}),
        "value_grid": figures_a.value_grid(rng.random((5, 5)), box=(1, 1, 2, 2)),
        "kernel_grid": figures_a.kernel_grid(rng.normal(size=(3, 3))),
        "maps_side_by_side": figures_a.maps_side_by_side({"a": rng.random((4, 4)), "b": rng.random((4, 4))},
                                                         boxes={"a": (0, 0, 2, 2)}),
        "filter_bank": figures_a.filter_bank(rng.normal(size=(4, 5, 5)), columns=2, highlight=1),
        "curves": figures_a.curves(xs, {"ReLU": np.maximum(xs, 0), "tanh": np.tanh(xs), "sigmoid": 1 / (1 + np.exp(-xs))},
                                   markers={"here": (0.0, 0.0)}),
        "curves_optimizers": figures_a.curves(xs, {n: xs ** 2 + i for i, n in enumerate(figures_a.OPTIMIZER_COLOURS)},
                                              colours=figures_a.OPTIMIZER_COLOURS),
        "lesson_probability_bars": figures_a.probability_bars(classes, probs, highlight=3),
        "bar_values": figures_a.bar_values(["a", "b", "c"], [1.0, -2.0, 0.5]),
        "optimizer_contour": figures_a.optimizer_contour(xs, xs, np.add.outer(xs ** 2, xs ** 2), paths, 10,
                                                         minima=[(0.0, 0.0)]),
        "adam_path": figures_b.adam_path_figure(bowl, adam_rows),
        "dropout_maps": figures_b.dropout_maps_figure(drop, 0),
        "monte_carlo": figures_b.monte_carlo_figure(monte),
        "batch_norm_histograms": figures_b.batch_norm_histograms(norm, 0),
        "lesson_training_curves": figures_b.training_curves_figure(runs),
        "class_balance": figures_b.class_balance_figure([100] * 10, [20] * 10, classes),
        "image_row": figures_b.image_row_figure(rng.random((3, 6, 6)), ["a", "b", "c"]),
        "softmax_bars": figures_b.softmax_bars_figure(list(probs), classes, int(np.argmax(probs))),
        "vector": figures_b.vector_figure(rng.random(16), "fc1"),
        "gradient_norms": figures_b.gradient_norms_figure({"conv1.weight": 0.1, "fc2.bias": 0.01}),
        "backprop_graph": figures_b.backprop_graph_figure(backprop_trace(0.5, -1.0, 0.2, 1.0)),
        "receptive_field": figures_b.receptive_field_figure(image, [("max1", (0, 0, 5, 5), plots.BLUE),
                                                                    ("max2", (2, 2, 15, 15), plots.VERMILLION)]),
        "minibatch_noise": figures_b.minibatch_noise_figure(noise),
    }


@pytest.fixture(scope="module")
def small_figures():
    return _small_figures()


def colours_and_scales(fig: go.Figure) -> tuple[list[tuple[str, str]], list[tuple[str, object]]]:
    """(path, colour) of every colour the figure sets and (path, scale) of every colour scale, outside
    its template (the theme's business); colours inside annotation HTML (<span style='color:..'>) too."""
    colours, scales = [], []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{path}.{key}"
                if key == "template":
                    continue
                if key == "colorscale":
                    scales.append((where, value))
                elif "color" in key.lower() and key not in ("coloraxis", "colorbar", "autocolorscale", "coloring"):
                    values = value if isinstance(value, (list, tuple)) else [value]
                    colours.extend((where, v) for v in values if isinstance(v, str) and v)
                else:
                    walk(value, where)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        elif isinstance(node, str):
            colours.extend((path, c) for c in re.findall(r"color:\s*([^;'\"]+)", node))

    walk(fig.to_plotly_json(), "fig")
    return colours, scales


def allowed_colour(colour: str) -> bool:
    """In the palette or one of its tints/diagram colours, or a neutral (grey, black, white, transparent)."""
    r, g, b, alpha = rgba(colour)
    if alpha == 0 or r == g == b:
        return True
    known = {*plots.COLORS, plots.MUTED, figures_b.FILL_INPUT, figures_b.FILL_NODE, figures_b.FILL_TARGET,
             figures_b.FILL_LOSS, figures_b.GRADIENT_TEXT}
    return (r, g, b) in {rgba(k)[:3] for k in known}


def test_walker_finds_colours_it_must_reject():
    """The check itself: an off-palette line colour and a red-green scale are found."""
    fig = go.Figure([go.Scatter(y=[1, 2], line=dict(color="#d62728")),
                     go.Heatmap(z=[[0, 1]], colorscale=[[0, "#d62728"], [1, "#2ca02c"]])])
    colours, scales = colours_and_scales(fig)
    assert [c for _, c in colours if not allowed_colour(c)] == ["#d62728"]
    lightness = lightness_profile(scales[0][1])
    assert abs(lightness[-1] - lightness[0]) < 15  # red and green of about the same lightness


def test_every_figure_uses_only_the_palette_and_neutrals(small_figures):
    bad = {name: sorted({c for _, c in colours_and_scales(fig)[0] if not allowed_colour(c)})
           for name, fig in small_figures.items()}
    assert not {k: v for k, v in bad.items() if v}


def test_every_colour_scale_reads_by_lightness_alone(small_figures):
    """Sequential scales change lightness steadily one way; the diverging scale is plots.DIVERGING.
    A red-to-green scale (the same lightness at both ends) cannot pass."""
    for name, fig in small_figures.items():
        for where, scale in colours_and_scales(fig)[1]:
            if scale == plots.DIVERGING:
                continue
            lightness = lightness_profile(scale)
            steps = np.diff(lightness)
            assert np.all(steps >= -1.0) or np.all(steps <= 1.0), (name, where, scale)
            assert abs(lightness[-1] - lightness[0]) > 40, (name, where, scale)


def test_signed_maps_use_the_diverging_scale(small_figures):
    def heat_scales(fig):
        layout = fig.layout
        shared = [layout.coloraxis.colorscale] if layout.coloraxis and layout.coloraxis.colorscale else []
        return shared + [t.colorscale for t in fig.data if t.type == "heatmap" and t.colorscale]

    as_lists = lambda scales: [[[float(t), c] for t, c in s] for s in scales]  # noqa: E731
    diverging = [[float(t), c] for t, c in plots.DIVERGING]
    for name in ("kernel_grid", "filter_bank", "image_grid_signed"):
        assert as_lists(heat_scales(small_figures[name])) == [diverging], name
    assert as_lists(heat_scales(small_figures["attack_images"]))[2] == diverging  # the change, ±ε
    attribution = [t for t in small_figures["attribution_maps"].data if t.type == "heatmap"]
    assert as_lists([attribution[0].colorscale]) == [diverging]  # the signed method (IG)
    assert as_lists([attribution[1].colorscale]) != [diverging]  # |saliency| is sequential


def _series_style(trace) -> tuple:
    """What tells a series apart besides its colour: dash, marker symbol(s), hatch."""
    if trace.type in ("bar", "histogram"):
        pattern = trace.marker.pattern.shape if trace.marker and trace.marker.pattern else None
        return ("bar", pattern if not isinstance(pattern, tuple) else tuple(pattern))
    mode = trace.mode or "lines"
    dash = trace.line.dash if trace.line and trace.line.dash else "solid"
    symbol = trace.marker.symbol if "markers" in mode and trace.marker else None
    symbol = tuple(symbol) if isinstance(symbol, (list, tuple)) else (symbol or ("circle" if "markers" in mode else None))
    return (dash if "lines" in mode else None, symbol)


def _series_colour(trace) -> str | None:
    for part in (trace.line if trace.type == "scatter" else None, trace.marker):
        colour = getattr(part, "color", None) if part is not None else None
        if isinstance(colour, str):
            return colour
    return None


def test_series_that_differ_in_colour_differ_in_another_cue_too(small_figures):
    checked = 0
    for name, fig in small_figures.items():
        if fig.layout.showlegend is False:
            continue
        shown = [t for t in fig.data if t.type in ("scatter", "bar", "histogram") and t.showlegend is not False
                 and t.name and _series_colour(t)]
        for a, b in itertools.combinations(shown, 2):
            if rgba(_series_colour(a))[:3] != rgba(_series_colour(b))[:3] and a.type == b.type:
                checked += 1
                assert _series_style(a) != _series_style(b), (name, a.name, b.name, _series_style(a))
    assert checked > 50  # the walk really compared series


def test_right_and_wrong_carry_a_mark_as_well_as_a_colour():
    classes = [str(c) for c in range(10)]
    probs = np.full(10, 0.05)
    probs[4] = 0.55
    right = plots.probability_bars(probs, classes, true=4).data[0]
    wrong = plots.probability_bars(probs, classes, true=9).data[0]
    assert right.text[4].startswith(plots.RIGHT_MARK) and not any(plots.WRONG_MARK in t for t in right.text)
    assert wrong.text[4].startswith(plots.WRONG_MARK) and wrong.text[9].startswith("true")
    assert right.marker.color[4] != wrong.marker.color[4]  # and the colour changes too
    assert plots.probability_bars(probs, classes).data[0].text[4] == "55.0%"  # no truth known: no mark
    lesson_right = figures_b.softmax_bars_figure(list(probs), classes, 4)
    lesson_wrong = figures_b.softmax_bars_figure(list(probs), classes, 2)
    assert lesson_right.layout.title.text.startswith(plots.RIGHT_MARK)
    assert lesson_wrong.layout.title.text.startswith(plots.WRONG_MARK)
    assert lesson_wrong.data[0].text[4].startswith(plots.WRONG_MARK)
