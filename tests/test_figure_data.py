"""figure_data: the table read back from a builder's figure holds exactly the numbers the builder was
given (compared with those inputs, not with the figure), panels and series named, and the CSV the
same table again."""
import io

import numpy as np
import pandas as pd
import pytest

from simplecnn import explain_plots, plots
from simplecnn.figure_data import (GRID, MAX_ROWS, POINTS, describe_figure, figure_tables, panel_titles,
                                   table_csv)
from simplecnn.lessons import figures_a, figures_b

CLASSES = [str(d) for d in range(10)]
RNG = np.random.default_rng(11)


def grid_of(frame: pd.DataFrame, h: int, w: int, column: str = "value") -> np.ndarray:
    """A long (row, column, value) table back into an (h, w) array, checking every cell is there once."""
    assert len(frame) == h * w and not frame[["row", "column"]].duplicated().any()
    out = np.full((h, w), np.nan)
    out[frame["row"].to_numpy(), frame["column"].to_numpy()] = frame[column].to_numpy()
    return out


def history(steps, losses, epochs):
    """A History-shaped dict: batch losses at `steps`, and per-epoch (train, val) loss and accuracy."""
    return {"steps": list(steps), "batch_losses": list(losses), "smoothed_losses": [], "epochs": [
        {"epoch": i + 1, "train_loss": tl, "val_loss": vl, "train_accuracy": ta, "val_accuracy": va,
         "step": steps[-1] * (i + 1) // len(epochs)} for i, (tl, vl, ta, va) in enumerate(epochs)]}


def test_confusion_matrix_cells_are_the_counts_with_class_labels():
    counts = RNG.integers(0, 1000, size=(10, 10))
    table = figure_tables(plots.confusion_matrix(counts, CLASSES))
    assert list(table) == [GRID]
    grid = table[GRID]
    assert grid_of(grid, 10, 10).tolist() == counts.tolist()  # row = true class, column = predicted
    assert (grid["True class"] == grid["row"].astype(str)).all()
    assert (grid["Predicted class"] == grid["column"].astype(str)).all()


def test_probability_bars_one_row_per_class_with_its_probability():
    p = RNG.dirichlet(np.ones(10))
    table = figure_tables(plots.probability_bars(p, CLASSES))[POINTS]
    assert table["Class"].tolist() == CLASSES
    np.testing.assert_allclose(table["Probability"].to_numpy(dtype=float), p)


def test_bar_per_class_leaves_the_reference_line_out_of_the_data():
    acc = RNG.uniform(80, 100, size=10)
    table = figure_tables(plots.bar_per_class(acc, CLASSES, y_title="Accuracy (%)", reference=91.0))[POINTS]
    assert len(table) == 10 and table["Class"].tolist() == CLASSES
    np.testing.assert_allclose(table["Accuracy (%)"].to_numpy(dtype=float), acc)


def test_training_curves_rows_per_panel_and_series_without_the_legend_keys():
    steps, losses = [10, 20, 30, 40], [2.3, 1.1, 0.7, 0.5]
    epochs = [(1.2, 1.0, 70.0, 72.5), (0.6, 0.55, 85.0, 86.0)]
    mine, other = history(steps, losses, epochs), history([5, 10], [2.0, 1.5], [(1.4, 1.3, 60.0, 61.0)])
    table = figure_tables(plots.training_curves(mine, other_runs=[("B", other)], label="A"))[POINTS]
    assert set(table["panel"]) == {"Loss", "Accuracy"}
    batch = table[table["series"] == "A: batch loss"]
    assert batch["x"].tolist() == steps and batch["y"].tolist() == losses and set(batch["panel"]) == {"Loss"}
    val_acc = table[(table["series"] == "A: validation") & (table["panel"] == "Accuracy")]
    assert val_acc["x"].tolist() == [1, 2] and val_acc["y"].tolist() == [72.5, 86.0]
    # The legend entry renamed to the run alone still reads as its full series name.
    train_loss = table[(table["series"] == "A: train (epoch mean)") & (table["panel"] == "Loss")]
    assert train_loss["y"].tolist() == [1.2, 0.6]
    assert table[table["series"] == "B: validation"]["y"].tolist() == [1.3, 61.0]
    # The key to the line styles (x = [None]) and the empty axis holders carry no data.
    assert not table["series"].isin(["train (epoch mean)", "validation", "batch loss, smoothed", ""]).any()
    assert len(table) == 4 + 2 * 4 + 2 + 4  # A: 4 batches, 2 epochs x (train, val) x (loss, acc); B: 2 + 4


def test_probabilities_over_epochs_one_series_per_class():
    p = RNG.dirichlet(np.ones(10), size=3)  # (epochs, classes)
    table = figure_tables(plots.probabilities_over_epochs(p, CLASSES, highlight=3))[POINTS]
    for c in range(10):
        rows = table[table["series"] == f"class {c}"]  # the hover label names it in full
        assert rows["Epoch"].tolist() == [1, 2, 3]
        np.testing.assert_allclose(rows["Probability"].to_numpy(dtype=float), p[:, c])


def test_digit_image_is_its_pixels_row_zero_first():
    img = RNG.uniform(size=(28, 28))
    table = figure_tables(plots.digit_image(img))[GRID]
    assert list(table.columns) == ["row", "column", "value"]
    assert table.iloc[0][["row", "column"]].tolist() == [0, 0] and table.iloc[27]["column"] == 27
    np.testing.assert_array_equal(grid_of(table, 28, 28), img)


def test_saliency_overlay_has_the_digit_and_the_saliency():
    img, sal = RNG.uniform(size=(28, 28)), RNG.uniform(size=(28, 28))
    table = figure_tables(plots.saliency_overlay(img, sal))[GRID]
    np.testing.assert_array_equal(grid_of(table[table["series"] == "saliency"], 28, 28), sal)
    np.testing.assert_array_equal(grid_of(table[table["series"] == "series 1"], 28, 28), img)


def test_image_grid_panels_are_the_titles():
    maps = RNG.normal(size=(11, 5, 5))
    titles = [f"filter {i}" for i in range(11)]
    fig = plots.image_grid(maps, titles=titles, cols=4, colorscale=plots.DIVERGING, zmid=0.0)
    table = figure_tables(fig)[GRID]
    assert list(dict.fromkeys(table["panel"])) == titles
    for i, title in enumerate(titles):
        np.testing.assert_array_equal(grid_of(table[table["panel"] == title], 5, 5), maps[i])


def test_subplot_grid_rows_of_lesson_figures():
    images = RNG.uniform(size=(6, 4, 4))
    titles = [f"map {i}" for i in range(6)]
    fig = figures_b.image_row_figure(images, titles, wrap=3)
    assert sorted(panel_titles(fig).values()) == sorted(titles)
    table = figure_tables(fig)[GRID]
    for i, title in enumerate(titles):
        np.testing.assert_array_equal(grid_of(table[table["panel"] == title], 4, 4), images[i])


def test_attribution_grid_row_and_column_titles_raw_values_and_no_outlines():
    x = RNG.uniform(size=(28, 28))
    rows = [{"Saliency": RNG.uniform(size=(28, 28)), "IG": RNG.normal(size=(28, 28))} for _ in range(2)]
    fig = explain_plots.attribution_grid(x, rows, {"IG": True}, row_titles=["trained", "random"])
    table = figure_tables(fig)[GRID]
    assert list(dict.fromkeys(table["panel"])) == ["trained · Saliency", "trained · IG", "random · Saliency",
                                                   "random · IG"]
    assert len(table) == 4 * 784  # the digit's outline contour drawn on each map is not data
    cell = table[table["panel"] == "random · IG"]
    np.testing.assert_allclose(grid_of(cell, 28, 28, "hover_value"), rows[1]["IG"])  # the raw attribution
    np.testing.assert_allclose(grid_of(cell, 28, 28), rows[1]["IG"] / np.abs(rows[1]["IG"]).max())


def test_grouped_bars_and_lines_of_class_balance():
    train, test = list(RNG.integers(5000, 7000, size=10)), list(RNG.integers(800, 1200, size=10))
    table = figure_tables(figures_b.class_balance_figure(train, test, CLASSES))[POINTS]
    assert table[table["series"] == "training (60,000)"]["images"].tolist() == train
    assert table[table["series"] == "test (10,000)"]["images"].tolist() == test
    even = table[table["series"].str.startswith("even split")]["images"]
    np.testing.assert_allclose(even.to_numpy(dtype=float), np.full(10, sum(train) / 10))


def test_histograms_list_the_values_they_count():
    class View:  # the three tensors batch_norm_histograms reads, shaped (N, C, H, W)
        import torch
        inputs = torch.randn(4, 2, 3, 3)
        module_train = torch.randn(4, 2, 3, 3)
        module_eval = torch.randn(4, 2, 3, 3)

    table = figure_tables(figures_b.batch_norm_histograms(View, 1))[POINTS]
    before = table[table["series"] == "before"]
    np.testing.assert_allclose(before["value"].to_numpy(dtype=float), View.inputs[:, 1].flatten().numpy())
    assert set(before["panel"]) == {"conv1 output, channel 1 (before BN)"}
    assert (table["series"] == "eval mode (running stats)").sum() == 36


def test_contour_surface_keeps_its_coordinates():
    xs, ys = np.linspace(-2, 2, 7), np.linspace(-1, 1, 5)
    z = xs[None, :] ** 2 + 3 * ys[:, None] ** 2  # (5, 7)
    path = np.array([[1.5, 0.8], [1.0, 0.5], [0.5, 0.2]])
    fig = figures_a.optimizer_contour(xs, ys, z, {"SGD": path}, upto=2)
    tables = figure_tables(fig)
    grid = tables[GRID]
    np.testing.assert_allclose(grid_of(grid, 5, 7), z)
    np.testing.assert_allclose(grid["x"].to_numpy(dtype=float), xs[grid["column"]])
    np.testing.assert_allclose(grid["y"].to_numpy(dtype=float), ys[grid["row"]])
    sgd = tables[POINTS][tables[POINTS]["series"] == "SGD"]
    np.testing.assert_allclose(sgd[["x", "y"]].to_numpy(dtype=float), path)


def test_csv_is_the_same_table():
    p = RNG.dirichlet(np.ones(10))
    before = RNG.dirichlet(np.ones(10))
    table = figure_tables(explain_plots.probability_change(before, p, CLASSES))[POINTS]
    back = pd.read_csv(io.BytesIO(table_csv(table)), dtype={"Class": str})
    assert list(back.columns) == list(table.columns)
    np.testing.assert_allclose(back[back["series"] == "after"]["Probability"], p)
    np.testing.assert_allclose(back[back["series"] == "before"]["Probability"], before)


def test_the_row_bound_is_checked_before_building():
    big = np.zeros((MAX_ROWS // 784 + 1, 28, 28))
    with pytest.raises(ValueError, match="more than"):
        figure_tables(plots.image_grid(big, cols=64))
    assert figure_tables(plots.image_grid(big[:3]), max_rows=3 * 784)[GRID].shape[0] == 3 * 784


def test_description_names_the_chart_and_stays_the_same_as_a_live_chart_grows():
    epochs = [(1.2, 1.0, 70.0, 72.5)]
    early = plots.training_curves(history([10, 20], [2.3, 1.1], epochs), title="My run")
    later = plots.training_curves(history([10, 20, 30, 40], [2.3, 1.1, 0.7, 0.5], epochs * 1), title="My run")
    text = describe_figure(early)
    assert text == describe_figure(later)
    for part in ("My run", "line/point chart", "Loss", "Accuracy", "validation", "Optimizer step", "Epoch"):
        assert part in text, part
    grid_text = describe_figure(plots.image_grid(np.zeros((3, 2, 2)), titles=["a", "b", "c"]))
    assert "3 heatmaps of 2×2 cells" in grid_text and "panels: a, b, c" in grid_text
    assert "a heatmap of 28×28 cells" in describe_figure(plots.digit_image(np.zeros((28, 28))))
