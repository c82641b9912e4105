"""Streamlit side of "Teach the model your handwriting" (core: simplecnn.handwriting).

`label_control` is the small form under the Draw page's prediction that keeps a drawing with the
digit it really is; the rest serves the Your handwriting page: the learner's store, small pictures,
the fine-tune run the page follows, and its before/after (computed once per weights version).
"""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from dashboard import nav, state
from dashboard.identity import learner
from dashboard.images import png_data_uri
from simplecnn.checkpoints import load_checkpoint
from simplecnn.handwriting import (MAX_DRAWINGS, Comparison, DrawingStore, HandwritingError, compare,
                                   load_examples, score)

PAGE = "pages/handwriting.py"
TITLE = "Your handwriting"
ICON = ":material/edit_note:"
PICTURE_PX = 84  # a stored 28x28 drawing shown 3x, pixel for pixel


def drawing_store() -> DrawingStore:
    """This learner's labelled drawings, beside their runs in the run store."""
    return DrawingStore(state.classroom().store.learner_dir(learner()) / "handwriting")


def picture(image: torch.Tensor | np.ndarray, size: int = PICTURE_PX) -> str:
    """A (28, 28) image in [0, 1] as a PNG data URI, enlarged by whole pixels (no smoothing)."""
    grey = np.clip(np.asarray(image, dtype=np.float32).reshape(28, 28), 0.0, 1.0)
    factor = max(1, size // 28)
    return png_data_uri((np.kron(grey, np.ones((factor, factor), dtype=np.float32)) * 255).astype(np.uint8))


def _save(image: torch.Tensor, predicted: int, model_label: str, digest: str, key: str) -> None:
    label = st.session_state.get(key)
    if label is None:
        st.session_state["hw_saved_note"] = (digest, "error", "Pick the right digit first.")
        return
    try:
        drawing_store().add(image, int(label), predicted, model=model_label)
    except HandwritingError as exc:
        st.session_state["hw_saved_note"] = (digest, "error", str(exc))
        return
    said = "it was right" if int(label) == predicted else f"the model said {predicted}"
    st.session_state["hw_saved_note"] = (digest, "ok", f"Kept as a **{label}** ({said}).")


def label_control(image: torch.Tensor, predicted: int, digest: str | None) -> None:
    """Under the prediction: "Wrong? Tell it the right digit", saved with the drawing for a fine-tune.

    `image` is the prepared (1, 1, 28, 28) tensor the model read; only MNIST models are taught."""
    if state.dataset_name() != "mnist" or digest is None:
        return
    model_label = state.model_choices().get(state.selected_model_key() or "", "")
    key = f"hw_label_{digest[:12]}"
    with st.container(key="hw_label_control"):
        c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
        c1.selectbox("Wrong? Tell it the right digit", list(range(10)), index=None, key=key,
                     placeholder="the right digit", help="Kept with your drawing: the Your handwriting "
                     "page can teach your model these digits.")
        c2.button("Keep it", key=f"hw_keep_{digest[:12]}", icon=":material/bookmark_add:",
                  on_click=_save, args=(image, predicted, model_label, digest, key), width="stretch")
        note = st.session_state.get("hw_saved_note")
        if note is not None and note[0] == digest:
            if note[1] == "ok":
                st.success(f"{note[2]} You have {drawing_store().count()} labelled drawings.",
                           icon=":material/bookmark_added:")
                nav.link(PAGE, "Teach them to your model", ICON)
            else:
                st.error(note[2], icon=":material/block:")


def fine_tune_runs() -> list:
    """The learner's fine-tune runs (RunViews whose folder holds a fine-tune's examples), oldest first."""
    return [view for view in state.runs().values()
            if view.job is not None and not view.error and view.record.meta.get("handwriting")]


def current_fine_tune():
    """The fine-tune the page follows: the one started here, else the newest one."""
    runs = fine_tune_runs()
    wanted = st.session_state.get("hw_run_id")
    for view in runs:
        if view.id == wanted:
            return view
    return runs[-1] if runs else None


def comparison(view) -> Comparison | None:
    """Before (init.pt) and after (newest weights) of a fine-tune run, cached per weights version."""
    job = view.job
    key = (view.id, job.weights_version, job.epoch, job.batch)
    cached = st.session_state.get("hw_comparison")
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        examples = load_examples(job.run.examples_path)
        before = load_checkpoint(job.run.init_path)[0]
    except (OSError, ValueError) as exc:
        st.error(f"{view.id} cannot be compared: {exc}.", icon=":material/error:")
        return None
    after = job.model()
    result = compare(before, after, examples, state.dataset())
    st.session_state["hw_comparison"] = (key, result)
    return result


def unseen_scores(view, drawings) -> tuple[int, int, int] | None:
    """(drawings, right before, right after) on the learner's drawings this fine-tune never trained on
    (kept after it started): the fair test of whether it learned the handwriting or only the pictures.
    None when there are none."""
    job = view.job
    try:
        trained = set(load_examples(job.run.examples_path).get("ids", []))
        before = load_checkpoint(job.run.init_path)[0]
    except (OSError, ValueError):
        return None
    unseen = [d for d in drawings if d.id not in trained]
    if not unseen:
        return None
    key = (view.id, job.weights_version, tuple(d.id for d in unseen))
    cached = st.session_state.get("hw_unseen")
    if cached is not None and cached[0] == key:
        return cached[1]
    images = torch.stack([d.image for d in unseen])  # (n, 28, 28)
    labels = torch.tensor([d.label for d in unseen])  # (n,)
    result = (len(unseen), score(before, images, labels).correct, score(job.model(), images, labels).correct)
    st.session_state["hw_unseen"] = (key, result)
    return result


__all__ = ["MAX_DRAWINGS", "drawing_store", "label_control", "picture", "fine_tune_runs", "current_fine_tune",
           "comparison", "unseen_scores"]
