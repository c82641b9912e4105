"""Plotly figures for lessons 1-7: pixel grids with their values, kernels, maps with a highlighted window,
activation and loss curves, probability bars, and optimizer paths over a contour plot.

Only drawing happens here; every number drawn is computed by the lesson modules.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..plots import (BLUE, COLORS, DIVERGING, GREEN, GREY, NEUTRAL, ORANGE, PURPLE, SERIES_DASHES, SERIES_SYMBOLS,
                     SEQUENTIAL, VERMILLION, YELLOW)

# Each optimizer keeps one colour, dash and marker in every lesson (the palette is plots.COLORS).
OPTIMIZER_COLOURS = {"Batch GD": BLUE, "SGD": GREY, "Momentum": ORANGE, "Adagrad": GREEN, "RMSProp": PURPLE,
                     "Adam": VERMILLION}
OPTIMIZER_DASHES = {name: SERIES_DASHES[i] for i, name in enumerate(OPTIMIZER_COLOURS)}
OPTIMIZER_SYMBOLS = {name: SERIES_SYMBOLS[i] for i, name in enumerate(OPTIMIZER_COLOURS)}
HIGHLIGHT = VERMILLION  # boxes and the one bar a lesson points at (bars also get a hatch)
BAR = BLUE


def _image_axes(fig: go.Figure, row: int | None = None, col: int | None = None) -> None:
    """Row 0 at the top, square pixels, integer ticks."""
    kw = {} if row is None else {"row": row, "col": col}
    fig.update_yaxes(autorange="reversed", scaleanchor="x" if row is None else None, **kw)
    fig.update_xaxes(constrain="domain", **kw)


def _box(top: int, left: int, height: int, width: int, colour: str = HIGHLIGHT, **kw) -> dict:
    """A rectangle around cells [top, top+height) x [left, left+width) of a heatmap."""
    return dict(type="rect", x0=left - 0.5, x1=left + width - 0.5, y0=top - 0.5, y1=top + height - 0.5,
                line=dict(color=colour, width=3), **kw)


def value_grid(values: np.ndarray, title: str = "", fmt: str = ".2f", colorscale: str | list = "gray",
               zmin: float | None = None, zmax: float | None = None, text_size: int = 9,
               height: int = 520, box: tuple[int, int, int, int] | None = None,
               show_text: bool = True) -> go.Figure:
    """A 2-D array as a heatmap with each cell's value written on it (row 0 at the top)."""
    values = np.asarray(values, dtype=np.float64)
    heat = go.Heatmap(z=values, colorscale=colorscale, zmin=zmin, zmax=zmax,
                      texttemplate=f"%{{z:{fmt}}}" if show_text else None,
                      textfont={"size": text_size}, hovertemplate="row %{y}, col %{x}: %{z}<extra></extra>",
                      colorbar=dict(thickness=12))
    fig = go.Figure(heat)
    if box is not None:
        fig.add_shape(_box(*box))
    _image_axes(fig)
    if max(values.shape) <= 10:  # small grids: a tick on every row and column
        fig.update_xaxes(dtick=1)
        fig.update_yaxes(dtick=1)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    return fig


def kernel_grid(kernel: np.ndarray, title: str = "", fmt: str = ".2f", height: int = 300) -> go.Figure:
    """A kernel (or products) with the blue-white-orange scale centred on zero: sign is what matters."""
    kernel = np.asarray(kernel, dtype=np.float64)
    bound = float(np.abs(kernel).max()) or 1.0
    return value_grid(kernel, title, fmt, colorscale=DIVERGING, zmin=-bound, zmax=bound, text_size=12,
                      height=height)


def maps_side_by_side(maps: dict[str, np.ndarray], height: int = 380, colorscale: str | list = SEQUENTIAL,
                      boxes: dict[str, tuple[int, int, int, int]] | None = None,
                      shared_scale: bool = True) -> go.Figure:
    """Several 2-D maps next to each other with one colour scale, optional highlight box per map."""
    names = list(maps)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.06)
    lo = min(float(np.nanmin(m)) for m in maps.values()) if shared_scale else None
    hi = max(float(np.nanmax(m)) for m in maps.values()) if shared_scale else None
    for i, name in enumerate(names, start=1):
        fig.add_trace(go.Heatmap(z=maps[name], colorscale=colorscale, zmin=lo, zmax=hi,
                                 showscale=(i == len(names)), colorbar=dict(thickness=12),
                                 hovertemplate=f"{name}<br>row %{{y}}, col %{{x}}: %{{z:.3f}}<extra></extra>"),
                      row=1, col=i)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{i if i > 1 else ''}", row=1, col=i)
        fig.update_xaxes(constrain="domain", row=1, col=i)
        if boxes and name in boxes:
            fig.add_shape(_box(*boxes[name]), row=1, col=i)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def filter_bank(filters: np.ndarray, columns: int = 8, highlight: int | None = None,
                height: int = 420) -> go.Figure:
    """A stack of (F, k, k) filters tiled into one heatmap (one shared zero-centred scale), numbered.

    One trace with NaN gaps between tiles draws ~30x faster than a subplot per filter.
    """
    filters = np.asarray(filters, dtype=np.float64)
    count, k = len(filters), filters.shape[-1]
    rows = int(np.ceil(count / columns))
    cell = k + 1  # one NaN row/column between tiles
    mosaic = np.full((rows * cell - 1, columns * cell - 1), np.nan)
    for i, f in enumerate(filters):
        r, c = divmod(i, columns)
        mosaic[r * cell: r * cell + k, c * cell: c * cell + k] = f
    bound = float(np.abs(filters).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=mosaic, colorscale=DIVERGING, zmin=-bound, zmax=bound, colorbar=dict(thickness=12),
                               hoverongaps=False, hovertemplate="%{z:.3f}<extra></extra>"))
    labels = [dict(x=(i % columns) * cell + (k - 1) / 2, y=(i // columns) * cell - 0.5, text=str(i),
                   showarrow=False, yshift=7, font=dict(size=10)) for i in range(count)]
    fig.update_layout(annotations=labels)  # one call: add_annotation per label validates the layout each time
    if highlight is not None:
        r, c = divmod(highlight, columns)
        fig.add_shape(_box(r * cell, c * cell, k, k))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor="x")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=20, b=10), plot_bgcolor="rgba(0,0,0,0)")
    return fig


def curves(x: np.ndarray, lines: dict[str, np.ndarray], title: str = "", x_title: str = "x",
           y_title: str = "", height: int = 360, y_range: Sequence[float] | None = None,
           markers: dict[str, tuple[float, float]] | None = None, log_y: bool = False,
           colours: dict[str, str] | None = None, log_x: bool = False) -> go.Figure:
    """Line plot of several named curves over the same x; optional labelled points and fixed colours.

    Each curve also has its own dash pattern and a few markers of its own symbol, so the curves differ
    without colour. log_x spreads out small x (e.g. probabilities near 0, where a confident mistake lives)."""
    fig = go.Figure()
    for i, (name, y) in enumerate(lines.items()):
        colour = (colours or {}).get(name) or COLORS[i % len(COLORS)]
        optimizer = colours is OPTIMIZER_COLOURS and name in OPTIMIZER_COLOURS  # the optimizer's own style
        dash = OPTIMIZER_DASHES[name] if optimizer else SERIES_DASHES[i % len(SERIES_DASHES)]
        symbol = OPTIMIZER_SYMBOLS[name] if optimizer else SERIES_SYMBOLS[i % len(SERIES_SYMBOLS)]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, line=dict(color=colour, dash=dash),
                                 marker=dict(color=colour, symbol=symbol, size=7, maxdisplayed=10)))
    for name, (px, py) in (markers or {}).items():
        fig.add_trace(go.Scatter(x=[px], y=[py], mode="markers+text", name=name, text=[name],
                                 textposition="top center", marker=dict(size=10, color=NEUTRAL), showlegend=False))
    fig.update_layout(title=title, height=height, xaxis_title=x_title, yaxis_title=y_title,
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      legend=dict(orientation="h", y=-0.2))
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    if log_y:
        fig.update_yaxes(type="log", exponentformat="power")
    if log_x:
        fig.update_xaxes(type="log", exponentformat="power")
    return fig


def probability_bars(labels: Sequence[str], probabilities: np.ndarray, title: str = "",
                     highlight: int | None = None, height: int = 320) -> go.Figure:
    """Bars of a probability vector with the values printed; one bar can be highlighted (colour and hatch)."""
    colours = [HIGHLIGHT if i == highlight else BAR for i in range(len(labels))]
    hatch = ["/" if i == highlight else "" for i in range(len(labels))]
    fig = go.Figure(go.Bar(x=list(labels), y=probabilities, marker=dict(color=colours, pattern=dict(shape=hatch)),
                           text=[f"{p:.3f}" for p in probabilities], textposition="outside"))
    fig.update_layout(title=title, height=height, yaxis=dict(range=[0, 1.12], title="probability"),
                      xaxis=dict(type="category"),
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    return fig


def bar_values(labels: Sequence[str], values: Sequence[float], title: str = "", height: int = 300,
               y_title: str = "") -> go.Figure:
    """Signed bars (e.g. per-channel sums), positive orange, negative blue (as the DIVERGING map); the
    sign also shows as the bar's direction."""
    values = np.asarray(values, dtype=np.float64)
    colours = [ORANGE if v >= 0 else BLUE for v in values]
    fig = go.Figure(go.Bar(x=list(labels), y=values, marker_color=colours))
    fig.update_layout(title=title, height=height, yaxis_title=y_title, xaxis=dict(type="category"),
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    return fig


def optimizer_contour(xs: np.ndarray, ys: np.ndarray, z: np.ndarray, paths: dict[str, np.ndarray],
                      upto: int, log_levels: bool = False, minima: Sequence[Sequence[float]] = (),
                      height: int = 560) -> go.Figure:
    """Contours of the loss surface with each optimizer's path drawn up to step `upto`."""
    shown = np.log1p(z - z.min()) if log_levels else z
    fig = go.Figure(go.Contour(x=xs, y=ys, z=shown, colorscale="Greys", reversescale=True, ncontours=30,
                               showscale=False, opacity=0.55, contours=dict(coloring="heatmap"),
                               hoverinfo="skip", line=dict(width=0.5)))
    for name, path in paths.items():
        part = path[: upto + 1]
        colour = OPTIMIZER_COLOURS.get(name)
        fig.add_trace(go.Scatter(x=part[:, 0], y=part[:, 1], mode="lines+markers", name=name,
                                 line=dict(color=colour, width=2, dash=OPTIMIZER_DASHES.get(name)),
                                 marker=dict(size=5, color=colour, symbol=OPTIMIZER_SYMBOLS.get(name))))
        last = np.flatnonzero(np.all(np.isfinite(part), axis=1))
        if len(last):
            end = part[last[-1]]
            fig.add_trace(go.Scatter(x=[end[0]], y=[end[1]], mode="markers", showlegend=False,
                                     marker=dict(size=12, color=colour, symbol=OPTIMIZER_SYMBOLS.get(name),
                                                 line=dict(color="white", width=2)),
                                     hovertemplate=f"{name} at step {last[-1]}: (%{{x:.3f}}, %{{y:.3f}})<extra></extra>"))
    start = next(iter(paths.values()))[0]
    fig.add_trace(go.Scatter(x=[start[0]], y=[start[1]], mode="markers+text", text=["start"],
                             textposition="top center", showlegend=False,
                             marker=dict(size=12, symbol="x", color="black")))
    if len(minima):
        fig.add_trace(go.Scatter(x=[m[0] for m in minima], y=[m[1] for m in minima], mode="markers", name="minimum",
                                 marker=dict(size=14, symbol="star", color=YELLOW, line=dict(color="black", width=1))))
    fig.update_xaxes(range=[xs[0], xs[-1]], title="x")
    fig.update_yaxes(range=[ys[0], ys[-1]], title="y")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10),
                      legend=dict(orientation="h", y=-0.12))
    return fig
