"""Lesson 12: overfitting on purpose (a tiny training set), with and without dropout / batch norm."""
import pandas as pd
import streamlit as st

from dashboard.charts import show_chart
from dashboard import nav, state
from dashboard.lesson_settings import lesson_link, setting
from dashboard.identity import learner
from dashboard.state import active_model, shared_dataset
from dashboard.comparison_ui import comparison_job, comparison_progress, stored_runs
from simplecnn.classroom import RunRefused
from simplecnn.lessons.figures_b import training_curves_figure
from simplecnn.lessons.regularization import TinyRun, overfitting_variants
from simplecnn.data import split_indices
from simplecnn.training import TrainConfig

st.title("12 · Overfitting")
lesson_link("12")
st.markdown(
    "A network with half a million parameters can simply memorise a few hundred images: the loss on "
    "those images drops towards zero, while the loss on images it has never seen stops improving or "
    "even rises. That widening distance between the two curves is *overfitting*, and it is why we "
    "hold out a validation set that is never used for the weight updates.\n\n"
    "Regularisation makes memorising harder. Dropout keeps removing random units, and batch "
    "normalisation adds a little noise through the batch statistics. Below, the core trainer runs "
    "on a deliberately tiny slice of MNIST, so you can see the gap open and compare it with "
    "and without those two tools. Both splits are scored the same way (eval mode) after every epoch.")
st.latex(r"\text{gap} = L_{\text{validation}} - L_{\text{train}},\qquad "
         r"L = -\frac{1}{N}\sum_{n=1}^{N}\log p_{n,\,y_n}")

RESULT_NAME = "lesson-12-overfitting"  # the learner's last comparison, kept on disk
variants = overfitting_variants()
c1, c2, c3 = st.columns(3)
subset = c1.select_slider("images used (train + validation)", options=[50, 100, 200, 300, 500, 1000, 2000],
                          **setting("of_subset"))
val_split = c2.slider("share held out for validation", 0.2, 0.6, step=0.05, **setting("of_val"))
epochs = c3.slider("epochs", 1, 30, **setting("of_epochs"))
chosen = st.multiselect("runs to compare", list(variants),
                        default=["no dropout, no batch norm", "dropout + batch norm (SimpleCNN)"], key="of_variants")
settings = dict(subset=subset, validation_split=val_split, epochs=epochs, variants=list(chosen))


def configs() -> dict[str, TrainConfig]:
    return {name: TrainConfig(subset=subset, validation_split=val_split, epochs=epochs, batch_size=32,
                              log_every=2, seed=0, **variants[name]) for name in chosen}


def run_all() -> None:
    """Queue every chosen variant as one comparison: trained in a worker process, like the Train page's runs."""
    try:
        state.classroom().start_comparison(learner(), RESULT_NAME, configs(), settings)
    except RunRefused as exc:
        st.warning(str(exc))


comparing = comparison_job("overfitting") is not None and comparison_job("overfitting").active
if st.button("Train", type="primary", disabled=not chosen or comparing, key="of_train"):
    run_all()
    comparing = True
    st.session_state["of_checked"] = st.session_state["of_revealed"] = False  # new runs: predict again
st.fragment(run_every=1.0 if comparing else None)(comparison_progress)("overfitting", "of", "Stop the comparison")

runs, ran_with = stored_runs(RESULT_NAME, TinyRun)
# The curves answer the question at the bottom: they stay hidden until it is checked (or skipped).
revealed = (len(chosen) < 2 or st.session_state.get("of_revealed")
            or (st.session_state.get("of_checked") and st.session_state.get("of_guess") is not None))
if runs and not revealed:
    st.info("Training finished. First predict below which run ends with the largest gap, then press "
            "**Check** to see the curves.")
    if st.button("Show the results without answering", key="of_reveal"):
        st.session_state["of_revealed"] = True
        st.rerun()
elif runs:
    if ran_with != settings:
        st.caption("These results are from earlier settings; press Train to rerun with the current ones.")
    show_chart(training_curves_figure(runs), width="stretch", key="t12_training_curves")
    st.dataframe(pd.DataFrame([{
        "run": r.label, "train loss": r.train_loss[-1], "val loss": r.val_loss[-1], "gap": r.gap,
        "train acc %": r.train_accuracy[-1], "val acc %": r.val_accuracy[-1], "seconds": r.seconds,
    } for r in runs]).style.format({"train loss": "{:.3f}", "val loss": "{:.3f}", "gap": "{:.3f}",
                                    "train acc %": "{:.1f}", "val acc %": "{:.1f}", "seconds": "{:.1f}"}),
        hide_index=True, width="stretch")
    best_val = min(runs, key=lambda r: r.val_loss[-1])
    st.caption(f"Each run learned from {runs[0].train_images} images and was validated on {runs[0].val_images} "
               f"others, after the final epoch. Lowest validation loss: {best_val.label} "
               f"({best_val.val_loss[-1]:.3f}). With so few images the numbers are noisy; try more epochs or "
               "another subset size.")
elif not comparing:
    st.info("Press **Train** to run the comparison. It waits for a free training slot on the server like "
            "every training, then takes a few seconds.")

st.header("Where this acts in SimpleCNN")
model, label = active_model()
full_train, full_val = split_indices(len(shared_dataset("mnist").train_labels), TrainConfig().validation_split)
if model is None:
    st.info(label)
    st.markdown(f"The Train page's SimpleCNN uses dropout p = {TrainConfig().dropout1:g} after the first block "
                f"and {TrainConfig().dropout2:g} after the second, with batch norm on, and learns from "
                f"{len(full_train):,} images while {len(full_val):,} are held out for validation.")
else:
    bn = "on" if model.batch_norm else "off"
    st.markdown(f"*{label}* has dropout p = {model.dropout1.p:g} after the first block and "
                f"{model.dropout2.p:g} after the second, with batch norm {bn}. The runs above use the "
                f"same `Trainer`, only on a tiny subset. With the full split ({len(full_train):,} training "
                f"and {len(full_val):,} validation images) memorising is much harder and the gap far smaller.")
nav.link(nav.TRAIN, "Train on the full dataset and watch both loss curves on the Train page",
         icon=":material/model_training:")

st.header("Predict, then check")
if len(chosen) < 2:
    st.info("Choose at least two runs above to get a question.")
else:
    guess = st.radio("After training, which run will show the **largest gap** between validation and "
                     "training loss?", chosen, index=None, key="of_guess")
    if st.button("Check by running it", key="of_check"):
        st.session_state["of_checked"] = True
        if not runs or ran_with != settings:
            run_all()
            st.rerun()
        elif not revealed and guess is not None:
            st.rerun()  # draw the curves above, now that the guess is in
    if st.session_state.get("of_checked"):
        if guess is None:
            st.warning("Pick an answer first, then check.")
        elif not runs or ran_with != settings:
            st.info("The runs for these settings are training (see above); the answer appears when they finish.")
        else:
            widest = max(runs, key=lambda r: r.gap)
            gaps = ", ".join(f"{r.label}: {r.gap:.3f}" for r in runs)
            (st.success if guess == widest.label else st.error)(
                f"{'Right' if guess == widest.label else 'Not quite'}: the gaps were {gaps}, so the widest "
                f"was **{widest.label}**.")
