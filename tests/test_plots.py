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
