"""Plotly figures for lessons 8-14 (Adam, dropout, batch norm, overfitting, MNIST, layer walk)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..plots import (BLUE, COLORS, GREEN, MUTED, NEUTRAL, ORANGE, RIGHT_COLOR, SERIES_SYMBOLS, SEQUENTIAL,
                     VERMILLION, WRONG_COLOR, right_wrong)
from .adam_table import AdamStep, Bowl
from .regularization import BatchNormView, DropoutView, MonteCarloResult, TinyRun

GREY = NEUTRAL
RED = VERMILLION  # the backward pass and its gradients (Okabe-Ito vermillion, not a pure red)
RUN_COLOURS = COLORS[:4]  # runs also differ by marker symbol (RUN_SYMBOLS)
RUN_SYMBOLS = SERIES_SYMBOLS[:4]
# The backprop diagram's boxes: pale fills with dark text, readable on a light or a dark page.
FILL_INPUT, FILL_NODE, FILL_TARGET, FILL_LOSS = "#FFF7E6", "#EEF4FB", "#F2F2F2", "#FDE8E8"
BOX_LINE, BOX_TEXT, GRADIENT_TEXT = "#555555", "#222222", "#A34400"  # dark vermillion: 5:1 on the pale fills


def _compact(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def _hide_axes(fig: go.Figure) -> None:
    """Image-style subplots: no ticks or grid, row 0 at the top, square pixels."""
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="", showline=False,
                     constrain="domain")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="", showline=False,
                     autorange="reversed", constrain="domain")
    for axis in [a for a in fig.layout if a.startswith("yaxis")]:
        fig.layout[axis].scaleanchor = "x" + axis[len("yaxis"):]


# -- lesson 8 ----------------------------------------------------------------------------------------
def adam_path_figure(bowl: Bowl, rows: Sequence[AdamStep]) -> go.Figure:
    """Left: the loss curve with Adam's steps on it. Right: θ against the step number."""
    thetas = [rows[0].theta] + [r.theta_next for r in rows]
    lo, hi = min(thetas + [bowl.c]), max(thetas + [bowl.c])
    pad = max(0.5, 0.2 * (hi - lo))
    grid = torch.linspace(lo - pad, hi + pad, 200, dtype=torch.float64)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss curve and Adam's steps", "θ after each step"))
    fig.add_trace(go.Scatter(x=grid.numpy(), y=bowl(grid).numpy(), mode="lines", line=dict(color=GREY),
                             name="L(θ)", showlegend=False), 1, 1)
    losses = [float(bowl(torch.tensor(t, dtype=torch.float64))) for t in thetas]
    fig.add_trace(go.Scatter(x=thetas, y=losses, mode="lines+markers", marker=dict(color=ORANGE, size=8),
                             line=dict(color=ORANGE, dash="dot"), text=[f"t={i}" for i in range(len(thetas))],
                             name="Adam", showlegend=False), 1, 1)
    fig.add_trace(go.Scatter(x=list(range(len(thetas))), y=thetas, mode="lines+markers",
                             marker=dict(color=ORANGE), showlegend=False), 1, 2)
    fig.add_hline(y=bowl.c, line=dict(color=GREEN, dash="dash"), annotation_text="minimum (dashed)", row=1, col=2)
    fig.update_xaxes(title_text="θ", row=1, col=1)
    fig.update_yaxes(title_text="L(θ)", row=1, col=1)
    fig.update_xaxes(title_text="step t", row=1, col=2)
    return _compact(fig, 320)


# -- lesson 10 ---------------------------------------------------------------------------------------
def dropout_maps_figure(view: DropoutView, channel: int) -> go.Figure:
    """One channel of h, the mask, the training output and the eval output, side by side."""
    h = view.activations[0, channel].numpy()
    mask = view.scaled_mask[0, channel].numpy()
    train = view.train_output[0, channel].numpy()
    ev = view.eval_output[0, channel].numpy()
    top = float(max(np.abs(train).max(), np.abs(h).max(), 1e-6))
    titles = ("h", "mask (black = dropped)", "training output", "eval output")
    fig = make_subplots(rows=1, cols=4, subplot_titles=titles, horizontal_spacing=0.03)
    for col, (img, zmax, scale) in enumerate(((h, top, SEQUENTIAL), (mask, view.scale, "Greys_r"),
                                              (train, top, SEQUENTIAL), (ev, top, SEQUENTIAL)), start=1):
        fig.add_trace(go.Heatmap(z=img, zmin=0 if img.min() >= 0 else -zmax, zmax=zmax, colorscale=scale,
                                 showscale=col == 3, colorbar=dict(len=0.9, thickness=12),
                                 hovertemplate="row %{y}, col %{x}: %{z:.3f}<extra></extra>"), 1, col)
    _hide_axes(fig)
    return _compact(fig, 270)


def monte_carlo_figure(result: MonteCarloResult) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=result.counts, y=result.mean_abs_error, mode="lines+markers", name="measured",
                             line=dict(color=BLUE), marker=dict(symbol="circle")))
    if result.exact:
        fig.add_trace(go.Scatter(x=result.counts, y=result.exact, mode="lines+markers", name="exact expected value",
                                 line=dict(color=ORANGE, dash="dot"), marker=dict(symbol="diamond")))
    fig.add_trace(go.Scatter(x=result.counts, y=result.theory, mode="lines", name="large-K approximation ∝ 1/√K",
                             line=dict(color=GREY, dash="dash")))
    fig.update_xaxes(type="log", title_text="number of masks averaged, K")
    fig.update_yaxes(type="log", title_text="mean |average − eval output|")
    fig.update_layout(title="The average over masks approaches the eval output",
                      legend=dict(orientation="h", y=1.0, x=1, xanchor="right", yanchor="bottom"))
    return _compact(fig, 330)


# -- lesson 11 ---------------------------------------------------------------------------------------
def batch_norm_histograms(view: BatchNormView, channel: int) -> go.Figure:
    """Channel values before BN, after BN in training mode (batch stats) and in eval mode (running stats)."""
    before = view.inputs[:, channel].flatten().numpy()
    after_train = view.module_train[:, channel].flatten().numpy()
    after_eval = view.module_eval[:, channel].flatten().numpy()
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"conv1 output, channel {channel} (before BN)",
                                                        "after BN: y = γ·x̂ + β"))
    fig.add_trace(go.Histogram(x=before, nbinsx=60, marker_color=GREY, name="before", showlegend=False), 1, 1)
    fig.add_trace(go.Histogram(x=after_train, nbinsx=60, marker_color=BLUE, opacity=0.6,
                               name="train mode (batch stats)"), 1, 2)
    fig.add_trace(go.Histogram(x=after_eval, nbinsx=60, opacity=0.6, name="eval mode (running stats)",
                               marker=dict(color=ORANGE, pattern=dict(shape="/")), ), 1, 2)
    fig.update_layout(barmode="overlay", legend=dict(orientation="h", y=-0.18, x=1, xanchor="right"))
    fig.update_yaxes(title_text="count", row=1, col=1)
    return _compact(fig, 340)


# -- lesson 12 ---------------------------------------------------------------------------------------
def training_curves_figure(runs: Sequence[TinyRun]) -> go.Figure:
    """Training (solid) and validation (dashed) loss per epoch for each run; runs differ by colour and marker."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss (solid: training, dashed: validation)",
                                                        "accuracy % (solid: training, dashed: validation)"))
    for run, colour, symbol in zip(runs, RUN_COLOURS, RUN_SYMBOLS):
        for col, (tr, va) in enumerate(((run.train_loss, run.val_loss),
                                        (run.train_accuracy, run.val_accuracy)), start=1):
            fig.add_trace(go.Scatter(x=run.epochs, y=tr, mode="lines+markers", line=dict(color=colour),
                                     marker=dict(symbol=symbol, size=8),
                                     name=f"{run.label}: train", legendgroup=run.label, showlegend=col == 1), 1, col)
            fig.add_trace(go.Scatter(x=run.epochs, y=va, mode="lines+markers",
                                     line=dict(color=colour, dash="dash"), marker=dict(symbol=symbol, size=8),
                                     name=f"{run.label}: validation",
                                     legendgroup=run.label, showlegend=col == 1), 1, col)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return _compact(fig, 400)


# -- lesson 13 ---------------------------------------------------------------------------------------
def class_balance_figure(train_counts: Sequence[int], test_counts: Sequence[int],
                         classes: Sequence[str]) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Bar(x=list(classes), y=list(train_counts), name="training (60,000)", marker_color=BLUE,
                         text=[f"{c:,}" for c in train_counts], textposition="outside"))
    fig.add_trace(go.Bar(x=list(classes), y=list(test_counts), name="test (10,000)",
                         marker=dict(color=ORANGE, pattern=dict(shape="/")),
                         text=[f"{c:,}" for c in test_counts], textposition="outside"))
    even = sum(train_counts) / len(train_counts)
    fig.add_trace(go.Scatter(x=list(classes), y=[even] * len(classes), mode="lines",
                             line=dict(color=GREY, dash="dot"), name=f"even split ({even:,.0f} each)"))
    fig.update_layout(barmode="group", xaxis_title="digit", yaxis_title="images",
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
    fig.update_xaxes(type="category")
    return _compact(fig, 380)


def image_row_figure(images: np.ndarray, titles: Sequence[str], colorscale: str = "Greys",
                     height: int = 170, zmin: float | None = 0.0, zmax: float | None = None,
                     wrap: int | None = None) -> go.Figure:
    """Small heatmaps in a grid (row-major), one per image, each with a title."""
    n = len(images)
    cols = wrap or n
    rows = (n + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles), horizontal_spacing=0.01,
                        vertical_spacing=0.08 if rows > 1 else 0.0)
    for i, img in enumerate(images):
        fig.add_trace(go.Heatmap(z=img, colorscale=colorscale, showscale=False, zmin=zmin, zmax=zmax,
                                 hovertemplate="%{z:.3f}<extra></extra>"), i // cols + 1, i % cols + 1)
    _hide_axes(fig)
    fig.update_annotations(font_size=11)
    return _compact(fig, height * rows)


# -- lesson 14 ---------------------------------------------------------------------------------------
def softmax_bars_figure(probabilities: Sequence[float], classes: Sequence[str], true_label: int | None) -> go.Figure:
    """The softmax output, the prediction lit; with a true label, marked ✓ (right) or ✗ (wrong) as well."""
    best = int(np.argmax(probabilities))
    lit = BLUE if true_label is None else (RIGHT_COLOR if best == true_label else WRONG_COLOR)
    colours = [lit if i == best else MUTED for i in range(len(probabilities))]
    text = [f"{p:.1%}" for p in probabilities]
    title = f"softmax: predicted {classes[best]}"
    if true_label is not None:
        mark = right_wrong(best == true_label)
        text[best] = f"{mark} {text[best]}"
        title = f"{mark} {title} (true label {classes[true_label]})"
    fig = go.Figure(go.Bar(x=list(classes), y=list(probabilities), marker_color=colours, text=text,
                           textposition="outside"))
    fig.update_layout(title=title, yaxis=dict(range=[0, 1.15], title="probability"))
    fig.update_xaxes(type="category")
    return _compact(fig, 300)


def vector_figure(values: np.ndarray, title: str) -> go.Figure:
    """A long activation vector (e.g. fc1's 512 units) as a bar strip."""
    fig = go.Figure(go.Bar(y=values, marker_color=BLUE))
    fig.update_layout(title=title, xaxis_title="unit", yaxis_title="activation", bargap=0)
    return _compact(fig, 220)


# -- lesson 9 ----------------------------------------------------------------------------------------
def gradient_norms_figure(norms: dict[str, float]) -> go.Figure:
    """‖∂L/∂parameter‖ for every parameter tensor, input side at the top."""
    names = list(norms)
    values = [norms[n] for n in names]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=BLUE,
                           text=[f"{v:.3g}" for v in values], textposition="outside", cliponaxis=False))
    fig.update_yaxes(autorange="reversed")
    positive = [v for v in values if v > 0] or [1.0]
    lo, hi = np.log10(min(positive)) - 0.3, np.log10(max(positive)) + 0.6  # room for the labels
    fig.update_xaxes(type="log", title_text="gradient norm (log scale)", range=[lo, hi])
    fig.update_layout(title="Backprop reaches every parameter tensor")
    return _compact(fig, 30 * len(names) + 90)


def backprop_graph_figure(tr) -> go.Figure:
    """The neuron's graph: forward values in the boxes, gradients on red arrows running backwards.

    `tr` is a backprop.BackpropTrace. Drawn with plotly shapes so the text stays readable at any width.
    """
    g, loc = tr.grads, tr.local
    nodes = {  # name -> (x, y, text, fill)
        "x": (0.0, 2.0, f"<b>x</b> = {tr.x:.3g}<br><span style='color:{GRADIENT_TEXT}'>∂L/∂x = {g['x']:.4g}</span>", FILL_INPUT),
        "w": (0.0, 1.0, f"<b>w</b> = {tr.w:.3g}<br><span style='color:{GRADIENT_TEXT}'>∂L/∂w = {g['w']:.4g}</span>", FILL_INPUT),
        "b": (0.0, 0.0, f"<b>b</b> = {tr.b:.3g}<br><span style='color:{GRADIENT_TEXT}'>∂L/∂b = {g['b']:.4g}</span>", FILL_INPUT),
        "z": (1.9, 1.0, f"<b>z</b> = w·x + b<br>= {tr.z:.4g}", FILL_NODE),
        "a": (3.8, 1.0, f"<b>a</b> = σ(z)<br>= {tr.a:.4g}", FILL_NODE),
        "t": (5.7, 0.0, f"target <b>t</b> = {tr.t:.3g}", FILL_TARGET),
        "L": (5.7, 1.0, f"<b>L</b> = (a − t)²<br>= {tr.loss:.4g}", FILL_LOSS),
    }
    half_w, half_h = 0.5, 0.3
    fig = go.Figure()
    for name, (x, y, text, fill) in nodes.items():
        fig.add_shape(type="rect", x0=x - half_w, x1=x + half_w, y0=y - half_h, y1=y + half_h,
                      line=dict(color=BOX_LINE, width=1.5 if name == "L" else 1), fillcolor=fill, layer="below")
        fig.add_annotation(x=x, y=y, text=text, showarrow=False, font=dict(size=14, color=BOX_TEXT))

    def arrow(src: str, dst: str, colour: str, dy: float = 0.0, label: str = "") -> None:
        (x0, y0), (x1, y1) = nodes[src][:2], nodes[dst][:2]
        if x0 == x1:  # straight up into the node above
            start, end = (x0, y0 + half_h), (x1, y1 - half_h)
        else:
            start = (x0 + half_w if x1 > x0 else x0 - half_w, y0 + dy)
            end = (x1 - half_w if x1 > x0 else x1 + half_w, y1 + dy)
        fig.add_annotation(x=end[0], y=end[1], ax=start[0], ay=start[1], xref="x", yref="y", axref="x", ayref="y",
                           showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=1.6, arrowcolor=colour, text="")
        if label:
            fig.add_annotation(x=(start[0] + end[0]) / 2, y=(start[1] + end[1]) / 2 - 0.32, text=label,
                               showarrow=False, font=dict(size=13, color=colour))

    for src in ("x", "w", "b"):
        arrow(src, "z", GREY)
    arrow("z", "a", GREY, dy=0.12)
    arrow("a", "L", GREY, dy=0.12)
    arrow("t", "L", GREY)
    arrow("L", "a", RED, dy=-0.12, label=f"∂L/∂a = {loc['dL/da']:.4g}")
    arrow("a", "z", RED, dy=-0.12, label=f"× σ'(z) = {loc['da/dz']:.4g}<br>= ∂L/∂z = {g['z']:.4g}")
    fig.update_xaxes(visible=False, range=[-0.6, 6.3])
    fig.update_yaxes(visible=False, range=[-0.45, 2.4])
    fig.update_layout(showlegend=False, plot_bgcolor="rgba(0,0,0,0)", dragmode=False)  # the page's own background
    return _compact(fig, 330)


def receptive_field_figure(image: np.ndarray, boxes: Sequence[tuple[str, tuple[int, int, int, int], str]]) -> go.Figure:
    """The input digit with one rectangle per (label, (top, left, bottom, right), colour) receptive field.

    The rectangles also differ by dash (solid, dashed, dotted ...), named in the legend."""
    fig = go.Figure(go.Heatmap(z=image, colorscale="Greys", showscale=False,
                               hovertemplate="row %{y}, col %{x}: %{z:.2f}<extra></extra>"))
    for i, (label, (top, left, bottom, right), colour) in enumerate(boxes):
        dash = ("solid", "dash", "dot", "dashdot")[i % 4]
        fig.add_shape(type="rect", x0=left - 0.5, x1=right + 0.5, y0=top - 0.5, y1=bottom + 0.5,
                      line=dict(color=colour, width=3, dash=dash))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=colour, width=3, dash=dash),
                                 name=f"{label} ({dash if dash != 'dash' else 'dashed'})"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, range=[-0.5, image.shape[1] - 0.5])
    fig.update_layout(title="Receptive fields on the input", legend=dict(orientation="h", y=-0.05))
    return _compact(fig, 380)


def minibatch_noise_figure(results) -> go.Figure:
    """Left: cosine of every mini-batch gradient with the reference. Right: mean relative error, log-log,
    with a 1/√B line through the smallest batch size. `results` are minibatch.BatchNoise."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("cos(batch gradient, reference)",
                                                        "‖batch − reference‖ / ‖reference‖"))
    for r in results:
        fig.add_trace(go.Scatter(x=[r.batch_size] * len(r.cosines), y=r.cosines, mode="markers",
                                 marker=dict(color=BLUE, size=7, opacity=0.6), showlegend=False), 1, 1)
    sizes = [r.batch_size for r in results]
    means = [float(np.mean(r.relative_errors)) for r in results]
    fig.add_trace(go.Scatter(x=sizes, y=means, mode="lines+markers", name="measured", line=dict(color=ORANGE),
                             marker=dict(symbol="circle")), 1, 2)
    fig.add_trace(go.Scatter(x=sizes, y=[means[0] * (sizes[0] / s) ** 0.5 for s in sizes], mode="lines",
                             name="∝ 1/√B", line=dict(color=GREY, dash="dash")), 1, 2)
    fig.update_xaxes(type="log", title_text="batch size B")
    fig.update_yaxes(range=[-1.05, 1.05], row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    return _compact(fig, 340)
