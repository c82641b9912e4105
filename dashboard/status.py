"""The small training status shown in the sidebar of every page, refreshed while a run is active,
and the learner's personal link.

A run does not depend on this refresh: it trains on whether the tab is open, hidden or closed.
Each refresh only tells the classroom that the learner is still around (see Classroom.upkeep).
"""
from __future__ import annotations

import streamlit as st

from dashboard import state
from dashboard.identity import learner, personal_link
from simplecnn.jobs import JobSnapshot

REFRESH_SECONDS = 1.0  # live parts while a run trains
QUEUED_REFRESH_SECONDS = 3.0  # while it only waits: its queue position changes once per finished run


def refresh_seconds(job) -> float | None:
    """How often the live parts of a page refresh for this job: each second while it trains, every
    3 s while it waits in the queue (a class's queued runs were most of a server's refresh work),
    never without one."""
    if job is None:
        return None
    return QUEUED_REFRESH_SECONDS if job.status == "queued" else REFRESH_SECONDS


def live_fragment(name: str, body, job) -> None:
    """Run `body` as a fragment refreshing at refresh_seconds(job), remembering that interval."""
    interval = refresh_seconds(job)
    st.session_state[f"_refresh_{name}"] = interval
    st.fragment(run_every=interval)(body)()


def follow_refresh(name: str, job) -> None:
    """Inside a live fragment: when its job now wants another interval (queued -> training), rerun the
    whole page, which registers the fragment again at the new one."""
    if st.session_state.get(f"_refresh_{name}") != refresh_seconds(job):
        st.rerun()


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def progress_text(snap: JobSnapshot) -> tuple[float, str]:
    """(fraction done, one line of text) for a job snapshot."""
    if snap.status == "queued" or (snap.status == "stopping" and snap.queue_position):
        return 0.0, f"Waiting in the server queue: position {snap.queue_position or '?'}"
    if not snap.active and snap.status not in ("finished",) and snap.epoch < snap.epochs:
        done = (snap.epoch + snap.batch / max(snap.history.batches_per_epoch, 1)) / max(snap.epochs, 1)
        per_epoch = snap.history.batches_per_epoch or "?"
        return min(done, 1.0), f"Epoch {snap.epoch + 1}/{snap.epochs} · batch {snap.batch}/{per_epoch} · saved"
    latest = snap.latest
    if snap.elsewhere:  # its live reports go to another web server; its saves are what this one sees
        done = (snap.epoch + snap.batch / max(snap.history.batches_per_epoch, 1)) / max(snap.epochs, 1)
        per_epoch = snap.history.batches_per_epoch or "?"
        return min(done, 1.0), (f"Epoch {snap.epoch + 1}/{snap.epochs} · batch {snap.batch}/{per_epoch} · "
                                "training on another web server (shown as of its last save)")
    if snap.phase and snap.status in ("running", "stopping"):  # a process starting, or Ray placing the run
        return (min(max(latest["progress"], 0.0), 1.0) if latest else 0.0), snap.phase
    if not latest:
        return 0.0, "Starting…"
    text = (f"Epoch {latest['epoch']}/{latest['epochs']} · batch {latest['batch']}/{latest['batches_per_epoch']}"
            f" · {latest['images_per_second']:,.0f} img/s")
    if snap.status in ("running", "stopping"):
        text += f" · ETA {format_eta(latest['eta_seconds'])}"
    return min(max(latest["progress"], 0.0), 1.0), text


def _status_body() -> None:
    job = state.active_job()
    state.classroom().touch(learner())
    if job is None:
        if st.session_state.get("_status_was_active"):
            st.session_state["_status_was_active"] = False
            st.rerun()  # a run just ended: redraw the whole page with its results
        return
    st.session_state["_status_was_active"] = True
    follow_refresh("status", job)
    snap = job.snapshot()
    st.markdown(f"**Training** `{snap.id}`  \n{snap.label}")
    fraction, text = progress_text(snap)
    st.progress(fraction, text=text)
    if snap.latest:
        st.caption(f"loss {snap.latest['smoothed_loss']:.4f} · train acc {snap.latest['running_accuracy']:.1f}%")
    if st.button("Stop training", key="sidebar_stop", icon=":material/stop:", disabled=snap.status == "stopping"):
        job.stop()
        st.rerun()


def training_status() -> None:
    """Draw the status block in the sidebar; refreshes itself only while a run is active."""
    with st.sidebar:
        live_fragment("status", _status_body, state.active_job())


def learner_link_ui() -> None:
    """The learner's personal link in the sidebar, with the copy button of st.code."""
    with st.sidebar.expander("Your personal link", icon=":material/link:"):
        st.caption("Your runs are kept on this server under this link. Bookmark it to come back to them "
                   "after a reload, from another tab or another computer. **Anyone with this link sees and "
                   "can change your runs**: share it only with your teacher.")
        st.code(personal_link(), language=None, wrap_lines=True)
