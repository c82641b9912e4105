"""Plotly figures of a run's layer health (the dict `simplecnn.health.read_health` returns).

Three kinds: the update-to-weight ratio per layer on a log axis, the dead-ReLU fraction per ReLU,
and a layer's weight or gradient-size histograms over time as a heatmap (step across, bins up).
Lines differ by marker and dash as well as by colour. No Streamlit here.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .plots import COLORS, _empty_note, _style

MARKERS = ("circle", "square", "diamond", "triangle-up")
DASHES = ("solid", "dash", "dot", "dashdot")
RULE_OF_THUMB = 1e-3  # the often-quoted healthy update-to-weight ratio
BAND = (1e-4, 1e-2)  # a decade either side of it, shaded
HEATMAP_SCALE = "Viridis"  # sequential, readable in grey and with the common colour-vision deficiencies
LAYER_TITLES = {"conv1": "conv1 (5×5, 1→32)", "conv2": "conv2 (5×5, 32→64)", "fc1": "fc1 (1024→512)",
                "fc2": "fc2 (512→10)"}
RELU_TITLES = {"relu1": "relu1 (after conv1: 32 channels)", "relu2": "relu2 (after conv2: 64 channels)",
               "relu3": "relu3 (after fc1: 512 units)"}


def _steps(health: dict | None) -> list[int]:
    return [s["step"] for s in (health or {}).get("samples", [])]


def _epoch_hover(health: dict) -> list[str]:
    per_epoch = health.get("batches_per_epoch") or 0
    return [f"epoch {s / per_epoch:.2f}" if per_epoch else "" for s in _steps(health)]


def update_ratio_figure(health: dict | None, height: int = 340) -> go.Figure:
    """‖ΔW‖ / ‖W‖ of each sampled step, per layer, on a log axis, with the ~1e-3 rule of thumb marked."""
    fig = go.Figure()
    steps = _steps(health)
    for i, name in enumerate((health or {}).get("layers", [])):
        ratios = [s["update_ratio"].get(name) for s in health["samples"]]
        ratios = [r if r is not None and r > 0 else None for r in ratios]  # log axis: 0 is not drawable
        fig.add_trace(go.Scatter(
            x=steps, y=ratios, name=name, mode="lines+markers", customdata=_epoch_hover(health),
            line=dict(color=COLORS[i % len(COLORS)], dash=DASHES[i % len(DASHES)], width=2),
            marker=dict(symbol=MARKERS[i % len(MARKERS)], size=7),
            hovertemplate=f"{name}<br>step %{{x}} (%{{customdata}})<br>‖ΔW‖/‖W‖ = %{{y:.2e}}<extra></extra>"))
    fig.add_hrect(y0=BAND[0], y1=BAND[1], fillcolor=COLORS[2], opacity=0.10, line_width=0, layer="below")
    fig.add_hline(y=RULE_OF_THUMB, line=dict(color=COLORS[7], dash="dot", width=1.5))
    # On a log axis an annotation's y is log10 of the value (add_hline's own label would land at 10^0.001).
    fig.add_annotation(x=0, xref="paper", y=np.log10(RULE_OF_THUMB), yref="y", showarrow=False,
                       text="1e-3: the usual rule of thumb", xanchor="left", yanchor="bottom",
                       font=dict(size=11, color=COLORS[7]))
    if not steps:
        _empty_note(fig, "No samples yet: the first is taken on the first training step.")
    return _style(fig, height, "How much one step changes each layer: ‖ΔW‖ / ‖W‖",
                  xaxis=dict(title="training step"), yaxis=dict(title="update / weight (log)", type="log",
                                                                 exponentformat="power"),
                  legend=dict(orientation="h", y=-0.25))


def dead_relu_figure(health: dict | None, height: int = 320) -> go.Figure:
    """Per ReLU, the share of its units (channels, or fc1's neurons) silent for every image of the batch."""
    fig = go.Figure()
    steps = _steps(health)
    for i, name in enumerate((health or {}).get("relus", [])):
        dead = [100 * s["dead_relu"][name] if name in s["dead_relu"] else None for s in health["samples"]]
        fig.add_trace(go.Scatter(
            x=steps, y=dead, name=RELU_TITLES.get(name, name), mode="lines+markers",
            customdata=_epoch_hover(health),
            # relu1 follows conv1, relu2 conv2, relu3 fc1: each takes its layer's colour, dash and marker
            line=dict(color=COLORS[i % len(COLORS)], dash=DASHES[i % len(DASHES)], width=2),
            marker=dict(symbol=MARKERS[i % len(MARKERS)], size=7),
            hovertemplate=f"{name}<br>step %{{x}} (%{{customdata}})<br>%{{y:.1f}}% never fired<extra></extra>"))
    if not steps:
        _empty_note(fig, "No samples yet.")
    return _style(fig, height, "ReLUs that never fired on the sampled batch",
                  xaxis=dict(title="training step"), yaxis=dict(title="% of units", range=[-3, 103]),
                  legend=dict(orientation="h", y=-0.25))


def _bin_rows(edges: list[float]) -> tuple[np.ndarray, list[str]]:
    """y positions (bin centres, the two outer bins one width beyond) and hover labels of len(edges)+1 bins."""
    edges_a = np.asarray(edges, dtype=float)
    width = edges_a[1] - edges_a[0]
    centres = np.concatenate([[edges_a[0] - width / 2], (edges_a[:-1] + edges_a[1:]) / 2,
                              [edges_a[-1] + width / 2]])
    labels = ([f"below {edges_a[0]:.3g}"] + [f"{a:.3g} to {b:.3g}" for a, b in zip(edges_a[:-1], edges_a[1:])]
              + [f"above {edges_a[-1]:.3g}"])
    return centres, labels


def histogram_heatmaps(health: dict | None, kind: str = "weights", height: int = 560) -> go.Figure:
    """One heatmap per layer: share of the layer's weights (or gradient sizes, log10 |g|) in each fixed
    bin, at each sampled step. kind is "weights" or "grads"."""
    if kind not in ("weights", "grads"):
        raise ValueError(f"kind must be 'weights' or 'grads' (got {kind!r})")
    layers = (health or {}).get("layers", [])
    titles = [LAYER_TITLES.get(name, name) for name in layers] or [""]
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, horizontal_spacing=0.12, vertical_spacing=0.16)
    steps = _steps(health)
    for i, name in enumerate(layers):
        row, col = i // 2 + 1, i % 2 + 1
        edges = health["weight_edges"][name] if kind == "weights" else health["grad_edges"]
        centres, labels = _bin_rows(edges)
        columns = []
        for s in health["samples"]:
            counts = s[kind].get(name)
            total = sum(counts) if counts else 0
            columns.append(np.asarray(counts, dtype=float) / total if total else np.full(len(centres), np.nan))
        z = np.stack(columns, axis=1) if columns else np.zeros((len(centres), 0))  # (bins, samples)
        fig.add_trace(go.Heatmap(
            x=steps, y=centres, z=z, coloraxis="coloraxis", name=name,
            customdata=np.repeat(np.asarray(labels, dtype=object)[:, None], max(len(steps), 1), axis=1),
            hovertemplate=f"{name}<br>step %{{x}}<br>%{{customdata}}<br>%{{z:.1%}} of them<extra></extra>"),
            row=row, col=col)
        fig.update_yaxes(title_text="weight" if kind == "weights" else "log10 |gradient|", row=row, col=col,
                         title_standoff=2)
        fig.update_xaxes(title_text="training step" if row == 2 else None, row=row, col=col)
    if not steps:
        _empty_note(fig, "No samples yet.")
    what = "Weights" if kind == "weights" else "Gradient sizes"
    return _style(fig, height, f"{what} of each layer over training (share of the layer in each bin)",
                  coloraxis=dict(colorscale=HEATMAP_SCALE, cmin=0, colorbar=dict(title="share", tickformat=".0%")))


def latest_numbers(health: dict | None) -> dict | None:
    """The newest sample's headline numbers: step, update ratio per layer, dead share per ReLU, and the
    share of each layer's weights outside the histogram's range (beyond ±4 initial bounds)."""
    samples = (health or {}).get("samples") or []
    if not samples:
        return None
    last = samples[-1]
    outside = {name: (counts[0] + counts[-1]) / sum(counts) if sum(counts) else 0.0
               for name, counts in last["weights"].items()}
    return {"step": last["step"], "update_ratio": dict(last["update_ratio"]), "dead_relu": dict(last["dead_relu"]),
            "weights_outside": outside}
