"""A drawing canvas for digits: white ink on black, like MNIST, with a Clear that really clears.

streamlit-drawable-canvas registers its component when imported, which only works inside a
Streamlit run, so the import lives inside `digit_canvas`.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from simplecnn.drawing import PictureError, decode_png

CANVAS_SIZE = 280  # px; 10x the network's 28x28 input
INK = "#FFFFFF"
BACKGROUND = "#000000"
_CLEARS = "canvas_clears"  # session_state: how many times each canvas was cleared, by name


def canvas_key(name: str) -> str:
    """The widget key of canvas `name` right now; it changes on every clear, which remounts it empty."""
    return f"{name}_{st.session_state.setdefault(_CLEARS, {}).get(name, 0)}"


def clear_canvas(name: str) -> None:
    """Forget the drawing: the next run shows a fresh, empty canvas under a new key."""
    clears = st.session_state.setdefault(_CLEARS, {})
    old = canvas_key(name)
    clears[name] = clears.get(name, 0) + 1
    st.session_state.pop(old, None)


def digit_canvas(name: str, stroke_width: int = 18, size: int = CANVAS_SIZE) -> np.ndarray | None:
    """Show the canvas; return what is drawn as (H, W, 4) uint8 RGBA, or None before the first stroke."""
    from streamlit_drawable_canvas import st_canvas

    result = st_canvas(
        stroke_width=stroke_width,
        stroke_color=INK,
        background_color=BACKGROUND,
        update_streamlit=True,
        height=size,
        width=size,
        drawing_mode="freedraw",
        return_image_data=True,
        key=canvas_key(name),
    )
    data = result.image_bytes  # decoded here, bounded, rather than by the component's unchecked image_data
    if data is None:
        return None
    try:
        return decode_png(data)
    except PictureError as exc:  # a forged or broken message from the browser: say so, keep the page
        st.warning(f"{exc} Clear the canvas and draw again.", icon=":material/warning:")
        return None
