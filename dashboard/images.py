"""Small pictures sent inline as PNG data URIs.

st.image with an array stores the PNG in the server's media store and sends a /media/ URL; the
store forgets it at the next rerun, so on pages that rerun often (the canvas, live refreshes) the
browser sometimes asks for a picture that is already gone (HTTP 404, a broken image for a moment).
A thumbnail of a few hundred bytes travels better inside the page itself.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def png_data_uri(pixels: np.ndarray) -> str:
    """A (H, W) or (H, W, 3) uint8 array as a `data:image/png;base64,...` URI for st.image."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
