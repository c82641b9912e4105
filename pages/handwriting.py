"""Your handwriting: the drawings the learner labelled on the Draw page, a fine-tune on them, before/after.

The fine-tune is a training run like any other (queued, in its own process, with progress, ETA and
Stop); it trains a copy of the chosen model on the drawings mixed with MNIST (simplecnn.handwriting).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import nav, state
from dashboard.handwriting import (comparison, current_fine_tune, drawing_store, fine_tune_runs,
                                   picture, unseen_scores)
from dashboard.identity import learner
from dashboard.status import follow_refresh, live_fragment, progress_text
from simplecnn.classroom import RunRefused, split_sizes
from simplecnn.handwriting import (FINE_TUNE_EPOCHS, MAX_DRAWINGS, MNIST_MIX, TEST_SUBSET, HandwritingError,
                                   fine_tune_config, fine_tune_examples, start_fine_tune)

GALLERY_COLUMNS = 6


def gallery(store, drawings) -> None:
    st.header(f"Your labelled drawings ({len(drawings)} of at most {MAX_DRAWINGS})")
    for drawing_id in store.damaged:
        c1, c2 = st.columns([4, 1])
        c1.warning(f"The file of drawing {drawing_id} cannot be read.", icon=":material/broken_image:")
        if c2.button("Delete it", key=f"hw_del_{drawing_id}"):
            store.delete(drawing_id)
            st.rerun()
    if not drawings:
        st.info("No labelled drawings yet. On the **Draw** page, draw a digit; when the network reads it "
                "wrong, pick the right digit under its answer (**Wrong? Tell it the right digit**) and press "
                "**Keep it**. A handful of drawings is enough to see a change.", icon=":material/draw:")
        nav.link(nav.DRAW, "Draw a digit", ":material/draw:")
        return
    wrong = sum(d.label != d.predicted for d in drawings)
    st.caption(f"{wrong} of them were read wrong when you kept them. Each shows the 28×28 image the network "
               "reads, the digit you said it is, and what the model said then.")
    for start in range(0, len(drawings), GALLERY_COLUMNS):
        cols = st.columns(GALLERY_COLUMNS)
        for col, d in zip(cols, drawings[start:start + GALLERY_COLUMNS]):
            with col:
                said = "read right" if d.label == d.predicted else f"model said {d.predicted}"
                st.image(picture(d.image), width=84, caption=f"You: {d.label} · {said}",
                         alt=f"Your drawing of a {d.label}; the model read it as {d.predicted}.")
                if st.button("Delete", key=f"hw_del_{d.id}", icon=":material/delete:",
                             help="Remove this drawing from your set"):
                    store.delete(d.id)
                    st.rerun()


def base_choices() -> dict[str, str]:
    """key -> label of the models a fine-tune may start from: the bundled one and the learner's runs
    that are not training now (a copy of their newest weights is taken)."""
    choices = {}
    for key, label in state.model_choices().items():
        view = state.runs().get(key)
        if view is not None and view.job is not None and view.job.active:
            continue
        choices[key] = label
    return choices


def start_ui(drawings) -> None:
    st.header("Fine-tune a model on them")
    choices = base_choices()
    if not choices:
        st.warning("There is no model to start from: train one on the Train page.", icon=":material/info:")
        return
    options = list(choices)
    key = st.selectbox("Start from", options, format_func=choices.get, key="hw_base",
                       help="The model is copied: the one you choose stays as it is, and the fine-tuned copy "
                            "becomes a new run in your list.")
    model = state.get_model(key)
    if model is None:
        st.error("This model cannot be read.", icon=":material/error:")
        return
    examples = fine_tune_examples(drawings)
    config = fine_tune_config(model, examples)
    room = state.classroom()
    n_train, _ = split_sizes(config)
    copies = len(drawings) * examples["repeat"]
    st.markdown(f"The copy trains for {FINE_TUNE_EPOCHS} epochs on **{n_train:,} images**: your {len(drawings)} "
                f"drawing{'s' if len(drawings) != 1 else ''}, each repeated {examples['repeat']}× "
                f"({copies:,} copies), mixed with {MNIST_MIX:,} MNIST training images, with a learning rate of "
                f"{config.learning_rate:g} (a tenth of a fresh run's). The MNIST images keep it from forgetting "
                f"the digits it already knows; the small step keeps it close to where it started.")
    st.caption(f":material/timer: About {room.estimate_seconds(config):.0f} s on this server, more if others "
               "are training.")
    busy = state.active_job()
    if busy is not None:
        st.caption(f"{busy.id} is {busy.status}: one run per learner trains or waits at a time.")
    if st.button("Fine-tune", type="primary", icon=":material/model_training:", key="hw_start",
                 disabled=busy is not None):
        try:
            base_label = "the bundled model" if key == state.BUNDLED else key
            job = start_fine_tune(room, learner(), drawings, model, base_label, key)
        except (RunRefused, HandwritingError) as exc:
            st.error(f"**Not started.** {exc}", icon=":material/block:")
            return
        st.session_state["hw_run_id"] = job.id
        st.rerun()


def verdict(before: int, after: int, label: int) -> str:
    if before != label and after == label:
        return "fixed"
    if before == label and after != label:
        return "broken"
    return "right" if after == label else "still wrong"


def results_ui(view) -> None:
    result = comparison(view)
    if result is None:
        return
    st.subheader("Before and after")
    d0, d1 = result.drawings_before, result.drawings_after
    t0, t1 = result.test_before, result.test_after
    m1, m2 = st.columns(2)
    m1.metric("Your drawings read right", f"{d1.correct} of {d1.total}", delta=f"{d1.correct - d0.correct:+d}",
              help=f"Before the fine-tune: {d0.correct} of {d0.total}.")
    m2.metric(f"MNIST test accuracy (first {t0.total:,} images)", f"{t1.accuracy:.2f}%",
              delta=f"{t1.accuracy - t0.accuracy:+.2f} points", help=f"Before the fine-tune: {t0.accuracy:.2f}%.")
    st.markdown(f"Before: **{d0.correct} of {d0.total}** of your drawings and **{t0.accuracy:.2f}%** of the test "
                f"images read right. After: **{d1.correct} of {d1.total}** and **{t1.accuracy:.2f}%**.")
    st.caption("Careful: these are the very drawings it was just trained on, so reading them right is the easy "
               "part. Whether it learned your handwriting, and not just these pictures, shows on digits it has "
               "not seen: draw new ones on the Draw page with this run chosen, and keep them; drawings kept after "
               "this fine-tune are scored separately below. The test images tell whether it forgot anything it "
               "knew.")
    unseen = unseen_scores(view, drawing_store().drawings())
    if unseen is not None:
        n, before, after = unseen
        st.markdown(f"On the **{n}** drawing{'s' if n != 1 else ''} you kept later, which this fine-tune never "
                    f"trained on: **{before} of {n}** read right before, **{after} of {n}** after.")
    classes = [str(c) for c in range(10)]
    rows = pd.DataFrame({
        "drawing": [picture(img) for img in result_images(view)],
        "your label": [classes[int(y)] for y in result.labels],
        "before": [classes[int(p)] for p in d0.predictions],
        "after": [classes[int(p)] for p in d1.predictions],
        "change": [verdict(int(b), int(a), int(y)) for b, a, y in zip(d0.predictions, d1.predictions, result.labels)],
    })
    st.dataframe(rows, hide_index=True, key="hw_table", row_height=60,
                 column_config={"drawing": st.column_config.ImageColumn("drawing", width="small")})
    if st.button("Use it on the Draw page", icon=":material/draw:", key="hw_use"):
        st.session_state["model_key"] = view.id
        st.switch_page(nav.DRAW)


def result_images(view):
    from simplecnn.handwriting import load_examples
    return load_examples(view.job.run.examples_path)["images"]


def live_body() -> None:
    view = current_fine_tune()
    if view is None:
        return
    job = view.job
    if job.active:
        follow_refresh("hw_live", job)
    snap = job.snapshot()
    st.header(f"Fine-tune {snap.id}")
    st.caption(view.label)
    fraction, text = progress_text(snap)
    st.progress(fraction if snap.status != "finished" else 1.0, text=f"**{snap.id}** · {snap.status} · {text}")
    if snap.active:
        if st.button("Stop", icon=":material/stop:", key="hw_stop", disabled=snap.status == "stopping"):
            job.stop()
            st.rerun()
        return
    if snap.status == "failed":
        st.error(snap.message, icon=":material/error:")
    elif snap.status in ("stopped", "interrupted"):
        st.warning(f"{snap.message} The before/after below uses the weights it had reached; Resume it on the "
                   "Train page to finish.", icon=":material/pause:")
    elif snap.status == "diverged":
        st.error(snap.message, icon=":material/error:")
    if snap.status == "finished" or snap.epoch or snap.batch:
        results_ui(view)


def history_ui() -> None:
    runs = fine_tune_runs()
    if len(runs) < 2:
        return
    with st.expander(f"Your fine-tunes ({len(runs)})"):
        options = [v.id for v in runs]
        current = current_fine_tune()
        chosen = st.selectbox("Show", options, index=options.index(current.id) if current else 0,
                              format_func=lambda i: f"{i}: {state.runs()[i].label}", key="hw_show")
        if chosen != st.session_state.get("hw_run_id"):
            st.session_state["hw_run_id"] = chosen
            st.rerun()


st.title("Your handwriting")
st.markdown("MNIST was written by American Census Bureau staff and high-school students, so your 4s and 7s may look nothing "
            "like theirs. When the network reads one of your drawings wrong, tell it the right digit on the "
            "Draw page; then teach a copy of the model your handwriting here, and see what changed on your "
            "digits and on the test set.")
if state.dataset_name() != "mnist":
    st.info("Your handwriting is taught to a digit model: switch the Data page back to MNIST.",
            icon=":material/info:")
    st.stop()
store = drawing_store()
drawings = store.drawings()
gallery(store, drawings)
if drawings:
    start_ui(drawings)
history_ui()
view = current_fine_tune()
if view is not None:
    live_fragment("hw_live", live_body, view.job if view.job.active else None)
st.caption(f"Before/after is measured on the first {TEST_SUBSET:,} MNIST test images, which no fine-tune "
           "trains on.")
