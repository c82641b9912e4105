"""The small training status shown in the sidebar of every page, refreshed while a run is active,
and the learner's personal link.

A run does not depend on this refresh: it trains on whether the tab is open, hidden or closed.
Each refresh only tells the classroom that the learner is still around (see Classroom.upkeep).
"""
from __future__ import annotations

import html
import time

import streamlit as st

from dashboard import state
from dashboard.identity import learner, personal_link
from simplecnn.jobs import JobSnapshot

REFRESH_SECONDS = 1.0  # live parts while a run trains
QUEUED_REFRESH_SECONDS = 3.0  # while it only waits: its queue position changes once per finished run


def refresh_seconds(job) -> float | None:
    """How often the live parts of a page refresh for this job: each second while it trains, every
    3 s while it waits in the queue or for a Ray worker (a class's waiting runs were most of a
    server's refresh work), never without one."""
    if job is None:
        return None
    return QUEUED_REFRESH_SECONDS if job.waiting else REFRESH_SECONDS


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


ANNOUNCE_EVERY_S = 5.0  # the polite status speaks at most this often while a run trains


def spoken_status(snap: JobSnapshot | None) -> str:
    """A short sentence for screen readers about a run: changes on epoch boundaries, not every batch."""
    if snap is None:
        return ""
    if snap.status == "queued":
        return f"{snap.id} is waiting in the server queue."
    last = snap.history.last_epoch
    accuracy = (f", validation accuracy {last['val_accuracy']:.1f}%"
                if last and last.get("val_accuracy") is not None else "")
    if snap.active:
        return f"{snap.id} is training: epoch {min(snap.epoch + 1, snap.epochs)} of {snap.epochs}{accuracy}."
    if snap.status == "finished":
        return f"{snap.id} finished: {snap.epochs} of {snap.epochs} epochs{accuracy}."
    return f"{snap.id} {snap.status} after {snap.epoch} of {snap.epochs} epochs{accuracy}."


def polite_status(snap: JobSnapshot | None, now: float | None = None) -> None:
    """A polite live region (role=status) saying what the run does; it takes a new sentence at most
    every ANNOUNCE_EVERY_S seconds while the run is active, at once when the run stops or ends.

    st.progress is not announced by screen readers, and announcing its text would mean every second."""
    now = time.monotonic() if now is None else now
    said, when = st.session_state.get("_polite_status", ("", float("-inf")))
    text = spoken_status(snap)
    settled = snap is None or not snap.active
    if text != said and (settled or now - when >= ANNOUNCE_EVERY_S):
        said, when = text, now
        st.session_state["_polite_status"] = (said, when)
    st.markdown(f'<div role="status" aria-live="polite" class="simplecnn-status">{html.escape(said)}</div>',
                unsafe_allow_html=True)


def _status_body() -> None:
    job = state.active_job()
    state.classroom().touch(learner())
    if job is None:
        last_id = st.session_state.get("_status_run")  # the run this tab last saw training
        last = state.runs().get(last_id) if last_id else None
        polite_status(last.snapshot() if last is not None and last.job is not None else None)
        if st.session_state.get("_status_was_active"):
            st.session_state["_status_was_active"] = False
            st.rerun()  # a run just ended: redraw the whole page with its results
        return
    st.session_state["_status_was_active"] = True
    follow_refresh("status", job)
    snap = job.snapshot()
    st.session_state["_status_run"] = snap.id
    polite_status(snap)
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
