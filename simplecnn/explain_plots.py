"""Plotly figures for the Explain page: attacked images, attribution maps, robustness and probe curves.

Kept apart from `plots.py` (the general dashboard charts) so that module stays small; the shared
look (template, colours) comes from there. Builders take plain arrays and return a `go.Figure`;
images draw row 0 at the top, as stored. No Streamlit here.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import get_colorscale, hex_to_rgb

from .plots import (CLASS_COLORS, COLORS, DIVERGING, MUTED, NEUTRAL, SERIES_SYMBOLS, SKY_BLUE, TRAIN_COLOR, _array,
                    _base_layout, _image2d, _style)

# Unsigned maps: Inferno (perceptually uniform), black (nothing) through red to yellow (most). Spelled
# out as rgb() colours: in the browser, Streamlit drew the lowest values of the named "Inferno" scale (and of its hex list) in pink.
HEAT = [[stop, "rgb({}, {}, {})".format(*hex_to_rgb(colour))] for stop, colour in get_colorscale("Inferno")]
OUTLINE = SKY_BLUE  # the digit's outline drawn over attribution maps (the palette's sky blue)
METHOD_COLORS = {"FGSM": COLORS[1], "PGD": COLORS[0]}  # vermillion and blue: apart for every reader
METHOD_SYMBOLS = {"FGSM": "circle", "PGD": "square"}
MODEL_DASHES = ("solid", "dash", "dot", "dashdot")


def _cell_layout(rows: int, cols: int, height: int, col_titles: Sequence[str] | None = None,
                 row_titles: Sequence[str] | None = None, title: str | None = None,
                 left_px: int = 0) -> tuple[dict, list[list[tuple[str, str]]]]:
    """Layout of a rows×cols grid of square image cells, built directly (make_subplots is slow),
    and the (xaxis, yaxis) names of every cell."""
    top_px = (40 if title else 8) + (18 if col_titles else 0)
    layout = _base_layout(height, title, showlegend=False, annotations=[],
                          margin=dict(l=10 + left_px, r=10, t=top_px, b=8))
    gap_x, gap_y = 0.02, 0.03
    width = (1 - gap_x * (cols - 1)) / cols
    cell_h = (1 - gap_y * (rows - 1)) / rows
    names = []
    for r in range(rows):
        row = []
        for c in range(cols):
            i = r * cols + c
            suffix = "" if i == 0 else str(i + 1)
            x0, y1 = c * (width + gap_x), 1 - r * (cell_h + gap_y)
            layout[f"xaxis{suffix}"] = dict(domain=[x0, x0 + width], anchor=f"y{suffix}", visible=False,
                                            constrain="domain")
            layout[f"yaxis{suffix}"] = dict(domain=[y1 - cell_h, y1], anchor=f"x{suffix}", visible=False,
                                            autorange="reversed", scaleanchor=f"x{suffix}", constrain="domain")
            row.append((f"x{suffix}", f"y{suffix}"))
            if r == 0 and col_titles:
                layout["annotations"].append(dict(text=str(col_titles[c]), x=x0 + width / 2, y=1.0, xref="paper",
                                                  yref="paper", xanchor="center", yanchor="bottom",
                                                  showarrow=False, font=dict(size=12)))
        if row_titles:
            layout["annotations"].append(dict(text=str(row_titles[r]), x=0, y=y1 - cell_h / 2, xref="paper",
                                              yref="paper", xanchor="right", yanchor="middle", xshift=-6,
                                              showarrow=False, font=dict(size=11)))
        names.append(row)
    return layout, names


def _heatmap(z: np.ndarray, axes: tuple[str, str], colorscale, zmin: float, zmax: float, name: str,
             value_format: str = ".3f", customdata: np.ndarray | None = None) -> dict:
    trace = dict(type="heatmap", z=z, xaxis=axes[0], yaxis=axes[1], colorscale=colorscale, zmin=zmin, zmax=zmax,
                 showscale=False, name=name,
                 hovertemplate=f"{name}<br>row %{{y}}, column %{{x}}<br>%{{z:{value_format}}}<extra></extra>")
    if customdata is not None:
        trace["customdata"] = customdata
        trace["hovertemplate"] = (f"{name}<br>row %{{y}}, column %{{x}}<br>%{{customdata:{value_format}}}"
                                  f"<extra></extra>")
    return trace


def _outline(image: np.ndarray, axes: tuple[str, str]) -> dict:
    """The digit's outline (ink level 0.5) as contour lines, so a map can be read against the strokes."""
    return dict(type="contour", z=image, xaxis=axes[0], yaxis=axes[1], showscale=False, hoverinfo="skip",
                contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
                line=dict(color=OUTLINE, width=1.2))


def attack_images(original: Any, perturbed: Any, epsilon: float, height: int = 260,
                  titles: Sequence[str] | None = None) -> go.Figure:
    """Original | attacked | perturbation magnified: the change drawn on ±ε, so it fills the colour scale."""
    x, adv = _image2d(original).astype(float), _image2d(perturbed).astype(float)
    delta = adv - x
    reach = max(float(epsilon), float(np.abs(delta).max()), 1e-6)
    titles = titles or ("Original", "Attacked", f"Change ×{1 / reach:.0f} (orange +, blue −)")
    layout, axes = _cell_layout(1, 3, height, col_titles=titles)
    data = [_heatmap(x, axes[0][0], "gray", 0.0, 1.0, "original"),
            _heatmap(adv, axes[0][1], "gray", 0.0, 1.0, "attacked"),
            _heatmap(delta, axes[0][2], DIVERGING, -reach, reach, "change")]
    return go.Figure(data=data, layout=layout)


def probability_change(before: Any, after: Any, classes: Sequence[str], height: int = 260,
                       title: str | None = None) -> go.Figure:
    """The model's probabilities before (grey, plain) and after (blue, hatched) a change of the image."""
    b, a = _array(before).astype(float).reshape(-1), _array(after).astype(float).reshape(-1)
    names = [str(c) for c in classes]
    fig = go.Figure([
        go.Bar(x=names, y=b, name="before", marker_color=MUTED, hovertemplate="%{x}: %{y:.2%} before<extra></extra>"),
        go.Bar(x=names, y=a, name="after", marker=dict(color=TRAIN_COLOR, pattern=dict(shape="/", solidity=0.3)),
               text=[f"{v:.0%}" if v >= 0.005 else "" for v in a], textposition="outside", cliponaxis=False,
               textfont=dict(size=10), hovertemplate="%{x}: %{y:.2%} after<extra></extra>"),
    ])
    fig.update_xaxes(type="category", title_text="Class")
    fig.update_yaxes(range=[0, 1.08], tickformat=".0%", title_text="Probability")
    fig = _style(fig, height, title, barmode="group", bargap=0.25,
                 legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    fig.update_layout(margin=dict(t=40 if not title else 70))
    return fig


def _normalised(z: np.ndarray, signed: bool) -> np.ndarray:
    """A map divided by its largest |value| (so every map uses its whole colour scale); zeros stay 0."""
    top = float(np.abs(z).max()) if z.size else 0.0
    out = z / top if top > 0 else np.zeros_like(z)
    return out if signed else np.abs(out)


def attribution_maps(image: Any, maps: Mapping[str, Any], signed: Mapping[str, bool], height: int = 270,
                     titles: Sequence[str] | None = None) -> go.Figure:
    """One row of attribution maps for the same image, each scaled to its own largest value, with the
    digit's outline on top. Signed maps: blue (−) white orange (+); unsigned: black to yellow."""
    grid_figure = attribution_grid(image, [dict(maps)], signed, row_titles=None, height=height,
                                   col_titles=titles or list(maps))
    return grid_figure


def attribution_grid(image: Any, rows: Sequence[Mapping[str, Any]], signed: Mapping[str, bool],
                     row_titles: Sequence[str] | None, height: int | None = None,
                     col_titles: Sequence[str] | None = None, title: str | None = None) -> go.Figure:
    """Rows of maps (e.g. one per randomisation stage) × the same methods in every row.

    Hover shows each pixel's raw attribution; colours show it relative to that map's largest |value|.
    """
    x = _image2d(image).astype(float)
    methods = list(rows[0])
    n_rows, n_cols = len(rows), len(methods)
    height = height or (40 + 150 * n_rows)
    layout, axes = _cell_layout(n_rows, n_cols, height, col_titles=col_titles or methods, row_titles=row_titles,
                                title=title, left_px=120 if row_titles else 0)
    data = []
    for r, row in enumerate(rows):
        for c, method in enumerate(methods):
            z = _image2d(row[method]).astype(float)
            is_signed = bool(signed.get(method, False))
            data.append(_heatmap(_normalised(z, is_signed), axes[r][c], DIVERGING if is_signed else HEAT,
                                 -1.0 if is_signed else 0.0, 1.0, method, value_format=".3g", customdata=z))
            data.append(_outline(x, axes[r][c]))
    return go.Figure(data=data, layout=layout)


def robustness_curves(epsilons: Sequence[float], curves: Mapping[str, Mapping[str, Sequence[float]]],
                      height: int = 320, title: str | None = None) -> go.Figure:
    """Accuracy under attack against ε: one colour and marker per attack, one dash pattern per model.

    `curves`: model label -> {"FGSM": accuracies, "PGD": accuracies}, accuracies in [0, 1].
    """
    eps = _array(epsilons).astype(float)
    fig = go.Figure()
    for m, (model, by_method) in enumerate(curves.items()):
        for method, acc in by_method.items():
            fig.add_trace(go.Scatter(
                x=eps, y=_array(acc).astype(float), mode="lines+markers", name=f"{method} · {model}",
                line=dict(color=METHOD_COLORS.get(method, COLORS[m]), dash=MODEL_DASHES[m % len(MODEL_DASHES)]),
                marker=dict(symbol=METHOD_SYMBOLS.get(method, SERIES_SYMBOLS[m % len(SERIES_SYMBOLS)]), size=7),
                hovertemplate=f"{method} on {model}<br>ε %{{x:.3f}}<br>accuracy %{{y:.1%}}<extra></extra>"))
    fig.add_hline(y=0.5, line=dict(color=NEUTRAL, dash="dot", width=1))
    fig.update_xaxes(title_text="ε (largest change of any pixel, 0–1)")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text="Accuracy under attack")
    fig = _style(fig, height, title, legend=dict(orientation="h", yanchor="top", y=-0.22, x=0))
    fig.update_layout(margin=dict(b=90))
    return fig


def probe_curve(values: Any, confidence: Any, predicted: Any, cls: int, classes: Sequence[str], current: float,
                label: str, unit: str, readable: tuple[float, float] | None = None, height: int = 230) -> go.Figure:
    """The model's confidence in class `cls` along one transformation, with the slider's value marked.

    Points where the model answers another class are drawn hollow and say which in the hover; the
    band is the unbroken range around "no change" in which it still answers `cls`.
    """
    xs, conf = _array(values).astype(float), _array(confidence).astype(float)
    pred = _array(predicted).astype(int)
    reads = pred == cls
    color = CLASS_COLORS[cls % len(CLASS_COLORS)]
    answers = [str(classes[p]) for p in pred]
    fig = go.Figure(go.Scatter(
        x=xs, y=conf, mode="lines+markers", name=f"P({classes[cls]})", customdata=answers,
        line=dict(color=color, width=2),
        marker=dict(size=7, color=color, symbol=["circle" if ok else "circle-open" for ok in reads],
                    line=dict(color=color, width=1.5)),
        hovertemplate=f"{label} %{{x:g}}{unit}<br>P({classes[cls]}) %{{y:.1%}}<br>answer: %{{customdata}}"
                      "<extra></extra>"))
    if readable is not None:
        lo, hi = readable
        fig.add_vrect(x0=lo, x1=hi, fillcolor=color, opacity=0.08, line_width=0)
    fig.add_vline(x=float(current), line=dict(color=NEUTRAL, width=1.5, dash="dash"))
    fig.update_xaxes(title_text=f"{label} ({unit})", zeroline=False)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", title_text=f"P({classes[cls]})")
    fig = _style(fig, height, None, showlegend=False)
    fig.update_layout(margin=dict(l=55, r=10, t=15, b=45))
    return fig


def unit_image(image: Any, title: str, height: int = 300) -> go.Figure:
    """The image a search produced, on the fixed 0–1 grey scale the network reads (not stretched to its
    own range, so a faint result looks faint)."""
    layout, axes = _cell_layout(1, 1, height, col_titles=[title])
    z = _image2d(image).astype(float)
    return go.Figure(data=[_heatmap(z, axes[0][0], "gray", 0.0, 1.0, "pixel")], layout=layout)


def top_image_grid(images: Any, captions: Sequence[str], cols: int = 3, height: int = 300,
                   title: str | None = None) -> go.Figure:
    """Real images in a grid (row by row, largest first), each with a short caption written inside
    its top-left corner: e.g. its test index, label and the unit's value on it."""
    stack = np.asarray(_array(images), dtype=float).reshape(-1, 28, 28)
    rows = max(1, -(-len(stack) // cols))
    layout, axes = _cell_layout(rows, cols, height, title=title)
    data = []
    for i, picture in enumerate(stack):
        cell = axes[i // cols][i % cols]
        data.append(_heatmap(picture, cell, "gray", 0.0, 1.0, str(captions[i]) if i < len(captions) else ""))
        if i < len(captions):
            layout["annotations"].append(dict(
                text=str(captions[i]), x=0, y=0, xref=cell[0], yref=cell[1], xanchor="left", yanchor="top",
                xshift=-4, yshift=4, showarrow=False, font=dict(size=10, color="white"), bgcolor="rgba(0,0,0,0.55)"))
    return go.Figure(data=data, layout=layout)


def objective_curve(steps: Any, objectives: Any, references: Mapping[str, float] | None = None,
                    height: int = 260, label: str = "unit's value") -> go.Figure:
    """The unit's value on the searched image at each report, with dotted lines for reference values
    (e.g. the most exciting real test image), so the learner sees whether the search passed them."""
    xs, ys = _array(steps).astype(float), _array(objectives).astype(float)
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers", name="search", line=dict(color=TRAIN_COLOR),
                               marker=dict(size=4),
                               hovertemplate=f"step %{{x:.0f}}<br>{label} %{{y:.3f}}<extra></extra>"))
    positions = ("top left", "bottom right")  # alternate sides: two references can lie close together
    for i, (name, value) in enumerate((references or {}).items()):
        fig.add_hline(y=float(value), line=dict(color=COLORS[(i + 1) % len(COLORS)], dash=("dot", "dash")[i % 2],
                                                width=1.5),
                      annotation_text=name, annotation_position=positions[i % 2], annotation_font_size=10)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text=label)
    fig = _style(fig, height, None, showlegend=False)
    fig.update_layout(margin=dict(l=55, r=10, t=15, b=45))
    return fig
