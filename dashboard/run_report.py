"""The "Download the run report" button of the Train and Results pages (simplecnn.report does the work).

The report is made only when the learner presses the button: st.download_button takes a callable,
which Streamlit runs on click in another thread. That thread cannot use st.* (session state
included), so everything the report needs is gathered while the page is drawn, and the finished
report is kept in a plain dict that lives in st.session_state, per (run, weights version,
dataset): pressing again, or on the other page, reuses it. Only the newest report is kept (~5 MB).
The model is the learner's own run, so it never goes through st.cache_resource.
"""
from __future__ import annotations

import re
from typing import Callable

import streamlit as st

from simplecnn.evaluation import EvaluationResult, evaluate
from simplecnn.report import build_report

CACHE_KEY = "_run_reports"  # session_state: {(run id, weights version, dataset): report bytes}


def report_bytes(entry, dataset, dataset_name: str, cache: dict,
                 result: EvaluationResult | None = None) -> Callable[[], bytes]:
    """A no-argument function returning the report of `entry` (a trained run) as UTF-8 bytes.

    `result` is its test-set evaluation when the page already has it (Results); otherwise the
    function evaluates the run's newest weights on the test set with simplecnn.evaluation.evaluate.
    """
    job = entry.job
    snap = job.snapshot()
    key = (entry.id, snap.weights_version, dataset_name)

    def build() -> bytes:
        evaluation = result
        if evaluation is None:
            model = job.model()
            evaluation = evaluate(model, dataset.test_images, dataset.test_labels, num_classes=dataset.num_classes)
        return build_report(run_id=entry.id, label=entry.label, config=job.config, history=snap.history,
                            result=evaluation, images=dataset.test_images, classes=dataset.classes,
                            dataset=dataset_name, status=snap.status, message=snap.message).encode("utf-8")

    return _kept(cache, key, build)


def _kept(cache: dict, key: tuple, build: Callable[[], bytes]) -> Callable[[], bytes]:
    """`build` behind the session's one-report cache: pressing again, or on the other page, reuses it."""
    def make() -> bytes:
        cached = cache.get(key)
        if cached is None:
            cached = build()
            cache.clear()  # one report per session: each is ~5 MB
            cache[key] = cached
        return cached

    return make


def _loaded_dataset():
    """The loaded dataset, or None when its files are missing or damaged (the page says so elsewhere)."""
    from dashboard import state
    from simplecnn.data import DataError

    try:
        return state.dataset()
    except DataError:
        return None


def file_name(run_id: str) -> str:
    return "simplecnn-report-" + re.sub(r"[^A-Za-z0-9_-]", "_", run_id) + ".html"


def report_button(entry, key: str, result: EvaluationResult | None = None) -> bool:
    """The download button for a trained run that is not training and has finished an epoch; False
    (and nothing drawn) otherwise, or when the run's dataset is not the one loaded."""
    from dashboard import state

    if entry is None or entry.job is None or entry.dataset != state.dataset_name():
        return False
    snap = entry.snapshot()
    if snap.active or snap.epoch < 1:
        return False
    dataset = _loaded_dataset()
    if dataset is None:
        return False
    cache = st.session_state.setdefault(CACHE_KEY, {})
    st.download_button(
        "Download the run report (HTML)", report_bytes(entry, dataset, state.dataset_name(), cache, result),
        file_name=file_name(entry.id), mime="text/html", icon=":material/summarize:", key=key,
        on_click="ignore",
        help="One HTML file that opens offline: the settings, curves, per-class accuracy, confusion matrix, "
             "most confident mistakes, compute path and speed, and the PyTorch script. Made on the test set "
             "when you press it (a few seconds).")
    return True


def checkpoint_report_bytes(run_id: str, label: str, meta: dict, result: EvaluationResult, dataset,
                            dataset_name: str, cache: dict) -> Callable[[], bytes]:
    """A no-argument function returning the report of a checkpoint's model (its meta's config and
    history; `result` its test-set evaluation) as UTF-8 bytes, kept in `cache` like report_bytes."""
    key = (run_id, "checkpoint", dataset_name)

    def build() -> bytes:
        return build_report(run_id=run_id, label=label, config=meta["config"], history=meta.get("history") or {},
                            result=result, images=dataset.test_images, classes=dataset.classes,
                            dataset=dataset_name, status="finished").encode("utf-8")

    return _kept(cache, key, build)


def checkpoint_report_button(run_id: str, label: str, meta: dict, result: EvaluationResult, key: str) -> bool:
    """The same button for a model that is no run of this learner (the bundled one): its settings and
    curves come from the checkpoint's own metadata (config, history), its test result from the page."""
    from dashboard import state

    if not meta.get("config"):
        return False
    dataset = _loaded_dataset()
    if dataset is None:
        return False
    cache = st.session_state.setdefault(CACHE_KEY, {})
    make = checkpoint_report_bytes(run_id, label, meta, result, dataset, state.dataset_name(), cache)
    st.download_button(
        "Download the model report (HTML)", make, file_name=file_name(run_id), mime="text/html",
        icon=":material/summarize:", key=key, on_click="ignore",
        help="One HTML file that opens offline: the settings and curves this model was trained with (from "
             "its checkpoint), per-class accuracy, confusion matrix, most confident mistakes and the PyTorch "
             "script.")
    return True
