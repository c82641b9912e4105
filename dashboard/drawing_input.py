"""The input chooser shared by Draw and Explain: draw with a pointer, paint cells, use a sample, upload a photo.

Dragging a pen is not possible for everyone (WCAG 2.2, 2.5.7), so the same digit can come from a
paint grid worked by single clicks or the keyboard, from a real MNIST test digit, or from a photo
or scan. Whatever the source, the page gets one picture and the ink rule to read it with, and
prepares it with `simplecnn.drawing.preprocess_steps` like any drawing.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import streamlit as st

from dashboard import state
from dashboard.canvas import CANVAS_SIZE, clear_canvas, digit_canvas
from dashboard.images import png_data_uri
from dashboard.pixel_grid import clear_grid, pixel_grid
from simplecnn.digit_sources import (MAX_UPLOAD_BYTES, UPLOAD_FORMATS, decode_upload, grid_to_image,
                                     sample_indices)
from simplecnn.drawing import PictureError

DRAW, PAINT, SAMPLE, UPLOAD = "Draw", "Paint cells", "Sample digit", "Upload a photo"
SOURCES = (DRAW, PAINT, SAMPLE, UPLOAD)
SAMPLES_PER_CLASS = 5  # how many test images of one class "Next sample" steps through
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif"]
THUMB_PX = 140  # side of the uploaded picture's preview


@dataclass(frozen=True, eq=False)
class DigitInput:
    """One picture to prepare, how to read its ink, and where it came from."""

    image: np.ndarray  # (H, W) or (H, W, 4) uint8
    ink: str  # "light" (the canvas, the grid, MNIST) or "auto" (a photo of either polarity)
    source: str  # for the page's text: "your drawing", "your painted cells", "test image #7 (a 7)", ...
    true_class: int | None  # known for a sample digit only
    digest: str  # equal pictures read the same way give equal digests (the pages' cache key)


def _digest(image: np.ndarray, ink: str) -> str:
    data = np.ascontiguousarray(image)
    return hashlib.blake2b(data.tobytes() + str(data.shape).encode() + ink.encode(), digest_size=16).hexdigest()


def _make(image: np.ndarray, ink: str, source: str, true_class: int | None = None) -> DigitInput:
    return DigitInput(image, ink, source, true_class, _digest(image, ink))


def chosen_source(name: str) -> str:
    """The source the learner picked for input `name` (Draw until they pick another)."""
    return st.session_state.get(f"{name}_input_kind", DRAW)


EMPTY_HINTS = {
    PAINT: "Paint a digit on the grid: click or tap cells, or Tab into it and use the arrow keys and Space.",
    SAMPLE: "Pick a class above to load one of its real MNIST test images.",
    UPLOAD: "Upload a photo or scan of one handwritten digit.",
}


def empty_hint(name: str) -> str | None:
    """What to do while the chosen source of input `name` holds no digit; None for Draw (the page says it)."""
    return EMPTY_HINTS.get(chosen_source(name))


def digit_input(name: str, sources: tuple[str, ...] = SOURCES) -> DigitInput | None:
    """The chooser and the chosen input's controls; the learner's picture, or None while there is none.

    Widget keys start with `name` ("draw", "explain"), so each page keeps its own drawing, cells,
    sample and upload.
    """
    source = st.radio("How to give the network a digit", sources, key=f"{name}_input_kind", horizontal=True,
                      help="Draw drags a pen (mouse, finger or stylus). Paint cells needs single clicks or "
                           "the keyboard only. Sample digit loads a real MNIST test image. Upload reads a "
                           "photo or scan of a digit written on paper.")
    if source == PAINT:
        return _paint(name)
    if source == SAMPLE:
        return _sample(name)
    if source == UPLOAD:
        return _upload(name)
    return _draw(name)


# -- the four sources ----------------------------------------------------------------------------------
def _draw(name: str) -> DigitInput | None:
    stroke = st.slider("Stroke width", 6, 40, 20, key=f"{name}_stroke",
                       help="MNIST strokes are about 2-3 px wide in 28×28, i.e. 20-30 px on this canvas.")
    with st.container(key=f"{name}_canvas_box"):
        image = digit_canvas(f"{name}_canvas", stroke_width=stroke)
    # A column narrower than the canvas (a tablet held upright, beside the sidebar) would cut its right
    # part off, out of reach of a finger: the column keeps at least the canvas's width instead.
    st.html(f"<style>[data-testid='stColumn']:has(.st-key-{name}_canvas_box) "
            f"{{ min-width: {CANVAS_SIZE + 8}px; }}</style>")
    st.button("Clear", key=f"{name}_clear", icon=":material/delete:", on_click=_clear, args=(name,))
    return None if image is None else _make(image, "light", "your drawing")


def _paint(name: str) -> DigitInput | None:
    brush = st.radio("Brush", (1, 2), key=f"{name}_brush", horizontal=True,
                     format_func=lambda b: "1 cell" if b == 1 else "2×2 cells",
                     help="With 2×2 cells a digit takes about 15 clicks; each click paints the cell and "
                          "the ones to its right and below.")
    st.caption("Click or tap a cell to paint it; click a painted cell to erase it. With the keyboard: Tab "
               "into the grid, arrows move, Space paints or erases, Shift+arrow paints as it moves, "
               "Delete erases.")
    cells = pixel_grid(f"{name}_grid", brush=brush,
                       label="Paint grid, 14 by 14 cells: arrows move, Space paints or erases")
    st.button("Clear", key=f"{name}_grid_clear", icon=":material/delete:", on_click=_clear, args=(name,))
    if not cells.any():
        return None
    return _make(grid_to_image(cells), "light", "your painted cells")


def _sample(name: str) -> DigitInput | None:
    ds = state.dataset()
    key = f"{name}_sample"
    st.markdown("Use a sample: a real handwritten test image the network never trained on.")
    cols = st.columns(len(ds.classes), gap="small")
    for digit, col in enumerate(cols):
        label = ds.classes[digit] if ds.name == "mnist" else str(digit)
        col.button(label, key=f"{name}_sample_{digit}", on_click=_pick_sample, args=(key, digit, 0),
                   help=f"A test image of {ds.classes[digit]}", width="stretch")
    if ds.name != "mnist":
        st.caption("Buttons by class number: " + ", ".join(f"{i} {c}" for i, c in enumerate(ds.classes)) + ".")
    picked = st.session_state.get(key)
    if picked is None:
        return None
    digit, nth = picked
    indices = _sample_indices(ds.name, digit)
    if not indices:
        st.warning(f"No test image of class {ds.classes[digit]} was found.")
        return None
    nth %= len(indices)
    index = indices[nth]
    st.button(f"Next sample of {ds.classes[digit]} ({nth + 1} of {len(indices)})", key=f"{name}_sample_next",
              icon=":material/skip_next:", on_click=_pick_sample, args=(key, digit, nth + 1))
    image = ds.test_images[index].numpy()  # (28, 28) uint8, white ink on black
    return _make(image, "light", f"test image #{index} (a sample of {ds.classes[digit]})", digit)


def _upload(name: str) -> DigitInput | None:
    file = st.file_uploader("A photo or scan of one handwritten digit", type=UPLOAD_TYPES, key=f"{name}_upload",
                            help=f"PNG, JPEG, WebP, BMP or GIF, up to {MAX_UPLOAD_BYTES // 2**20} MB; dark ink on "
                                 "light paper or light ink on a dark background. Crop it to the digit for the "
                                 "best result.")
    if file is None:
        st.caption("Write a digit with a thick pen on plain paper, take a photo, and upload it here.")
        return None
    cache = st.session_state.get(f"{name}_upload_decoded")
    if cache is None or cache[0] != file.file_id:
        try:
            grey = decode_upload(file.getvalue())
            cache = (file.file_id, grey, None)
        except PictureError as exc:
            cache = (file.file_id, None, str(exc))
        st.session_state[f"{name}_upload_decoded"] = cache
    _, grey, problem = cache
    if grey is None:
        st.error(f"{problem} Nothing else was changed: pick another file.", icon=":material/broken_image:")
        return None
    h, w = grey.shape
    st.image(png_data_uri(_fit(grey)), width=THUMB_PX,
             caption=f"0 · Your picture in grey ({w}×{h} px): the steps below find the ink, whichever colour it is.",
             alt="The uploaded picture, converted to grey.")
    return _make(grey, "auto", f"your picture {file.name!r}")


# -- helpers ----------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _sample_indices(dataset_name: str, digit: int) -> list[int]:
    """Test images of `digit` that the bundled model reads right (every one of the class if it cannot)."""
    ds = state.shared_dataset(dataset_name)
    predictions = ds.test_labels  # the bundled model learned MNIST only: elsewhere, the first of the class
    if dataset_name == "mnist":
        try:
            predictions = state.bundled_test_evaluation(dataset_name).predictions
        except (ValueError, OSError):  # no bundled model: the first images of the class, in order
            pass
    found = sample_indices(ds.test_labels, predictions, digit, SAMPLES_PER_CLASS)
    return found or sample_indices(ds.test_labels, ds.test_labels, digit, SAMPLES_PER_CLASS)


def _pick_sample(key: str, digit: int, nth: int) -> None:
    st.session_state[key] = (digit, nth)


def _clear(name: str) -> None:
    """Forget the drawing and the painted cells of input `name` (and the Draw page's cached reading)."""
    clear_canvas(f"{name}_canvas")
    clear_grid(f"{name}_grid")
    st.session_state.pop(f"{name}_reading", None)


def _fit(grey: np.ndarray, size: int = THUMB_PX) -> np.ndarray:
    """A preview at most `size` px on its longest side (whole-pixel sampling: cheap, it is only a preview)."""
    h, w = grey.shape
    step = max(1, int(np.ceil(max(h, w) / size)))
    return grey[::step, ::step]
