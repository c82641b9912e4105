"""show_chart on real pages (AppTest): each chart's "Show data" toggle starts off and builds nothing;
turned on, it shows the table and a CSV download whose rows are the numbers computed here
independently (torch on the bundled model, the run's own history, the test image's pixels)."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.runtime.media_file_manager import MediaFileManager  # noqa: E402

import dashboard.charts as charts  # noqa: E402
from dashboard.state import BUNDLED_MODEL_PATH  # noqa: E402
from helpers import new_learner, page_as, train_run  # noqa: E402
from simplecnn.checkpoints import load_checkpoint  # noqa: E402
from simplecnn.data import to_float  # noqa: E402
from simplecnn.training import TrainConfig  # noqa: E402

needs_model = pytest.mark.skipif(not BUNDLED_MODEL_PATH.is_file(), reason="models/simplecnn_mnist.pt is absent")


@pytest.fixture
def downloads(monkeypatch):
    """file name -> the callable a deferred st.download_button registered (pressed here by calling it)."""
    seen: dict[str, object] = {}
    original = MediaFileManager.add_deferred

    def record(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        seen[file_name] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return seen


@pytest.fixture
def table_builds(monkeypatch):
    """How many times a page built a chart's tables."""
    calls = []
    real = charts.figure_tables
    monkeypatch.setattr(charts, "figure_tables", lambda fig, *a, **k: calls.append(1) or real(fig, *a, **k))
    return calls


def csv_buttons(at) -> list[str]:
    return [b.proto.label for b in at.get("download_button") if b.proto.label.startswith("Download CSV")]


def read_csv(downloads, name: str) -> pd.DataFrame:
    data = downloads[name]()
    assert isinstance(data, bytes)
    return pd.read_csv(io.BytesIO(data))


@needs_model
def test_results_confusion_matrix_data_is_the_torch_confusion(mnist, downloads, table_builds):
    at = page_as(str(ROOT / "pages" / "results.py"), new_learner(), timeout=180).run()
    assert not at.exception, at.exception
    toggles = {t.key: t for t in at.toggle if t.key.endswith("__data")}
    assert {"results_test_confusion__data", "results_test_per_class__data"} <= set(toggles)
    assert not any(t.value for t in toggles.values())
    assert csv_buttons(at) == [] and table_builds == []  # off: nothing built, nothing to download

    toggles["results_test_confusion__data"].set_value(True)
    at.run()
    assert not at.exception, at.exception
    assert csv_buttons(at) == ["Download CSV (100 rows)"] and len(table_builds) >= 1
    shown = next(df.value for df in at.dataframe if "Predicted class" in df.value.columns)

    model, _ = load_checkpoint(BUNDLED_MODEL_PATH)
    with torch.no_grad():
        preds = torch.cat([model.eval()(to_float(mnist.test_images[i:i + 2500])).argmax(1)
                           for i in range(0, len(mnist.test_labels), 2500)])
    expected = np.zeros((10, 10), dtype=int)
    np.add.at(expected, (mnist.test_labels.numpy(), preds.numpy()), 1)

    for table in (shown, read_csv(downloads, "results_test_confusion.csv")):
        got = table.pivot(index="True class", columns="Predicted class", values="value")
        got.index, got.columns = got.index.astype(int), got.columns.astype(int)
        assert got.sort_index().sort_index(axis=1).to_numpy().tolist() == expected.tolist()

    toggles = {t.key: t for t in at.toggle if t.key.endswith("__data")}
    toggles["results_test_confusion__data"].set_value(False)
    at.run()
    assert csv_buttons(at) == []


def test_train_curves_data_is_the_runs_history(downloads):
    token = new_learner()
    job = train_run(token, TrainConfig(epochs=2, subset=500, batch_size=64, log_every=2), timeout=240)
    history = job.snapshot().history
    at = page_as(str(ROOT / "pages" / "train.py"), token, timeout=120).run()
    assert not at.exception, at.exception
    assert at.toggle(key="train_curves__data").value is False and csv_buttons(at) == []
    at.toggle(key="train_curves__data").set_value(True).run()
    assert not at.exception, at.exception
    (label,) = csv_buttons(at)
    table = read_csv(downloads, "train_curves.csv")
    assert label == f"Download CSV ({len(table)} rows)"
    batch = table[table["series"].str.endswith("batch loss")]
    assert batch["x"].tolist() == list(history.steps)
    np.testing.assert_allclose(batch["y"], history.batch_losses)
    val = table[(table["panel"] == "Accuracy") & table["series"].str.endswith("validation")]
    assert val["x"].tolist() == [e["epoch"] for e in history.epochs] == [1, 2]
    np.testing.assert_allclose(val["y"], [e["val_accuracy"] for e in history.epochs])


@needs_model
def test_inside_input_image_data_is_the_test_images_pixels(mnist, downloads):
    at = page_as(str(ROOT / "pages" / "inside.py"), new_learner(), timeout=120).run()
    assert not at.exception, at.exception
    at.toggle(key="inside_input_fig__data").set_value(True).run()
    assert not at.exception, at.exception
    table = read_csv(downloads, "inside_input_fig.csv")
    assert list(table.columns) == ["row", "column", "value"] and len(table) == 784
    pixels = np.zeros((28, 28))
    pixels[table["row"], table["column"]] = table["value"]
    np.testing.assert_allclose(pixels, mnist.test_images[0].float().numpy() / 255.0, atol=1e-6)


def test_the_description_is_made_once_per_figure_object(monkeypatch):
    from simplecnn import plots

    made = []
    monkeypatch.setattr(charts, "describe_figure", lambda fig: made.append(fig) or f"chart {len(made)}")
    fig = plots.probability_bars(np.full(10, 0.1), [str(d) for d in range(10)])
    assert charts.cached_description(fig) == charts.cached_description(fig) == "chart 1"
    other = plots.probability_bars(np.full(10, 0.1), [str(d) for d in range(10)])  # equal, but a new object
    assert charts.cached_description(other) == "chart 2" and len(made) == 2
