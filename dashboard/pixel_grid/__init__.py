"""A paint grid: draw a digit cell by cell with clicks, taps or the keyboard, no dragging needed.

A Streamlit components-v2 element (plain JavaScript and CSS beside this file, no build step) that
lives in the page itself, not in an iframe, so the keyboard and screen readers reach its cells like
any other widget. Its value is the painted cells as a '0'/'1' string; `simplecnn.digit_sources`
turns it into a picture. Clear remounts it under a new key, as the canvas does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from dashboard.canvas import BACKGROUND, INK
from simplecnn import plots
from simplecnn.digit_sources import GRID_SIDE, cells_to_string, parse_cells

_HERE = Path(__file__).resolve().parent
_GRID = st.components.v2.component(
    "simplecnn_pixel_grid",
    js=(_HERE / "grid.js").read_text(encoding="utf-8"),
    css=(_HERE / "grid.css").read_text(encoding="utf-8"),
)
_CLEARS = "pixel_grid_clears"  # session_state: name -> how many times that grid was cleared
FOCUS_COLOR = plots.COLORS[1]  # orange: visible on both black and white cells


def cells_key(name: str) -> str:
    """Where the painted cells of grid `name` are kept (they outlive the widget when another input is shown)."""
    return f"{name}_cells"


def grid_key(name: str) -> str:
    """The widget key right now: it changes on every clear, which remounts an empty grid."""
    return f"{name}_{st.session_state.get(_CLEARS, {}).get(name, 0)}"


def clear_grid(name: str) -> None:
    clears = st.session_state.setdefault(_CLEARS, {})
    st.session_state.pop(grid_key(name), None)
    clears[name] = clears.get(name, 0) + 1
    st.session_state.pop(cells_key(name), None)


def pixel_grid(name: str, brush: int = 1, side: int = GRID_SIDE,
               label: str = "Paint grid: arrows move, Space paints or erases") -> np.ndarray:
    """Show the grid; return the painted cells as (side, side) bool (all False before the first cell)."""
    kept = st.session_state.get(cells_key(name), "")
    result = _GRID(key=grid_key(name), data={"side": side, "brush": brush, "cells": kept, "label": label,
                                             "ink": INK, "paper": BACKGROUND, "focus": FOCUS_COLOR},
                   on_cells_change=lambda: None, height="content")
    value = getattr(result, "cells", None) or kept
    try:
        cells = parse_cells(value, side) if value else np.zeros((side, side), dtype=bool)
    except ValueError as exc:  # a forged message from the browser: say so, keep what was there
        st.warning(f"The grid sent something unexpected ({exc}). Press Clear and paint again.",
                   icon=":material/warning:")
        cells = parse_cells(kept, side) if kept else np.zeros((side, side), dtype=bool)
    st.session_state[cells_key(name)] = cells_to_string(cells)
    return cells
