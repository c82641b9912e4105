"""Plotly figure builders for the dashboard: one function per kind of chart, one shared look.

Every builder takes plain arrays (numpy, torch or lists), returns a `go.Figure`, and has a fixed
default height that the caller may override. Image-like plots draw row 0 at the top, as the
image is stored. No Streamlit here.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

if TYPE_CHECKING:  # plots take a History or its dict; importing it would pull in torch
    from .training import History

TEMPLATE = "plotly_white"

# -- colours ------------------------------------------------------------------------------------------
# One categorical palette for runs, series and classes: Okabe & Ito's "Color Universal Design" set
# (Okabe, M. & Ito, K., 2008, https://jfly.uni-koeln.de/color/), chosen to stay apart for readers
# with any of the common colour-vision deficiencies. Its black is replaced by a dark grey, #666666,
# which shows on Streamlit's light and dark backgrounds alike (5.7:1 and 3.2:1) and stays apart from
# the other seven under simulated deuteranopia (tests/test_plots.py; a lighter grey merges with the
# bluish green and the reddish purple); blue and vermillion come first because
# they are the pair that differ most for every reader (train/validation, before/after).
BLUE, VERMILLION, GREEN, PURPLE = "#0072B2", "#D55E00", "#009E73", "#CC79A7"
ORANGE, SKY_BLUE, YELLOW, GREY = "#E69F00", "#56B4E9", "#F0E442", "#666666"
COLORS = (BLUE, VERMILLION, GREEN, PURPLE, ORANGE, SKY_BLUE, YELLOW, GREY)
TRAIN_COLOR, VAL_COLOR = BLUE, VERMILLION
TRAIN_DASH, VAL_DASH = "solid", "dash"  # the second cue: colour never tells train from validation alone
TRAIN_SYMBOL, VAL_SYMBOL = "circle", "diamond"
# Ten classes, eight colours: classes 8 and 9 reuse the first two colours, so every class also has
# its own marker symbol, and 8 and 9 are drawn dashed. Legends and hovers name the class as well.
CLASS_COLORS = COLORS + COLORS[:2]
CLASS_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "star",
                 "pentagon", "hexagram")
CLASS_DASHES = ("solid",) * 8 + ("dash", "dash")
# Several series (runs, optimizers): colour, dash and marker all change together.
SERIES_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot", "solid", "dash")
SERIES_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "star")
# Reference lines and keys: the palette's grey, 3:1 or more on the light and the dark background.
NEUTRAL = GREY
MUTED = "#A3ACB5"  # unhighlighted bars: lighter than any palette colour on white, the values are printed
# Right and wrong always carry a mark as well as a colour.
RIGHT_MARK, WRONG_MARK = "✓", "✗"
RIGHT_COLOR, WRONG_COLOR = BLUE, VERMILLION
# Sequential data (counts, activations, |attributions|): perceptually uniform, readable in greyscale.
SEQUENTIAL = "Viridis"
# Signed data (weights, filters, signed maps): blue below zero, white at zero, orange above. Both arms
# get darker at the same rate, so the size of a value reads from lightness alone (no red/green).
DIVERGING = [[0.0, "#053061"], [0.1, "#1B5A9C"], [0.25, "#4A90C7"], [0.4, "#A6CDE6"], [0.5, "#F7F7F7"],
             [0.6, "#F9CB95"], [0.75, "#EC8C35"], [0.9, "#B85410"], [1.0, "#6B2F04"]]
# Transparent where the saliency is low, through Inferno's red and orange to its pale yellow at the top.
HOT_OVERLAY = [[0.0, "rgba(188,55,84,0)"], [0.15, "rgba(188,55,84,0.2)"], [0.5, "rgba(249,142,9,0.75)"],
               [1.0, "rgba(252,255,164,1)"]]


def right_wrong(correct: bool) -> str:
    """The mark for a right (✓) or wrong (✗) answer, for labels that also change colour."""
    return RIGHT_MARK if correct else WRONG_MARK


def _array(values: Any) -> np.ndarray:
    """numpy view of a numpy array, torch tensor (any device) or nested list."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _image2d(img: Any) -> np.ndarray:
    """(28, 28), (1, 28, 28) or (1, 1, 28, 28) -> (28, 28)."""
    arr = _array(img)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"Expected a single 2-D image, got shape {arr.shape}.")
    return arr


# The parts of the template our figures use. plotly validates a template on every figure, and the
# whole of plotly_white (defaults for 3-D scenes, maps, polar plots and 24 trace types) took 6 of the
# ~10 ms a small figure costs to build; this subset takes ~1.5 ms and looks the same on our charts.
TEMPLATE_LAYOUT_KEYS = ("autotypenumbers", "colorway", "font", "hovermode", "hoverlabel", "paper_bgcolor",
                        "plot_bgcolor", "coloraxis", "xaxis", "yaxis", "title")
TEMPLATE_TRACE_TYPES = ("bar", "heatmap")


@functools.lru_cache(maxsize=1)
def _template() -> dict:
    """The template as plain data, trimmed to what these figures use (see TEMPLATE_LAYOUT_KEYS)."""
    full = pio.templates[TEMPLATE].to_plotly_json()
    return {"layout": {k: v for k, v in full["layout"].items() if k in TEMPLATE_LAYOUT_KEYS},
            "data": {k: v for k, v in full["data"].items() if k in TEMPLATE_TRACE_TYPES}}


def _base_layout(height: int, title: str | None = None, **layout: Any) -> dict:
    """The shared look: white template, small margins, left-aligned title."""
    base = dict(template=_template(), height=height, font=dict(size=12),
                margin=dict(l=50, r=20, t=60 if title else 30, b=40))
    if title:
        base["title"] = dict(text=title, x=0.01, xanchor="left", font=dict(size=16))
    base.update(layout)
    return base


def _style(fig: go.Figure, height: int, title: str | None = None, **layout: Any) -> go.Figure:
    base = _base_layout(height, title, **layout)
    fig.layout.template = base.pop("template")  # assigned, not merged: update_layout would walk it
    fig.update_layout(**base)
    return fig


def _empty_note(fig: go.Figure, text: str, xref: str = "paper", yref: str = "paper") -> None:
    fig.add_annotation(text=text, xref=xref, yref=yref, x=0.5, y=0.5, showarrow=False,
                       font=dict(size=15))  # the theme's text colour, light or dark


# -- training curves -------------------------------------------------------------------------------

def _history_dict(history: "History | dict | None") -> dict:
    if history is None:
        return {}
    if hasattr(history, "to_dict"):
        return history.to_dict()
    return dict(history)


def epoch_end_steps(history: "History | dict", batches_per_epoch: int | None = None) -> list[float]:
    """The optimizer step at which each finished epoch ended, for placing epoch points on a step axis.

    Uses, in order: the argument, a `batches_per_epoch` field of the history, a "step" key in the
    epoch records, and otherwise infers it from the logged steps (the trainer always logs the last
    batch of an epoch, and every `log_every`-th batch within one).
    """
    h = _history_dict(history)
    epochs = h.get("epochs") or []
    if not epochs:
        return []
    bpe = batches_per_epoch or h.get("batches_per_epoch")
    if bpe:
        return [float(e["epoch"] * bpe) for e in epochs]
    if all("step" in e for e in epochs):
        return [float(e["step"]) for e in epochs]
    bpe = _infer_batches_per_epoch(list(h.get("steps") or []), len(epochs), h.get("status", ""))
    return [float(e["epoch"] * bpe) for e in epochs]


def _infer_batches_per_epoch(steps: list[int], finished_epochs: int, status: str) -> float:
    """Best guess of batches per epoch from the logged steps alone (see epoch_end_steps)."""
    if not steps:
        return 1.0  # nothing logged per batch: epoch points fall at x = epoch
    last, n = steps[-1], finished_epochs
    if status == "finished" and last % n == 0:
        return last // n
    logged = set(steps)
    every = steps[0]  # first log is at min(log_every, batches_per_epoch)
    candidates = sorted(b for b in logged if b * n in logged and b * n <= last < b * (n + 1))
    for b in candidates:
        expected = [k * b + j for k in range(n + 1) for j in list(range(every, b, every)) + [b]]
        if [s for s in expected if s <= last] == steps:
            return b
    return candidates[0] if candidates else last / n


def _epoch_values(epochs: list[dict], key: str, xs: Sequence[float]) -> tuple[list, list, list]:
    """(x, y, epoch numbers) for the epochs where `key` has a value (validation may be off)."""
    rows = [(x, e[key], e["epoch"]) for x, e in zip(xs, epochs) if e.get(key) is not None]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def training_curves(history: "History | dict | None", other_runs: Sequence[tuple] | None = None,
                    label: str = "This run", batches_per_epoch: int | None = None,
                    height: int = 400, title: str | None = None) -> go.Figure:
    """Loss over optimizer steps (left) and accuracy per epoch (right), for one run or several.

    `history` may be live or partial. `other_runs` is a list of (label, history) or
    (label, history, batches_per_epoch) to overlay, each run in its own colour with one legend
    entry (the figure grows by a legend line per run); with a single run, colours tell training
    from validation instead. Epoch-level losses are epoch means, drawn at the step the epoch ended.
    """
    runs = [(label, _history_dict(history), batches_per_epoch)]
    for entry in other_runs or ():
        runs.append((entry[0], _history_dict(entry[1]), entry[2] if len(entry) > 2 else None))
    multi = len(runs) > 1
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.09)
    has_batches = has_epochs = False
    for i, (run_label, h, bpe) in enumerate(runs):
        first_trace = len(fig.data)
        has_batches |= _add_batch_losses(fig, h, run_label, i, multi)
        has_epochs |= _add_epoch_curves(fig, h, bpe, run_label, i, multi)
        run_traces = fig.data[first_trace:]
        if multi and run_traces:  # one legend entry per run: its training curve if it has one
            for trace in run_traces:
                trace.update(showlegend=False, legendgroup=f"run{i}")
            shown = next((t for t in run_traces if ": train" in t.name), run_traces[-1])
            shown.update(showlegend=True, name=run_label)
    if multi:  # key to the line styles, in neutral grey (own groups, so they lie in one row);
        # each run has its own colour and marker symbol, train and validation their own dash
        for k, (name, dash, width) in enumerate((("train (epoch mean)", TRAIN_DASH, 2.5),
                                                 ("validation", VAL_DASH, 2.5),
                                                 ("batch loss, smoothed", "solid", 1.5))):
            fig.add_trace(go.Scatter(
                x=[None], y=[None], mode="lines", name=name, line=dict(color=NEUTRAL, dash=dash, width=width),
                legendgroup=f"style{k}", hoverinfo="skip"), row=1, col=1)
    for col in (1, 2):  # keeps both panels' axes drawn while they have no data
        fig.add_trace(go.Scatter(x=[], y=[], showlegend=False, hoverinfo="skip", name=""), row=1, col=col)
    fig.update_xaxes(title_text="Optimizer step", row=1, col=1, rangemode="tozero")
    fig.update_yaxes(title_text="Cross-entropy loss", row=1, col=1, rangemode="tozero")
    fig.update_xaxes(title_text="Epoch", row=1, col=2, dtick=1 if has_epochs else None)
    fig.update_yaxes(title_text="Accuracy (%)", row=1, col=2)
    if not has_batches and not has_epochs:
        _empty_note(fig, "No training yet", "x domain", "y domain")
        fig.update_xaxes(showticklabels=False, row=1, col=1)
        fig.update_yaxes(showticklabels=False, row=1, col=1)
    if not has_epochs:
        _empty_note(fig, "Accuracy appears<br>after the first epoch", "x2 domain", "y2 domain")
        fig.update_xaxes(showticklabels=False, row=1, col=2)
        fig.update_yaxes(showticklabels=False, row=1, col=2)
    # Legend under the plots at a fixed distance in pixels; one line per overlaid run plus the key.
    legend_rows = 1 + (len(runs) if multi else 0)
    bottom = 62 + 22 * legend_rows
    height = height + (22 * len(runs) if multi else 0)
    top = 60 if title else 30
    _style(fig, height, title, legend=dict(orientation="h", yanchor="top", x=0, font=dict(size=11),
                                           y=-56 / max(height - top - bottom, 1)))
    fig.update_layout(margin=dict(b=bottom))
    return fig


def _add_batch_losses(fig: go.Figure, h: dict, run_label: str, index: int, multi: bool) -> bool:
    """Raw batch loss (faint) and its moving average on the loss panel; False when none logged."""
    steps, losses = h.get("steps") or [], h.get("batch_losses") or []
    if not (steps and losses):
        return False
    prefix = f"{run_label}: " if multi else ""
    color = COLORS[index % len(COLORS)] if multi else TRAIN_COLOR
    # Several runs: a few of the run's marker symbols on its smoothed curve tell the runs apart
    # without colour (maxdisplayed keeps them sparse on thousands of points).
    run_marks = dict(mode="lines+markers", marker=dict(symbol=SERIES_SYMBOLS[index % len(SERIES_SYMBOLS)],
                                                       size=7, maxdisplayed=8)) if multi else dict(mode="lines")
    fig.add_trace(go.Scatter(
        x=steps, y=losses, mode="lines", name=f"{prefix}batch loss", showlegend=False,
        line=dict(color=color, width=1), opacity=0.25, legendgroup=f"run{index}-batch",
        hovertemplate="step %{x}<br>batch loss %{y:.3f}<extra></extra>"), row=1, col=1)
    smoothed = h.get("smoothed_losses") or []
    if smoothed:
        fig.add_trace(go.Scatter(
            x=steps, y=smoothed, name=f"{prefix}batch loss (smoothed)", **run_marks,
            line=dict(color=color, width=1.5), legendgroup=f"run{index}-batch",
            hovertemplate="step %{x}<br>smoothed loss %{y:.3f}<extra></extra>"), row=1, col=1)
    return True


def _add_epoch_curves(fig: go.Figure, h: dict, bpe: int | None, run_label: str, index: int,
                      multi: bool) -> bool:
    """Train/validation loss at epoch ends (left) and accuracy per epoch (right); False if no epochs."""
    epochs = h.get("epochs") or []
    if not epochs:
        return False
    prefix = f"{run_label}: " if multi else ""
    ends = epoch_end_steps(h, bpe)
    numbers = [e["epoch"] for e in epochs]
    for split, dash, symbol in (("train", TRAIN_DASH, TRAIN_SYMBOL), ("val", VAL_DASH, VAL_SYMBOL)):
        color = COLORS[index % len(COLORS)] if multi else (TRAIN_COLOR if split == "train" else VAL_COLOR)
        if multi:  # runs differ by colour and symbol; the dash still tells train from validation
            symbol = SERIES_SYMBOLS[index % len(SERIES_SYMBOLS)]
        name = prefix + ("train (epoch mean)" if split == "train" else "validation")
        style = dict(mode="lines+markers", line=dict(color=color, width=2.5, dash=dash),
                     marker=dict(size=8, symbol=symbol), legendgroup=f"run{index}-{split}")
        x, y, nums = _epoch_values(epochs, f"{split}_loss", ends)
        if y:
            fig.add_trace(go.Scatter(
                x=x, y=y, customdata=nums, name=name, **style,
                hovertemplate=f"{name}<br>epoch %{{customdata}}<br>mean loss %{{y:.3f}}<extra></extra>"),
                row=1, col=1)
        x, y, _ = _epoch_values(epochs, f"{split}_accuracy", numbers)
        if y:
            fig.add_trace(go.Scatter(
                x=x, y=y, name=name, showlegend=False, **style,
                hovertemplate=f"{name}<br>epoch %{{x}}<br>accuracy %{{y:.2f}}%<extra></extra>"),
                row=1, col=2)
    return True


# -- evaluation ------------------------------------------------------------------------------------

def confusion_matrix(confusion: Any, classes: Sequence[str], height: int = 480,
                     title: str | None = None) -> go.Figure:
    """Counts per (true row, predicted column), written in each cell.

    Colours follow the square root of the count so that the few mistakes off the diagonal are
    visible next to the large diagonal; the colour bar shows the real counts.
    """
    z = _array(confusion)
    names = [str(c) for c in classes]
    # The sequential map sampled at sqrt-spaced stops: colour(t) = SEQUENTIAL(sqrt(t)).
    stops = np.linspace(0.0, 1.0, 11)
    colorscale = [[float(t), c] for t, c in zip(stops, sample_colorscale(SEQUENTIAL, list(np.sqrt(stops))))]
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, colorscale=colorscale, zmin=0, texttemplate="%{z}",
        textfont=dict(size=11), xgap=1, ygap=1, colorbar=dict(title=dict(text="images"), thickness=12),
        hovertemplate="true %{y}, predicted %{x}: %{z} images<extra></extra>"))
    fig.update_xaxes(title_text="Predicted class", type="category", side="bottom", showgrid=False)
    fig.update_yaxes(title_text="True class", type="category", autorange="reversed", showgrid=False)
    return _style(fig, height, title)


def bar_per_class(values: Any, classes: Sequence[str], title: str | None = None,
                  y_title: str = "", height: int = 320, value_format: str = ".1f",
                  reference: float | None = None, reference_label: str = "") -> go.Figure:
    """One bar per class with its value on top (per-class accuracy, class counts, ...).

    `reference` draws a dashed horizontal line, e.g. the overall accuracy or an even class share.
    """
    y = _array(values).astype(float)
    fig = go.Figure(go.Bar(
        x=[str(c) for c in classes], y=y, marker_color=TRAIN_COLOR,
        text=["" if np.isnan(v) else format(v, value_format) for v in y],
        textposition="outside", cliponaxis=False,
        hovertemplate=f"%{{x}}: %{{y:{value_format}}}<extra></extra>"))
    if reference is not None:
        fig.add_hline(y=reference, line=dict(color=NEUTRAL, dash="dash", width=1), layer="below",
                      annotation_text=f"{reference_label} {reference:{value_format}}".strip(),
                      annotation_position="right", annotation_font=dict(size=11))
    fig.update_xaxes(type="category", title_text="Class")
    fig.update_yaxes(title_text=y_title, rangemode="tozero")
    fig = _style(fig, height, title)
    if reference is not None:
        fig.update_layout(margin=dict(r=90))
    return fig


# -- predictions -----------------------------------------------------------------------------------

def probability_bars(probs: Any, classes: Sequence[str], highlight: int | None = None,
                     height: int = 300, title: str | None = None, true: int | None = None) -> go.Figure:
    """Softmax output as bars from 0 to 100 %, the predicted (or `highlight`) class coloured.

    With the `true` class known, the highlighted bar is marked ✓ (right) or ✗ (wrong) as well as
    coloured, and a wrong answer's true class is labelled "true", so no reader depends on the colour.
    """
    p = _array(probs).astype(float).reshape(-1)
    chosen = int(np.argmax(p)) if highlight is None else int(highlight)
    lit = TRAIN_COLOR if true is None else (RIGHT_COLOR if chosen == true else WRONG_COLOR)
    colors = [lit if i == chosen else MUTED for i in range(len(p))]
    text = [f"{v:.1%}" if v >= 0.0005 else "" for v in p]
    if true is not None:
        text[chosen] = f"{right_wrong(chosen == true)} {p[chosen]:.1%}"
        if chosen != true:
            text[true] = f"true {text[true] or f'{p[true]:.1%}'}"
    fig = go.Figure(go.Bar(
        x=[str(c) for c in classes], y=p, marker_color=colors, text=text,
        textposition="outside", cliponaxis=False, textfont=dict(size=11),
        hovertemplate="%{x}: %{y:.2%}<extra></extra>"))
    fig.update_xaxes(type="category", title_text="Class")
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title_text="Probability")
    fig = _style(fig, height, title)
    fig.update_layout(margin=dict(t=70 if title else 35))  # room for the label over a 100 % bar
    return fig


def probabilities_over_epochs(probs: Any, classes: Sequence[str], highlight: int | None = None,
                              epochs: Sequence[int] | None = None, height: int = 320,
                              title: str | None = None) -> go.Figure:
    """Each class's probability for one image after every epoch; `highlight` (e.g. the true class) bold."""
    p = _array(probs).astype(float)
    if p.size == 0:
        p = np.zeros((0, len(classes)))
    elif p.ndim == 1:  # a single epoch
        p = p[None]
    fig = go.Figure()
    if p.shape[0] == 0:
        _empty_note(fig, "No epochs yet")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return _style(fig, height, title)
    xs = list(epochs) if epochs is not None else list(range(1, p.shape[0] + 1))
    for c, name in enumerate(classes):
        strong = highlight is None or c == highlight
        fig.add_trace(go.Scatter(
            x=xs, y=p[:, c], mode="lines+markers", name=str(name),
            line=dict(color=CLASS_COLORS[c % len(CLASS_COLORS)], width=3.5 if (highlight == c) else 1.5,
                      dash=CLASS_DASHES[c % len(CLASS_DASHES)]),
            marker=dict(size=8 if strong else 6, symbol=CLASS_SYMBOLS[c % len(CLASS_SYMBOLS)]),
            opacity=1.0 if strong else 0.35,
            hovertemplate=f"class {name}<br>epoch %{{x}}<br>%{{y:.1%}}<extra></extra>"))
    fig.update_xaxes(title_text="Epoch", dtick=1 if len(xs) <= 20 else None)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text="Probability")
    fig = _style(fig, height, title, legend=dict(orientation="h", yanchor="top", y=-0.25, x=0,
                                                 title=dict(text="class ")))
    fig.update_layout(margin=dict(b=80))
    return fig


# -- images ----------------------------------------------------------------------------------------

def digit_image(img: Any, title: str | None = None, show_values: bool = False,
                height: int | None = None, colorscale: str = "gray",
                value_format: str | None = None) -> go.Figure:
    """One image as a heatmap, row 0 at the top; `show_values` writes every pixel's number in it."""
    z = _image2d(img).astype(float)
    if value_format is None:
        value_format = ".0f" if np.allclose(z, np.round(z)) else ".1f"
    fig = go.Figure(go.Heatmap(
        z=z, colorscale=colorscale, showscale=show_values,
        texttemplate=f"%{{z:{value_format}}}" if show_values else None,
        textfont=dict(size=8) if show_values else None,
        hovertemplate="row %{y}, column %{x}<br>value %{z:.3f}<extra></extra>"))
    fig.update_xaxes(showticklabels=show_values, showgrid=False, zeroline=False, dtick=4, side="top",
                     constrain="domain")
    fig.update_yaxes(showticklabels=show_values, showgrid=False, zeroline=False, dtick=4,
                     autorange="reversed", scaleanchor="x", constrain="domain")
    fig = _style(fig, height or (640 if show_values else 300), title)
    fig.update_layout(margin=dict(l=10, r=10, t=60 if title else 10, b=10))
    return fig


def saliency_overlay(image: Any, saliency: Any, title: str | None = None,
                     height: int = 320) -> go.Figure:
    """The digit in dim grey under the saliency map in see-through red-to-yellow."""
    base = _image2d(image).astype(float)
    sal = _image2d(saliency).astype(float)
    top = float(sal.max()) if sal.size and sal.max() > 0 else 1.0
    fig = go.Figure([
        go.Heatmap(z=base, colorscale=[[0, "black"], [1, "rgb(150,150,150)"]], showscale=False,
                   hoverinfo="skip"),
        go.Heatmap(z=sal, colorscale=HOT_OVERLAY, zmin=0, zmax=top, name="saliency",
                   colorbar=dict(title=dict(text="|gradient|"), thickness=12),
                   hovertemplate="row %{y}, column %{x}<br>saliency %{z:.3g}<extra></extra>"),
    ])
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    fig = _style(fig, height, title)
    fig.update_layout(margin=dict(l=10, r=10, t=60 if title else 10, b=10))
    return fig


def image_grid(images: Any, titles: Sequence[str] | None = None, cols: int = 8,
               colorscale: str | list = "gray", zmid: float | None = None,
               shared_scale: bool = True, show_scale: bool | None = None,
               height: int | None = None, title: str | None = None) -> go.Figure:
    """A grid of small heatmaps, one per image (feature maps, filters), row 0 of each at the top.

    `shared_scale` puts all images on one colour range (compare strengths across maps) with a
    single colour bar; otherwise each image uses its own range (see each map's pattern).
    `zmid` centres the colour scale, e.g. zmid=0 with a diverging scale for weights.
    The layout is built directly rather than with make_subplots, which is ~10x slower for 64 cells.
    """
    arr = _array(images).astype(float)
    if arr.ndim == 4 and arr.shape[0] == 1:  # (1, C, H, W) activations of one image
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"Expected images shaped (N, H, W), got {arr.shape}.")
    n = arr.shape[0]
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    # Sizes in pixels, converted to paper fractions of the plotting area below.
    top_px = 50 if title else 10
    label_px = 15 if titles is not None else 0  # room above each cell for its title
    gap_px = 6
    height = height or (top_px + 10 + rows * (62 + label_px + gap_px))
    plot_px = max(height - top_px - 10, 1)
    gap_x = 0.012
    width = (1 - gap_x * (cols - 1)) / cols
    row_step = 1 / rows  # each row: label, cell, gap
    label_frac, gap_frac = label_px / plot_px, gap_px / plot_px
    cell_h = max(row_step - label_frac - gap_frac, 0.01)
    show_scale = shared_scale if show_scale is None else show_scale

    layout = _base_layout(height, title, showlegend=False, annotations=[],
                          margin=dict(l=10, r=10, t=top_px, b=10))
    if shared_scale:
        lo, hi = (float(np.nanmin(arr)), float(np.nanmax(arr))) if arr.size else (0.0, 1.0)
        if zmid is not None:
            reach = max(abs(hi - zmid), abs(lo - zmid)) or 1.0
            lo, hi = zmid - reach, zmid + reach
        layout["coloraxis"] = dict(colorscale=colorscale, cmin=lo, cmax=hi, showscale=show_scale,
                                   colorbar=dict(thickness=10, len=0.8))
    data = []
    for i in range(n):
        r, c = divmod(i, cols)
        suffix = "" if i == 0 else str(i + 1)
        x0 = c * (width + gap_x)
        y1 = 1 - r * row_step - label_frac
        layout[f"xaxis{suffix}"] = dict(domain=[x0, x0 + width], anchor=f"y{suffix}", visible=False,
                                        constrain="domain")
        layout[f"yaxis{suffix}"] = dict(domain=[y1 - cell_h, y1], anchor=f"x{suffix}", visible=False,
                                        autorange="reversed", scaleanchor=f"x{suffix}", constrain="domain")
        label = titles[i] if titles is not None else f"#{i}"
        trace = dict(type="heatmap", z=arr[i], xaxis=f"x{suffix}", yaxis=f"y{suffix}", name=str(label),
                     hovertemplate=f"{label}<br>row %{{y}}, column %{{x}}<br>%{{z:.3f}}<extra></extra>")
        if shared_scale:
            trace["coloraxis"] = "coloraxis"
        else:
            trace.update(colorscale=colorscale, showscale=False, zmid=zmid)
        data.append(trace)
        if titles is not None:
            layout["annotations"].append(dict(
                text=str(titles[i]), x=x0 + width / 2, y=y1, xref="paper", yref="paper",
                xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=10)))
    return go.Figure(data=data, layout=layout)
