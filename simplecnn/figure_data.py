"""The numbers behind a plotly figure, as tidy tables, and a one-line description of it.

A chart is only readable by someone who can see it and tell its colours apart; the same numbers
as a table (and a CSV file) are readable by everyone, a screen reader included. This module reads
them back out of any figure the builders in `simplecnn.plots`, `simplecnn.explain_plots` and the
lesson figure modules make, so no page needs a second, hand-kept copy of its data:

* points (scatter, line, bar): one row per point: panel, series, x, y (and the point's text label)
* grids (heatmap, filled contour, image): one row per cell: panel, series, row, column, value

"panel" is the subplot's title when the figure has several. No Streamlit here.
"""
from __future__ import annotations

import io
import math
from typing import Any, Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

POINT_TYPES = ("scatter", "scattergl", "bar", "histogram")
GRID_TYPES = ("heatmap", "contour", "image")
POINTS, GRID = "points", "grid"
# A page never shows more than this many rows: a bound checked before the table is built.
MAX_ROWS = 250_000


def _values(seq: Any) -> list | None:
    """A trace's data array as a plain list (numpy, tuple, typed array), or None when absent."""
    if seq is None:
        return None
    return list(np.asarray(seq, dtype=object).reshape(-1)) if np.ndim(seq) else [seq]


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _axis_title(fig: go.Figure, axis: str) -> str:
    """The title text of layout axis 'x', 'x2', 'y3' ..., '' if it has none."""
    name = axis[0] + "axis" + axis[1:]
    obj = fig.layout[name] if name in fig.layout else None
    text = obj.title.text if obj is not None and obj.title is not None else None
    return str(text) if text else ""


def _domain(fig: go.Figure, axis: str) -> tuple[float, float]:
    name = axis[0] + "axis" + axis[1:]
    obj = fig.layout[name] if name in fig.layout else None
    dom = obj.domain if obj is not None and obj.domain is not None else (0.0, 1.0)
    return float(dom[0]), float(dom[1])


def panel_titles(fig: go.Figure) -> dict[tuple[str, str], str]:
    """(xaxis, yaxis) of each subplot -> its title, e.g. "Loss" or "stage 2 · Saliency".

    make_subplots and our own grid builders write titles as paper-anchored annotations: a column
    title centred over the x domain (the nearest one above the panel: a grid may title only its top
    row), a row title right-aligned left of it at the middle of the y domain. That is how they are
    found again here.
    """
    pairs = list(dict.fromkeys((t.xaxis or "x", t.yaxis or "y") for t in fig.data if hasattr(t, "xaxis")))
    if len(pairs) < 2:
        return {}
    notes = [n for n in fig.layout.annotations or () if n.xref == "paper" and n.yref == "paper"
             and n.text is not None and n.x is not None and n.y is not None]
    titles = {}
    for xa, ya in pairs:
        x0, x1 = _domain(fig, xa)
        y0, y1 = _domain(fig, ya)
        above = [n for n in notes if abs(float(n.x) - (x0 + x1) / 2) < 1e-3 and float(n.y) >= y1 - 0.02]
        column = min(above, key=lambda n: float(n.y), default=None)
        row = next((n for n in notes if n.xanchor == "right" and float(n.x) <= x0 + 1e-3
                    and abs(float(n.y) - (y0 + y1) / 2) < 0.02), None)
        title = " · ".join(str(n.text) for n in (row, column) if n is not None)
        if title:
            titles[(xa, ya)] = title
    return titles


def _panel(trace: Any, titles: dict[tuple[str, str], str]) -> str:
    key = (getattr(trace, "xaxis", None) or "x", getattr(trace, "yaxis", None) or "y")
    return titles.get(key, "")


def _series_name(trace: Any, index: int, several: bool) -> str:
    """The trace's hover label when its first line is plain text (it names the series in full: a
    multi-run legend entry is renamed to the run alone), else its name, else its number."""
    hover = getattr(trace, "hovertemplate", None)
    first = str(hover).split("<br>")[0] if isinstance(hover, str) else ""
    if first and "%{" not in first and "<" not in first:
        return first
    if trace.name:
        return str(trace.name)
    return f"series {index + 1}" if several else ""


def _point_rows(trace: Any, panel: str, series: str) -> list[dict]:
    if trace.type == "histogram":  # the raw values the bars count
        values = _values(trace.x if trace.x is not None else trace.y) or []
        return [{"panel": panel, "series": series, "value": v} for v in values if not _missing(v)]
    xs, ys = _values(trace.x), _values(trace.y)
    if trace.type == "bar" and getattr(trace, "orientation", None) == "h":
        xs, ys = ys, xs  # category on y, value on x: the table keeps category first
    if xs is None and ys is None:
        return []
    n = len(ys if ys is not None else xs)
    xs = xs if xs is not None else list(range(n))
    ys = ys if ys is not None else [None] * n
    text = trace.text if getattr(trace, "text", None) is not None and np.ndim(trace.text) else None
    labels = _values(text) if text is not None and len(_values(text)) == n else None
    rows = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if _missing(x) and _missing(y):
            continue  # legend-only keys, gaps in a line
        row = {"panel": panel, "series": series, "x": x, "y": y}
        if labels is not None and labels[i] not in (None, ""):
            row["label"] = labels[i]
        rows.append(row)
    return rows


def _grid_frame(trace: Any, panel: str, series: str) -> pd.DataFrame | None:
    z = np.asarray(trace.z, dtype=float) if trace.z is not None else None
    if z is None or z.size == 0:
        return None
    if trace.type == "image":  # (H, W, channels) pixels
        h, w = z.shape[:2]
        flat = z.reshape(h * w, -1)
        frame = pd.DataFrame(flat, columns=list("rgba"[: flat.shape[1]]))
    else:
        if z.ndim == 1:
            z = z[None]
        h, w = z.shape
        frame = pd.DataFrame({"value": z.reshape(-1)})
        custom = np.asarray(trace.customdata, dtype=float) if trace.customdata is not None else None
        if custom is not None and custom.shape == z.shape:  # hover shows these (a map's raw values)
            frame["hover_value"] = custom.reshape(-1)
    rows, cols = np.divmod(np.arange(h * w), w)
    frame.insert(0, "column", cols)
    frame.insert(0, "row", rows)
    xs, ys = _values(getattr(trace, "x", None)), _values(getattr(trace, "y", None))
    if xs is not None and len(xs) == w and any(not isinstance(v, (int, np.integer)) for v in xs):
        frame.insert(2, "x", [xs[c] for c in cols])  # labelled columns (classes) or coordinates
    if ys is not None and len(ys) == h and any(not isinstance(v, (int, np.integer)) for v in ys):
        frame.insert(2, "y", [ys[r] for r in rows])
    frame.insert(0, "series", series)
    frame.insert(0, "panel", panel)
    return frame


def _is_outline(trace: Any) -> bool:
    """Line-only contours drawn over another map (a digit's outline): their data is shown elsewhere."""
    return trace.type == "contour" and trace.contours is not None and trace.contours.coloring == "none"


def figure_tables(fig: go.Figure | dict, max_rows: int = MAX_ROWS) -> dict[str, pd.DataFrame]:
    """The figure's data as tidy tables: {"points": ..., "grid": ...}, each present only if it has rows.

    Columns without content (a single panel, no point labels) are dropped; when every trace of a
    table lies on axes with the same titles, x and y take those titles as column names.
    Raises ValueError when the table would exceed `max_rows`, before it is built.
    """
    fig = fig if isinstance(fig, go.Figure) else go.Figure(fig)
    cells = sum(np.asarray(t.z).size for t in fig.data if t.type in GRID_TYPES and t.z is not None)
    points = sum(len(_values(t.x if t.x is not None else t.y) or ()) for t in fig.data if t.type in POINT_TYPES)
    if cells + points > max_rows:
        raise ValueError(f"This chart holds {cells + points:,} numbers, more than the {max_rows:,} a table shows.")
    titles = panel_titles(fig)
    point_rows: list[dict] = []
    grids: list[pd.DataFrame] = []
    point_axes: set[tuple[str, str]] = set()
    grid_axes: set[tuple[str, str]] = set()
    several = len(fig.data) > 1
    for i, trace in enumerate(fig.data):
        panel, series = _panel(trace, titles), _series_name(trace, i, several)
        if trace.type in POINT_TYPES:
            rows = _point_rows(trace, panel, series)
            if rows:
                point_rows.extend(rows)
                point_axes.add((_axis_title(fig, trace.xaxis or "x"), _axis_title(fig, trace.yaxis or "y")))
        elif trace.type in GRID_TYPES and not _is_outline(trace):
            frame = _grid_frame(trace, panel, series)
            if frame is not None:
                grids.append(frame)
                grid_axes.add((_axis_title(fig, trace.xaxis or "x"), _axis_title(fig, trace.yaxis or "y")))
    tables = {}
    if point_rows:
        tables[POINTS] = _named_axes(_tidy(pd.DataFrame(point_rows)), point_axes)
    if grids:
        tables[GRID] = _named_axes(_tidy(pd.concat(grids, ignore_index=True)), grid_axes)
    return tables


def _named_axes(frame: pd.DataFrame, axes: set[tuple[str, str]]) -> pd.DataFrame:
    """x and y take the axis titles as column names when every trace shares the same titled axes."""
    if len(axes) != 1:
        return frame
    x_title, y_title = next(iter(axes))
    renames = {k: v for k, v in (("x", x_title), ("y", y_title)) if v and k in frame.columns
               and v not in frame.columns}
    return frame.rename(columns=renames) if len(set(renames.values())) == len(renames) else frame


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop the panel/series/label columns when they say nothing (one panel, one unnamed series, no labels)."""
    for column in ("panel", "series", "label"):
        if column in frame.columns and frame[column].fillna("").astype(str).eq("").all():
            frame = frame.drop(columns=column)
    if {"panel", "series"} <= set(frame.columns) and frame["panel"].equals(frame["series"]):
        frame = frame.drop(columns="series")  # a grid of titled images: the title says it once
    return frame.reset_index(drop=True)


def table_csv(frame: pd.DataFrame) -> bytes:
    """A table as UTF-8 CSV bytes (no index column), full float precision."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


def _title(fig: go.Figure) -> str:
    title = fig.layout.title
    return str(title.text) if title is not None and title.text else ""


def _join(items: Iterable[str], limit: int = 6) -> str:
    items = list(dict.fromkeys(i for i in items if i))
    more = len(items) - limit
    shown = ", ".join(items[:limit])
    return shown + (f" and {more} more" if more > 0 else "")


def describe_figure(fig: go.Figure | dict) -> str:
    """A short, stable description for screen readers: title, kind, panels, series and axes.

    It names what is drawn, not the values (those are in the table), so a live chart's description
    does not change with every new point.
    """
    fig = fig if isinstance(fig, go.Figure) else go.Figure(fig)
    kinds = {"scatter": "line/point chart", "scattergl": "line/point chart", "bar": "bar chart",
             "histogram": "histogram", "heatmap": "heatmap", "contour": "contour map", "image": "image"}
    shown = [t for t in fig.data if not _is_outline(t)]
    kind = _join(kinds.get(t.type, t.type) for t in shown) or "chart"
    grids = [np.shape(t.z)[:2] for t in shown if t.type in GRID_TYPES and t.z is not None and np.ndim(t.z) >= 2]
    phrase = f"a {kind}"
    if grids:
        sizes = "{}×{}".format(*grids[0]) if len(grids) == 1 else _join(f"{h}×{w}" for h, w in grids)
        several = f"{len(grids)} {kind}s" if len(grids) > 1 and kind in ("heatmap", "image") else None
        phrase = f"{several or phrase} of {sizes} cells"
    parts = [_title(fig) or "Chart", phrase]
    panels = _join(panel_titles(fig).values())
    if panels:
        parts.append(f"panels: {panels}")
    named = _join(str(t.name) for t in shown if t.name and t.type in POINT_TYPES)
    if named:
        parts.append(f"series: {named}")
    axes = _join(_axis_title(fig, a) for a in ("x", "y", "x2", "y2"))
    if axes:
        parts.append(f"axes: {axes}")
    return ". ".join(parts) + ". The numbers are in the chart's data table."
