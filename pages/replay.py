"""Replay training: a slider over the weights a run kept as it trained (simplecnn.snapshots), showing
conv1's filters, the feature maps and probabilities of one image, and a confusion matrix, at each moment.

Each snapshot is a file on disk; what the page computes from one (a forward pass over 1,000 test images
and one over the chosen image) is cached per file and modification time, so moving the slider back
to a snapshot already seen costs nothing. While the run trains, a light fragment only watches for new
snapshot files and redraws the page when one appears.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from dashboard.charts import show_chart
from dashboard import nav, state
from dashboard.status import follow_refresh, live_fragment
from simplecnn import plots
from simplecnn.inspection import as_batch
from simplecnn.snapshots import (
    REPLAY_PER_CLASS,
    Snapshot,
    list_snapshots,
    load_snapshot,
    neighbour_correlation,
    relative_change,
    replay_indices,
    snapshot_reading,
    snapshot_view,
)

SLIDER_KEY = "replay_step"
INPUTS = ("Your drawing", "A test digit")
FILTER_VIEWS = ("Weights", "Change since step 0")


# -- computations, cached per snapshot file -------------------------------------------------------
def _stamp(snapshot: Snapshot) -> int:
    try:
        return snapshot.path.stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_data(max_entries=64, show_spinner=False)
def _view(path: str, stamp: int, dataset_name: str, _snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """(conv1 filters (32, 5, 5), confusion counts (C, C)) of one snapshot; keyed on its path and mtime."""
    ds = state.shared_dataset(dataset_name)
    idx = replay_indices(ds.test_labels)
    view = snapshot_view(load_snapshot(_snapshot), ds.test_images[idx], ds.test_labels[idx], ds.num_classes)
    return view.filters, view.confusion


@st.cache_data(max_entries=128, show_spinner=False)
def _reading(path: str, stamp: int, pixels: np.ndarray, _snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """(conv1 feature maps (32, 24, 24), probabilities (C,)) of one image under one snapshot."""
    return snapshot_reading(load_snapshot(_snapshot), torch.from_numpy(pixels))


def _two(value: float) -> str:
    """Two decimals, without the "-0.00" of a tiny negative number."""
    return f"{value:.2f}".replace("-0.00", "0.00")


# -- the image to follow --------------------------------------------------------------------------
def _drawing() -> torch.Tensor | None:
    """The Draw page's latest prepared input (1, 1, 28, 28), or None when there is none to use."""
    tensor = st.session_state.get("draw_tensor")
    if tensor is None:
        cached = st.session_state.get("draw_reading")
        reading = cached[1] if isinstance(cached, tuple) and len(cached) == 2 else None
        tensor = getattr(getattr(reading, "steps", None), "tensor", None)
    if tensor is None:
        return None
    try:
        return as_batch(torch.as_tensor(tensor))[:1]
    except (ValueError, TypeError, RuntimeError):  # another page's format changed: use a test digit
        return None


def _pick_input(ds) -> tuple[torch.Tensor, str, int | None]:
    """(1, 1, 28, 28) input in [0, 1], its description, its true class (None for a drawing)."""
    source = st.segmented_control("Image to follow", INPUTS, default=INPUTS[0], key="replay_source",
                                  required=True)
    if source == INPUTS[0]:
        drawing = _drawing()
        if drawing is not None:
            return drawing.float(), "your latest drawing", None
        st.info("Nothing drawn yet: the replay follows a test digit instead. Draw a digit on the Draw page "
                "and come back to follow yours.", icon=":material/draw:")
        nav.link(nav.DRAW, "Draw a digit", icon=":material/draw:")
    n = len(ds.test_labels)
    index = int(st.number_input(f"Test image index (0–{n - 1})", min_value=0, max_value=n - 1, value=0, step=1,
                                key="replay_index"))
    return as_batch(ds.test_images[index]), f"test image #{index}", int(ds.test_labels[index])


# -- the run and its snapshots ---------------------------------------------------------------------
def _trained_runs() -> dict:
    """The learner's own trained runs on the current dataset (uploads have no training to replay)."""
    return {key: entry for key, entry in state.runs().items()
            if entry.job is not None and not entry.error and entry.dataset == state.dataset_name()}


def _watch(entry, count: int) -> None:
    """While the run trains: redraw the page when a new snapshot is written or training ends."""
    job = entry.job
    follow_refresh("replay", job)
    now = len(list_snapshots(entry.record.dir))
    if now != count or not job.active:
        st.rerun()
    st.caption(f":material/update: {entry.id} is training: {count} snapshot{'s' if count != 1 else ''} so far. "
               "New ones appear here as the training process writes them.")


def _slider(snaps: list[Snapshot]) -> Snapshot:
    by_step = {s.step: s for s in snaps}
    if st.session_state.get(SLIDER_KEY) not in by_step:  # another run, or a run replaced on disk
        st.session_state.pop(SLIDER_KEY, None)
    step = st.select_slider("Snapshot", options=list(by_step), key=SLIDER_KEY,
                            format_func=lambda s: by_step[s].label(),
                            help="Move through the run's kept weights: step 0 is the untrained network.")
    return by_step[step]


def _show(snapshot: Snapshot, snaps: list[Snapshot], x: torch.Tensor, description: str,
          truth: int | None) -> None:
    ds = state.dataset()
    classes = ds.classes
    stamp = _stamp(snapshot)
    try:
        filters, confusion = _view(str(snapshot.path), stamp, state.dataset_name(), snapshot)
        maps, probs = _reading(str(snapshot.path), stamp, x.numpy().astype(np.float32), snapshot)
    except ValueError as exc:  # a damaged or vanished file: say which, keep the page
        st.error(f"This snapshot cannot be read: {exc}")
        return
    n_images = int(confusion.sum())
    accuracy = 100.0 * float(np.trace(confusion)) / max(n_images, 1)
    position = snaps.index(snapshot)
    cols = st.columns(4)
    cols[0].metric("Optimizer steps", f"{snapshot.step:,}", border=True)
    cols[1].metric("Epochs", f"{snapshot.epoch:.2f}", border=True)
    cols[2].metric("Training images seen", f"{snapshot.images_seen:,}", border=True)
    cols[3].metric("Test accuracy", f"{accuracy:.1f}%", border=True,
                   help=f"On {n_images:,} test images, the first {REPLAY_PER_CLASS} of each class: the same "
                        "images at every snapshot.")
    st.caption(f"Snapshot {position + 1} of {len(snaps)}.")

    st.header("conv1's 32 filters")
    start = snaps[0]
    start_filters = (_view(str(start.path), _stamp(start), state.dataset_name(), start)[0]
                     if start.step == 0 else None)
    shown = filters
    if start_filters is not None:
        moved = relative_change(filters, start_filters)
        st.markdown(f"Since step 0 these weights have moved by **{100 * moved:.1f}%** of their starting size "
                    "(‖W − W₀‖ / ‖W₀‖).")
        if snapshot.step > 0:
            st.markdown(f"How smooth? The correlation of each weight with its right and lower neighbour is "
                        f"**{_two(neighbour_correlation(filters))}** in these weights and "
                        f"**{_two(neighbour_correlation(filters - start_filters))}** in the change since step 0. "
                        "Random noise scores about 0, smooth strokes and edges score high: training adds "
                        "smooth patterns on top of the random start, which still outweighs them after an epoch "
                        "or two.")
        view = st.segmented_control("Show", FILTER_VIEWS, default=FILTER_VIEWS[0], key="replay_filter_view",
                                    required=True)
        if view == FILTER_VIEWS[1]:
            shown = filters - start_filters
    st.caption("Each 5×5 square is one filter: orange rewards ink at that spot, blue punishes it. \"Change since "
               "step 0\" shows only what training added to the random start. The colour range follows the "
               "largest value shown (see the scale).")
    show_chart(plots.image_grid(shown, titles=[f"filter {i}" for i in range(len(shown))], cols=16,
                                     colorscale=plots.DIVERGING, zmid=0.0), key="replay_filters")

    st.header(f"Following {description}")
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**conv1's 32 feature maps** (24×24): each filter slid over the image. Where a map is "
                    "orange, the image looks like that filter's orange pattern.")
        show_chart(plots.image_grid(maps, titles=[f"#{i}" for i in range(len(maps))], cols=8,
                                         colorscale=plots.DIVERGING, zmid=0.0), key="replay_maps")
    with right:
        predicted = int(np.argmax(probs))
        verdict = "" if truth is None else (" (right)" if predicted == truth else f" (wrong: it is {classes[truth]})")
        st.markdown(f"**Probabilities**: the network says **{classes[predicted]}** with "
                    f"{100 * float(probs[predicted]):.1f}%{verdict}.")
        show_chart(plots.probability_bars(probs, classes, height=280), key="replay_probs")
        show_chart(plots.digit_image(x[0, 0], height=220, title=description), key="replay_input")

    st.header("Confusion matrix")
    st.caption(f"The same {n_images:,} test images ({REPLAY_PER_CLASS} per class) at every snapshot: row = true "
               "class, column = the network's answer. Before training most answers fall in one or two "
               "columns; watch the diagonal fill.")
    show_chart(plots.confusion_matrix(confusion, classes, height=440), key="replay_confusion")


# -- the page --------------------------------------------------------------------------------------
st.title("Replay training")
st.markdown(
    "A run keeps its weights at a few moments as it trains: before the first step, after steps 1, 3, "
    "10, 30, 100, 300 … of the first epoch, and after every epoch. Move the slider to travel through them. "
    "**What to watch:** the answers change first. After a few dozen steps the probabilities go from a "
    "near-even spread to one confident bar and the confusion matrix gathers on its diagonal. conv1's "
    "filters start as random speckle and change slowly and steadily; the line above them says how far they "
    "have moved since step 0. "
    "Switch to \"Change since step 0\" to see only what training added to the random start.")

runs = _trained_runs()
if not runs:
    st.info("No run to replay yet. The bundled model was trained before this app started, so it kept no "
            "snapshots, and uploaded models have none either. Train a run: its snapshots appear here while "
            "it trains.", icon=":material/replay:")
    nav.link(nav.TRAIN, "Train a model", icon=":material/model_training:")
    st.stop()

choices = state.model_choices()
options = list(runs)
preferred = state.selected_model_key()
if preferred == state.BUNDLED:
    st.caption("The model you chose elsewhere, the bundled one, kept no snapshots: pick one of your runs.")
default = options.index(preferred) if preferred in runs else len(options) - 1
run_key = st.selectbox("Run", options, index=default, key="replay_run", format_func=lambda k: choices.get(k, k))
entry = runs[run_key]
snaps = list_snapshots(entry.record.dir)
snap = entry.snapshot()
if snap.active:
    def _watch_this_run() -> None:
        _watch(entry, len(snaps))

    live_fragment("replay", _watch_this_run, entry.job)
if not snaps:
    st.info("This run has no snapshots yet: the first is written when its training process starts. Runs "
            "trained before replay existed only have their epoch weights, if any.", icon=":material/hourglass_top:")
    st.stop()

chosen = _slider(snaps)
image, description, true_class = _pick_input(state.dataset())
_show(chosen, snaps, image, description, true_class)
