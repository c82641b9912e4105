"""Draw: write a digit with the mouse, see it prepared like MNIST, and read what the network thinks.

The drawing goes through the same preparation as the MNIST digits (simplecnn.drawing), so the
page shows each step, the 28x28 input the network really gets, its 10 probabilities, which pixels
mattered most (saliency), and, for a run trained in this session, how the answer changed epoch
by epoch. Work is cached by a hash of the canvas pixels, so an unchanged drawing costs nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from PIL import Image

from dashboard.charts import show_chart
from dashboard import nav, state
from dashboard.drawing_input import digit_input, empty_hint
from dashboard.images import png_data_uri
from dashboard.handwriting import label_control
from simplecnn import plots
from simplecnn.drawing import DrawingSteps, predict_drawing, preprocess_steps
from simplecnn.inspection import saliency

CANVAS = "draw_canvas"  # canvas name (dashboard.drawing_input names it "<name>_canvas"); widget key canvas_key(CANVAS)
THING = {"mnist": "a digit", "fashion-mnist": "a piece of clothing"}  # what to draw, per dataset
FULL_INK_SHARE = 0.5  # more than this share of the canvas inked: the network never saw such an image
SMALL_INK_PX = 40  # a drawing whose longest side is below this many canvas pixels was enlarged a lot
CANVAS_PX = 280  # SMALL_INK_PX is measured on a canvas this wide; other pictures scale it to their size
LIVE_REFRESH_S = 2.0  # how often the panels refresh while the chosen run trains
THUMB_PX = 112  # side of each preparation-step picture
MARGIN_RGB = (30, 45, 75)  # around a step picture that is not square


@dataclass(frozen=True)
class Reading:
    """Everything the page shows about one drawing read by one model."""

    steps: DrawingSteps
    probs: np.ndarray  # (num_classes,) softmax
    predicted: int
    saliency: np.ndarray  # (28, 28) |d logit / d pixel| of the predicted class
    milliseconds: float  # preparation + prediction time


def model_tag() -> tuple[str | None, int]:
    """(model choice, weights version): changes whenever the chosen model's weights do."""
    key = state.selected_model_key()
    entry = state.runs().get(key) if key else None
    return key, entry.job.weights_version if entry is not None and entry.job is not None else 0


def read_drawing(image: np.ndarray, digest: str, model: torch.nn.Module, ink: str = "light") -> Reading | None:
    """Prepare and classify the drawing; None when nothing is drawn. Cached per (pixels, model weights)."""
    tag = (digest, model_tag())
    cached = st.session_state.get("draw_reading")
    if cached is not None and cached[0] == tag:
        return cached[1]
    start = time.perf_counter()
    steps = preprocess_steps(image, ink=ink)  # "light": the canvas's own brush; "auto" for a photo
    if steps is None:
        reading = None
    else:
        probs = predict_drawing(model, steps.tensor).numpy()  # (num_classes,)
        milliseconds = (time.perf_counter() - start) * 1000
        predicted = int(probs.argmax())
        reading = Reading(steps, probs, predicted, saliency(model, steps.tensor, target=predicted),
                          milliseconds)
    st.session_state["draw_reading"] = (tag, reading)
    return reading


def thumbnail(image: np.ndarray, size: int = THUMB_PX) -> np.ndarray:
    """A (size, size, 3) uint8 picture of a grey image in [0, 1], aspect kept.

    Small images are enlarged by whole pixels (no smoothing) so every pixel the network gets stays
    visible; the unused margin is dark blue, so a crop's true outline shows against it.
    """
    grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    h, w = grey.shape
    if max(h, w) <= size:
        factor = size // max(h, w)
        grey = np.kron(grey, np.ones((factor, factor), dtype=np.float32))
    else:
        new_h, new_w = max(1, round(h * size / max(h, w))), max(1, round(w * size / max(h, w)))
        grey = np.asarray(Image.fromarray(grey).resize((new_w, new_h), Image.Resampling.BOX))
    h, w = grey.shape
    picture = np.empty((size, size, 3), dtype=np.uint8)
    picture[:] = MARGIN_RGB
    top, left = (size - h) // 2, (size - w) // 2
    picture[top:top + h, left:left + w] = (np.clip(grey, 0.0, 1.0) * 255).astype(np.uint8)[..., None]
    return picture


def show_prediction(reading: Reading, classes: tuple[str, ...]) -> None:
    name = classes[reading.predicted]
    confidence = float(reading.probs[reading.predicted])
    st.markdown(f"## Prediction: {name}")
    runner_up = int(np.argsort(reading.probs)[-2])
    st.markdown(f"Confidence: **{confidence:.1%}** · runner-up: {classes[runner_up]} "
                f"({reading.probs[runner_up]:.1%})")
    steps = reading.steps
    top, left, bottom, right = steps.bbox
    if float((steps.grey > 0.5).mean()) > FULL_INK_SHARE:
        st.warning("Most of the canvas is covered in ink. The network has only seen thin strokes on black, "
                   "so this answer means little: press **Clear** and draw a digit.", icon=":material/format_paint:")
    elif max(bottom - top, right - left) < SMALL_INK_PX * max(steps.grey.shape) / CANVAS_PX:
        st.info("This drawing is tiny: it was enlarged to a 20-pixel box like every MNIST digit, so a dot "
                "becomes a blob. Draw bigger for a fairer test.", icon=":material/zoom_in:")
    show_chart(plots.probability_bars(reading.probs, classes, height=280), key="draw_probs",
               config={"displayModeBar": False},
               alt=f"Bar chart: the probability the network gives each class for your drawing; {name} is "
                   f"highest with {confidence:.0%}.")
    st.caption(f"Softmax of the network's 10 output scores. Prepared and predicted in "
               f"{reading.milliseconds:.0f} ms.")


def show_preparation(reading: Reading, name: str) -> None:
    steps = reading.steps
    st.header("What the network sees")
    if state.dataset_name() == "mnist":
        st.caption("Your drawing is prepared exactly like the MNIST digits the network learned from.")
    else:
        st.caption("Your drawing is prepared like an MNIST digit (fitted into a 20-pixel box). Fashion-MNIST "
                   "pictures fill the whole 28×28 frame instead, so expect shakier answers.")
    cols = st.columns([1, 1, 1, 1, 2.2], gap="small")
    h, w = steps.cropped.shape
    items = [
        (steps.grey, f"1 · Ink map ({steps.grey.shape[1]}×{steps.grey.shape[0]}): ink 1, background 0"),
        (steps.cropped, f"2 · Cropped to the ink ({w}×{h} px)"),
        (steps.resized, f"3 · Longest side scaled to 20 px ({steps.resized.shape[1]}×{steps.resized.shape[0]})"),
        (steps.centred, "4 · Centred in 28×28 by centre of mass: the network's input"),
    ]
    for col, (image, caption) in zip(cols, items):
        with col:
            st.image(png_data_uri(thumbnail(image)), caption=caption, width=THUMB_PX,
                     alt=f"{caption.split(' · ', 1)[-1]}: your drawing at this step, white ink on black, "
                         f"read as {name}.")
    with cols[4]:
        show_chart(plots.saliency_overlay(steps.centred, reading.saliency, height=240), key="draw_saliency",
                   config={"displayModeBar": False},
                   alt=f"Saliency map over your prepared 28×28 drawing: bright where a small change of a pixel "
                       f"would move the score for {name} most.")
        st.caption(f"Saliency: the brighter a pixel, the more a small change there would move the score "
                   f"for **{name}** (|gradient| of that logit with respect to the input).")


def epoch_probabilities(job, tensor: torch.Tensor, digest: str) -> tuple[list[int], np.ndarray]:
    """(epochs, (len(epochs), num_classes)): this drawing's probabilities after each epoch whose weights
    the run kept on disk; only new epochs are computed."""
    cached = st.session_state.get("draw_epochs")
    if cached is None or cached[0] != (digest, job.owner, job.id):
        cached = ((digest, job.owner, job.id), {})
    rows = cached[1]
    epochs = job.saved_epochs()
    for epoch in epochs:
        if epoch not in rows:
            model = job.model(epoch=epoch)
            if model is not None:
                rows[epoch] = predict_drawing(model, tensor).numpy()
    st.session_state["draw_epochs"] = cached
    kept = [e for e in epochs if e in rows]
    return kept, (np.stack([rows[e] for e in kept]) if kept else np.zeros((0, 0)))


def chosen_run() -> state.RunEntry | None:
    """The session run behind the chosen model, if the model is one (not the bundled or an uploaded one)."""
    key = state.selected_model_key()
    entry = state.runs().get(key) if key else None
    return entry if entry is not None and entry.job is not None else None


def current_reading(image: np.ndarray | None, digest: str | None, ink: str = "light") -> Reading | None:
    """The drawing read by the chosen model's newest weights (cached while neither changes)."""
    model, _ = state.active_model()
    if image is None or model is None:
        return None
    return read_drawing(image, digest, model, ink)


def prediction_panel(image: np.ndarray | None, digest: str | None, classes: tuple[str, ...],
                     ink: str = "light", own_handwriting: bool = True) -> None:
    """Beside the canvas: the answer, its probabilities, and, for a run in training, which weights gave it.

    `own_handwriting` is False for a sample MNIST digit: it is not the learner's writing to keep."""
    reading = current_reading(image, digest, ink)
    if reading is None:
        st.info(empty_hint("draw") or f"Draw {THING.get(state.dataset_name(), 'something')} on the black canvas "
                "with your mouse, finger or pen: one stroke is enough to start.", icon=":material/draw:")
        return
    show_prediction(reading, classes)
    if own_handwriting:
        label_control(reading.steps.tensor, reading.predicted, digest)  # keep it for Your handwriting
    run = chosen_run()
    snap = run.snapshot() if run is not None else None
    if snap is not None and snap.active and snap.latest:
        st.caption(f"Live: the weights of {snap.id} at epoch {snap.latest['epoch']}, batch "
                   f"{snap.latest['batch']}/{snap.latest['batches_per_epoch']}, refreshed every "
                   f"{LIVE_REFRESH_S:g} s while it trains.")


def show_learning(tensor: torch.Tensor | None, digest: str | None, classes: tuple[str, ...]) -> None:
    st.header("Watch your digit as it learns")
    run = chosen_run()
    if run is None:
        st.caption("Choose one of your trained runs (one training now works too) to see how its "
                   "answer for your drawing changed after every epoch.")
        nav.link(nav.TRAIN, "Train a network", ":material/model_training:")
        return
    if tensor is None:
        st.info("Draw on the canvas above to see how this run's answer changed after each epoch.")
        return
    epochs, probs = epoch_probabilities(run.job, tensor, digest)
    if not len(probs):
        st.info("The first point appears when this run finishes its first epoch.")
        return
    final = int(probs[-1].argmax())
    show_chart(plots.probabilities_over_epochs(probs, classes, highlight=final, epochs=epochs, height=300),
                    key="draw_epochs_chart", config={"displayModeBar": False})
    story = ", ".join(f"{e}: {classes[int(p.argmax())]} ({p.max():.0%})" for e, p in zip(epochs, probs))
    st.caption(f"Answer after each epoch: {story}.")


def insight_panel(image: np.ndarray | None, digest: str | None, classes: tuple[str, ...],
                  ink: str = "light") -> None:
    """Below the canvas: the preparation steps, the saliency, and the answer epoch by epoch."""
    reading = current_reading(image, digest, ink)
    if reading is not None:
        show_preparation(reading, classes[reading.predicted])
    show_learning(reading.steps.tensor if reading is not None else None, digest, classes)


thing = THING.get(state.dataset_name(), "something")
st.title(f"Draw {thing}")
st.markdown(f"Draw {thing} and the network reads it as you draw. Below you see the 28×28 image it really "
            "gets and which pixels decided its answer.")

classes = state.dataset().classes
left, right = st.columns([5, 6], gap="large")
with left:
    given = digit_input("draw")  # drawn, painted cell by cell, a sample digit or an uploaded photo
image, digest, ink = (given.image, given.digest, given.ink) if given is not None else (None, None, "light")

with right:
    model, model_label = state.model_picker("Model", help="The bundled pretrained model, or any run of this "
                                            "session, including one that is training right now.")
    # While the chosen run trains, both panels refresh themselves so they follow its newest weights.
    run = chosen_run()
    refresh = LIVE_REFRESH_S if run is not None and run.snapshot().active else None
    if model is None:
        st.warning(model_label, icon=":material/info:")
        nav.link(nav.TRAIN, "Train a network", ":material/model_training:")
    else:
        own = given is None or given.true_class is None  # a sample digit is MNIST's writing, not theirs
        st.fragment(run_every=refresh)(prediction_panel)(image, digest, classes, ink, own)
if model is not None:
    st.fragment(run_every=refresh)(insight_panel)(image, digest, classes, ink)
