"""A lesson's queued comparison on the page: its stored result and its progress while it trains.

Lessons 8 and 12 train side-by-side runs through simplecnn.comparison (a worker process, the class's
queue). Both read the finished result back from the learner's folder and show a progress bar with a
Stop button while it waits or trains; this module is that shared part.
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

from dashboard import state
from dashboard.identity import learner
from simplecnn.comparison import load_result


def comparison_job(runner: str):
    """The learner's comparison job if it runs `runner` (lessons share the learner's one comparison slot)."""
    job = state.classroom().comparison(learner())
    return job if job is not None and getattr(job, "runner", "overfitting") == runner else None


def stored_runs(name: str, make: Callable[..., object]) -> tuple[list | None, dict | None]:
    """The learner's last finished comparison `name` as make(**run) objects, and the settings it ran with."""
    result = load_result(state.classroom().comparison_path(learner(), name))
    if result is None:
        return None, None
    try:
        return [make(**r) for r in result["runs"]], result.get("settings")
    except TypeError:  # written by an older version with other fields
        return None, None


def comparison_progress(runner: str, prefix: str, stop_label: str) -> None:
    """While the job waits or trains: progress and Stop (run in a fragment every second); a rerun at the end."""
    job = comparison_job(runner)
    if job is None or not job.active:
        if st.session_state.pop(f"{prefix}_was_active", False):
            st.rerun()
        if job is not None and job.status == "failed":
            st.error(job.message)
        return
    st.session_state[f"{prefix}_was_active"] = True
    position = state.scheduler().position(job)
    text = f"Waiting for a free training slot (position {position})" if position else job.progress_text
    st.progress(min(job.progress, 1.0), text=text)
    if st.button(stop_label, key=f"{prefix}_stop", icon=":material/stop:"):
        job.stop()
