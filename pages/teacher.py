"""Class overview (teacher only): the queue and the running trainings, the server's load, and controls.

Registered by app.py only when the link carries the server's teacher token (dashboard.teacher).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import state, teacher
from dashboard.status import format_eta
from simplecnn.sysinfo import rss_bytes, server_status

REFRESH_SECONDS = 2.0

if not teacher.is_teacher():  # opened some other way (a test, an old link): show nothing of the class
    st.error("This page is for the teacher's link only.")
    st.stop()

room = state.classroom()
st.title("Class overview")
st.caption("Everything training or waiting on this server, from every learner. Learners are shown by a short "
           "alias; their links stay private.")


def live_table() -> None:
    items = room.live_jobs()
    if not items:
        st.info("Nothing is training or waiting right now.")
        return
    rows = []
    for learner_key, job in items:
        snap = job.snapshot()
        latest = snap.latest or {}
        rows.append({
            "learner": room.alias(learner_key), "run": snap.id, "status": snap.status,
            "place in queue": snap.queue_position or "", "settings": snap.label,
            "epochs": snap.epochs, "progress %": round(100 * latest.get("progress", 0.0), 1),
            "ETA": format_eta(latest["eta_seconds"]) if latest and snap.status == "running" else "",
            "training process MB": round(rss_bytes(job.process_id) / 1e6) if job.process_id else None,
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def server_panel() -> None:
    info = server_status(room.store.root)
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("CPU load (1 min)", f"{info['load1']:.2f}", help=f"{info['cpus']} cores; load 5 min {info['load5']:.2f}")
    c2.metric("Memory available", f"{info['mem_available'] / 1e9:.1f} GB",
              help=f"of {info['mem_total'] / 1e9:.1f} GB; this web server uses {info['server_rss'] / 1e6:.0f} MB")
    c3.metric("Disk used by runs", f"{room.store.total_bytes() / 1e6:.1f} MB",
              help=f"in {room.store.root}; {info['disk_free'] / 1e9:.1f} GB free on that disk")
    c4.metric("Training now", f"{room.scheduler.running} of {room.scheduler.max_concurrent}")
    c5.metric("Waiting", room.scheduler.waiting)


def live_view() -> None:
    server_panel()
    live_table()


st.fragment(run_every=REFRESH_SECONDS)(live_view)()

st.header("Act on a run")
items = room.live_jobs()
if items:
    labels = {f"{k}/{j.id}": f"{room.alias(k)} · {j.id} · {j.status} · {j.label}" for k, j in items}
    jobs = {f"{k}/{j.id}": j for k, j in items}
    choice = st.selectbox("Run", list(labels), format_func=labels.get, key="teacher_run")
    job = jobs[choice]
    c1, c2, c3 = st.columns(3)
    if c1.button("Stop (saved, the learner can resume)", icon=":material/stop:", key="teacher_stop",
                 disabled=job.status != "running"):
        job.stop("Stopped by the teacher; nothing is lost: press Resume to go on when it is your turn again.")
        st.rerun()
    if c2.button("Cancel (leave the queue)", icon=":material/cancel:", key="teacher_cancel",
                 disabled=job.status != "queued"):
        job.stop("Taken out of the queue by the teacher; press Resume to queue it again.")
        st.rerun()
    if c3.button("Move to the front of the queue", icon=":material/vertical_align_top:", key="teacher_front",
                 disabled=job.status != "queued"):
        room.scheduler.move_to_front(job)
        st.rerun()
else:
    st.caption("No run to act on.")

st.header("Server settings")
st.caption("Take effect at once, for everyone, and are kept across restarts.")
with st.form("teacher_settings"):
    c1, c2 = st.columns(2)
    concurrent = c1.number_input("Trainings at once", min_value=1, max_value=32, value=room.scheduler.max_concurrent,
                                 key="teacher_concurrent",
                                 help="Each training uses the CPU cores it can get; on 2 cores, 1 is fastest overall.")
    budget = c2.number_input("Budget per run (training images × epochs)", min_value=1_000, max_value=100_000_000,
                             step=50_000, value=room.limits.max_run_images, key="teacher_budget",
                             help="A larger budget lets one learner hold a training slot longer.")
    if st.form_submit_button("Apply", icon=":material/check:", key="teacher_apply"):
        room.set_max_concurrent(int(concurrent))
        room.set_max_run_images(int(budget))
        st.success(f"Now {int(concurrent)} training(s) at once and {int(budget):,} images per run.")
