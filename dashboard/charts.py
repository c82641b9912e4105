"""show_chart: a plotly chart with its numbers a click away (table + CSV) and a name for screen readers.

Under every chart a "Show data" toggle, off by default. Only when a learner turns it on are the
figure's tables built (simplecnn.figure_data) and shown with a CSV download; turned off, the chart
costs one toggle more than before. That matters on the live pages, whose fragments rerun every
second or so in every open tab of a class. The CSV is made only when the button is pressed
(st.download_button takes a callable), and pressing it does not rerun the page.
"""
from __future__ import annotations

import re
import weakref
from collections import OrderedDict
from typing import Any, Callable, Mapping

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from simplecnn.figure_data import GRID, POINTS, describe_figure, figure_tables, table_csv

TOGGLE_LABEL = "Show data"
TABLE_HEIGHT = 260  # px: a scrolling table, whatever its length
TABLE_CAPTIONS = {POINTS: "One row per point drawn.", GRID: "One row per cell of each grid (an image's pixel, a matrix entry): row 0 is the top."}
Tables = "pd.DataFrame | Mapping[str, pd.DataFrame]"


def data_key(key: str) -> str:
    """The session-state key of a chart's data toggle."""
    return f"{key}__data"


def csv_name(key: str, table: str, several: bool) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", key).strip("_") or "chart"
    return f"{stem}_{table}.csv" if several else f"{stem}.csv"


def _tables(fig: go.Figure, data: Any) -> dict[str, pd.DataFrame]:
    if callable(data):
        data = data()
    if data is None:
        return figure_tables(fig)
    if isinstance(data, pd.DataFrame):
        return {"data": data}
    return dict(data)


_DESCRIPTIONS: "OrderedDict[int, tuple[weakref.ref, str]]" = OrderedDict()  # id(figure) -> (figure, alt)
DESCRIPTIONS_KEPT = 256


def cached_description(fig: go.Figure) -> str:
    """describe_figure, once per figure object: the live pages keep their figure while it does not
    change and redraw it every second (figures are unhashable, so this keys on identity, checked
    through a weak reference)."""
    entry = _DESCRIPTIONS.get(id(fig))
    if entry is not None and entry[0]() is fig:
        return entry[1]
    text = describe_figure(fig)
    _DESCRIPTIONS[id(fig)] = (weakref.ref(fig), text)
    while len(_DESCRIPTIONS) > DESCRIPTIONS_KEPT:
        _DESCRIPTIONS.popitem(last=False)
    return text


def show_data(fig: go.Figure, key: str, data: "Tables | Callable[[], Tables] | None" = None,
              where: Any = None) -> None:
    """The tables behind `fig` (or `data`: a DataFrame, a dict of them, or a function giving either),
    each with a CSV download."""
    where = where if where is not None else st
    try:
        tables = _tables(fig, data)
    except ValueError as error:  # too many numbers to show (figure_data.MAX_ROWS)
        where.caption(str(error))
        return
    if not tables:
        where.caption("This chart has no data yet.")
        return
    several = len(tables) > 1
    for name, frame in tables.items():
        if TABLE_CAPTIONS.get(name):
            where.caption(f"{TABLE_CAPTIONS[name]} {len(frame):,} rows.")
        where.dataframe(frame, hide_index=True, height=min(TABLE_HEIGHT, 38 + 35 * len(frame)),
                        key=f"{key}__table_{name}")
        where.download_button(f"Download CSV ({len(frame):,} rows)", data=lambda f=frame: table_csv(f),
                              file_name=csv_name(key, name, several), mime="text/csv",
                              key=f"{key}__csv_{name}", on_click="ignore", icon=":material/download:")


def show_chart(fig: go.Figure, *, key: str, data: "Tables | Callable[[], Tables] | None" = None,
               alt: str | None = None, where: Any = None, label: str = TOGGLE_LABEL, **plotly_kwargs: Any):
    """st.plotly_chart(fig, key=key, **plotly_kwargs) with an accessible name and a data toggle below.

    `alt` names the chart for screen readers (default: describe_figure, which names title, kind,
    panels, series and axes but no values, so it stays the same while a live chart grows: a new
    alt would remount the chart; kept per figure object). `where` is the container (a column) the page drew into.
    """
    where = where if where is not None else st
    shown = where.plotly_chart(fig, key=key, alt=alt or cached_description(fig), **plotly_kwargs)
    if where.toggle(label, key=data_key(key), help="The numbers this chart draws, as a table and a CSV file."):
        show_data(fig, key, data, where)
    return shown
