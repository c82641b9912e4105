"""simplecnn.explain_plots: the figures carry the numbers they claim to draw."""
from __future__ import annotations

import numpy as np

from simplecnn import explain_plots


def test_attack_images_show_the_change_on_plus_minus_eps():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (28, 28))
    adv = np.clip(x + rng.choice([-0.1, 0.1], (28, 28)), 0, 1)
    fig = explain_plots.attack_images(x, adv, 0.1)
    original, attacked, change = fig.data
    np.testing.assert_allclose(original.z, x)
    np.testing.assert_allclose(attacked.z, adv)
    np.testing.assert_allclose(change.z, adv - x)
    assert (change.zmin, change.zmax) == (-0.1, 0.1)
    assert "×10" in fig.layout.annotations[2].text  # magnified ten times


def test_attribution_cells_are_scaled_to_their_own_largest_value_and_hover_the_raw_one():
    image = np.zeros((28, 28))
    image[10:18, 12:15] = 1.0
    signed_map = np.linspace(-2, 1, 784).reshape(28, 28)
    unsigned_map = np.linspace(0, 5, 784).reshape(28, 28)
    fig = explain_plots.attribution_grid(image, [{"a": signed_map, "b": unsigned_map}] * 2,
                                         {"a": True, "b": False}, row_titles=["one", "two"])
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 4 and len([t for t in fig.data if t.type == "contour"]) == 4
    np.testing.assert_allclose(heat[0].z, signed_map / 2)
    np.testing.assert_allclose(heat[0].customdata, signed_map)
    assert (heat[0].zmin, heat[0].zmax) == (-1.0, 1.0)
    np.testing.assert_allclose(heat[1].z, unsigned_map / 5)
    assert (heat[1].zmin, heat[1].zmax) == (0.0, 1.0)
    # rgb() colours: Streamlit drew the lowest stops of the named scale (and of hex lists) in pink
    assert all(colour.startswith("rgb(") for _, colour in heat[1].colorscale)
    assert heat[1].colorscale[0][1] == "rgb(0, 0, 4)"


def test_probe_curve_draws_other_answers_hollow():
    values = np.arange(-3, 4, 1.0)
    predicted = np.array([2, 7, 7, 7, 7, 1, 1])
    fig = explain_plots.probe_curve(values, np.linspace(0.1, 0.9, 7), predicted, 7, [str(c) for c in range(10)],
                                    current=1.0, label="Shift right", unit="px", readable=(-2.0, 1.0))
    symbols = fig.data[0].marker.symbol  # hollow by shape, not by a fill colour that a dark theme hides
    assert [s == "circle-open" for s in symbols] == [True, False, False, False, False, True, True]
    assert list(fig.data[0].customdata) == ["2", "7", "7", "7", "7", "1", "1"]
    shapes = fig.layout.shapes
    assert any(s.type == "rect" and (s.x0, s.x1) == (-2.0, 1.0) for s in shapes)
    assert any(s.type == "line" and s.x0 == s.x1 == 1.0 for s in shapes)


def test_robustness_curves_one_trace_per_model_and_attack():
    fig = explain_plots.robustness_curves([0, 0.1], {"A": {"FGSM": [1, 0.5], "PGD": [1, 0.2]},
                                                     "B": {"FGSM": [0.9, 0.6], "PGD": [0.9, 0.3]}})
    assert [t.name for t in fig.data] == ["FGSM · A", "PGD · A", "FGSM · B", "PGD · B"]
    np.testing.assert_allclose(fig.data[3].y, [0.9, 0.3])
