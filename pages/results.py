"""Results: how well the chosen model does on images it never trained on, and which ones it gets wrong.

Evaluating the 10,000 test images takes a second or two on a CPU, so each result is kept in this
learner's session per (model, weights version, dataset) and only recomputed when the weights change.
While a run trains, the page follows it on part of its validation split instead, and evaluates the
test set only when asked, so that training keeps the CPU.
"""
from __future__ import annotations


import numpy as np
import streamlit as st
import torch

from dashboard.charts import show_chart
from dashboard import nav, state
from dashboard.images import png_data_uri
from dashboard.run_report import checkpoint_report_button, report_button
from simplecnn import plots
from simplecnn.data import split_indices
from simplecnn.evaluation import EvaluationResult, evaluate

CACHE_KEY = "results_evaluations"  # session_state: {split: {(model key, weights version, dataset): result}}
CACHE_SIZE = {"test": 6, "validation": 2}  # results kept per session and split (~0.5 MB per test result)
GALLERY_SIZE = 24
GALLERY_COLS = 8
THUMB_SCALE = 3  # 28 px digits shown as 84 px, pixels kept sharp
LIVE_REFRESH_S = 3.0
LIVE_VAL_IMAGES = 1000  # validation images per live refresh (~0.6 s on 2 cores): a stable %, light on training
ANY = "any"


def _weights_version(key: str) -> int:
    entry = state.runs().get(key)
    return entry.job.weights_version if entry is not None and entry.job is not None else 0


def _cache(split: str) -> dict:
    return st.session_state.setdefault(CACHE_KEY, {}).setdefault(split, {})


def _evaluate(key: str, split: str, images: torch.Tensor, labels: torch.Tensor,
              spinner: str | None) -> tuple[EvaluationResult, int] | None:
    """Evaluate the model behind `key` at its current weights, reusing this session's earlier result."""
    version = _weights_version(key)
    cache, cache_key = _cache(split), (key, version, state.dataset_name())
    result = cache.get(cache_key)
    if result is None and key == state.BUNDLED and split == "test" and state.bundled_model() is not None:
        result = state.bundled_test_evaluation(state.dataset_name())  # shared by every session
    if result is None:
        model = state.get_model(key)  # may be a newer version by now; never an older one
        if model is None:
            return None
        if spinner is None:  # live refreshes: a spinner every few seconds would make the page jump
            result = evaluate(model, images, labels, num_classes=state.dataset().num_classes)
        else:
            with st.spinner(spinner):
                result = evaluate(model, images, labels, num_classes=state.dataset().num_classes)
        cache[cache_key] = result
        while len(cache) > CACHE_SIZE[split]:
            cache.pop(next(iter(cache)))  # oldest first
    return result, version


def _headline(result: EvaluationResult, what: str, n_images: int) -> None:
    wrong = int((result.predictions != result.labels).sum())
    cols = st.columns(4)
    cols[0].metric(f"{what} accuracy", f"{result.accuracy:.2f}%", border=True)
    cols[1].metric(f"{what} loss", f"{result.loss:.4f}", border=True,
                   help="Mean cross-entropy: how surprised the model is by the right answers, on average.")
    cols[2].metric("Misclassified", f"{wrong:,}", border=True)
    cols[3].metric("Images", f"{n_images:,}", border=True)


def _charts(result: EvaluationResult, classes, key_prefix: str) -> None:
    left, right = st.columns([11, 10])
    with left:
        st.markdown("**Confusion matrix**: row = true class, column = what the model said. "
                    "Everything off the diagonal is a mistake.")
        show_chart(plots.confusion_matrix(result.confusion, classes, height=460),
                        key=f"{key_prefix}_confusion")
    with right:
        st.markdown("**Accuracy per class**: which classes are hardest for this model. The dashed line "
                    f"is the overall accuracy, {result.accuracy:.2f}%.")
        per_class = np.nan_to_num(np.array(result.per_class_accuracy, dtype=float))
        low = max(0.0, float(per_class.min()) - 2.0) if per_class.size else 0.0
        fig = plots.bar_per_class(per_class, classes, y_title="Accuracy (%)", value_format=".1f",
                                  reference=result.accuracy,
                                  height=460)
        fig.update_yaxes(range=[low, 100.5], rangemode="normal")  # zoom in: all classes are close to 100 %
        show_chart(fig, key=f"{key_prefix}_per_class")


def _thumbnail(image_u8: torch.Tensor) -> np.ndarray:
    """(28, 28) uint8 -> (84, 84) uint8 by repeating pixels, so the browser does not blur them."""
    return np.kron(image_u8.numpy(), np.ones((THUMB_SCALE, THUMB_SCALE), dtype=np.uint8))


def _gallery(result: EvaluationResult, images: torch.Tensor, classes, key_prefix: str = "results",
             what: str = "Test image") -> None:
    """The model's most confident mistakes, filterable by true and predicted class."""
    st.header("Misclassified images, most confident first")
    options = [ANY, *range(len(classes))]
    fmt = lambda c: c if c == ANY else classes[c]  # noqa: E731
    cols = st.columns(2)
    true_cls = cols[0].selectbox("True class", options, format_func=fmt, key=f"{key_prefix}_true")
    pred_cls = cols[1].selectbox("Predicted class", options, format_func=fmt, key=f"{key_prefix}_pred")
    filters = dict(true=None if true_cls == ANY else true_cls, predicted=None if pred_cls == ANY else pred_cls)
    matching = len(result.mistakes(limit=len(result.labels), **filters))
    mistakes = result.mistakes(limit=GALLERY_SIZE, **filters)
    if not mistakes:
        st.success("No mistakes with these filters.")
        return
    st.caption(f"Showing the {len(mistakes)} most confident of {matching:,} mistakes that match the filters. "
               "A confident mistake is often a badly written digit, sometimes a wrong label in the data set.")
    captions = [f"true {classes[m.true]} → pred {classes[m.predicted]} ({100 * m.probability:.0f}%)"
                for m in mistakes]
    for start in range(0, len(mistakes), GALLERY_COLS):
        row = st.columns(GALLERY_COLS)
        for col, m, caption in zip(row, mistakes[start:start + GALLERY_COLS], captions[start:start + GALLERY_COLS]):
            col.image(png_data_uri(_thumbnail(images[m.index])), caption=caption,
                      alt=f"{what} {m.index}, labelled {classes[m.true]}, which the model read as "
                          f"{classes[m.predicted]}.")
    left, right = st.columns([1, 2])
    with left:
        choice = st.selectbox("Look closer at", range(len(mistakes)), key=f"{key_prefix}_closer",
                              format_func=lambda i: f"#{mistakes[i].index}: {captions[i]}")
        chosen = mistakes[min(choice, len(mistakes) - 1)]
        show_chart(plots.digit_image(images[chosen.index], height=260,
                                          title=f"{what.lower()} #{chosen.index}"), key=f"{key_prefix}_closer_image",
                   alt=f"{what} #{chosen.index}, 28×28 grey pixels: a handwritten {classes[chosen.true]} that "
                       f"the model read as {classes[chosen.predicted]}.")
    with right:
        st.markdown(f"True class **{classes[chosen.true]}**, predicted **{classes[chosen.predicted]}** "
                    f"with {100 * chosen.probability:.1f}%; the true class got "
                    f"{100 * chosen.probabilities[chosen.true]:.1f}%.")
        show_chart(plots.probability_bars(chosen.probabilities, classes, highlight=chosen.predicted,
                                               height=260, true=chosen.true), key=f"{key_prefix}_closer_probs",
                   alt=f"Bar chart of the model's probability for each class on {what.lower()} #{chosen.index}: "
                       f"{classes[chosen.predicted]} highest with {chosen.probability:.0%}, the true class "
                       f"{classes[chosen.true]} {chosen.probabilities[chosen.true]:.0%}.")


def _test_results(key: str, ds) -> None:
    outcome = _evaluate(key, "test", ds.test_images, ds.test_labels,
                        "Evaluating on the 10,000 test images…")
    if outcome is None:
        st.warning("This model is no longer available: pick another one above.")
        return
    result, _ = outcome
    if not report_button(state.runs().get(key), key="results_report", result=result) and key == state.BUNDLED:
        checkpoint_report_button(state.BUNDLED, "Bundled model (pretrained)", state.bundled_model_meta(), result,
                                 key="results_report")
    _show_test_result(result, ds)


def _show_test_result(result: EvaluationResult, ds) -> None:
    _headline(result, "Test", len(ds.test_labels))
    _charts(result, ds.classes, "results_test")
    _gallery(result, ds.test_images, ds.classes)


def _live_validation(key: str) -> None:
    """Part of the run's validation split, scored with its newest weights; reruns every few seconds."""
    entry = state.runs().get(key)
    if entry is None or entry.job is None:
        return
    snap = entry.snapshot()
    if not snap.active:
        st.rerun()  # training ended: draw the page again with the full test evaluation
    ds = state.dataset()
    cfg = entry.job.config
    all_val = split_indices(len(ds.train_labels), cfg.validation_split, cfg.seed, cfg.subset)[1]
    val_idx = all_val[:LIVE_VAL_IMAGES]
    if len(val_idx) == 0:
        st.info("This run holds no validation split (validation split 0): use the button below for the test set.")
        return
    outcome = _evaluate(key, "validation", ds.train_images[val_idx], ds.train_labels[val_idx], None)
    if outcome is None:
        return
    result, version = outcome
    latest = snap.latest or {}
    st.caption(f":material/update: Weights version {version}, epoch {latest.get('epoch', snap.epoch + 1)}"
               f"/{snap.epochs}, batch {latest.get('batch', 0)}/{latest.get('batches_per_epoch', '?')} · "
               f"{len(val_idx):,} of the run's {len(all_val):,} validation images "
               f"(held out of training) · refreshed every {LIVE_REFRESH_S:g} s")
    _headline(result, "Validation", len(val_idx))
    _charts(result, ds.classes, "results_val")
    _gallery(result, ds.train_images[val_idx], ds.classes, key_prefix="results_val", what="Validation image")


def _training_view(key: str, ds) -> None:
    st.header("Refreshed during training on the validation split")
    queued = state.runs()[key].snapshot().status == "queued"
    st.markdown(("The run is waiting for its turn in the server's training queue. " if queued else
                 "The run is still training. ")
                + "To keep training fast, the page scores a slice of the run's **validation split** "
                "(training images it holds back and never learns from) every few seconds, rather than "
                "the test set.")
    st.fragment(run_every=LIVE_REFRESH_S)(_live_validation)(key)
    st.header("Test set")
    on_demand = st.session_state.setdefault("results_on_demand", {})
    if st.button("Evaluate the current weights on the test set", key="results_test_now",
                 icon=":material/play_arrow:", help="Takes a second or two and slows training for that time."):
        outcome = _evaluate(key, "test", ds.test_images, ds.test_labels, "Evaluating on the 10,000 test images…")
        if outcome is not None:
            on_demand[key] = (outcome[1], outcome[0])
    if key in on_demand:
        version, result = on_demand[key]
        st.caption(f"Test-set evaluation of weights version {version}, taken during training; press the "
                   "button again for the newest weights.")
        _show_test_result(result, ds)
    else:
        st.caption("The full test-set evaluation appears here when training ends, or now with the button.")


st.title("Results")
st.markdown("How good is the model on the **test set**, 10,000 images it never saw during training, "
            "and where does it go wrong?")

dataset = state.dataset()
model, model_label = state.model_picker()
if model is None:
    st.info(model_label)
    nav.link(nav.TRAIN, "Train a model", icon=":material/model_training:")
    st.stop()

model_key = state.selected_model_key()
run_entry = state.runs().get(model_key)
if run_entry is not None and run_entry.job is not None and run_entry.snapshot().active:
    _training_view(model_key, dataset)
else:
    _test_results(model_key, dataset)
