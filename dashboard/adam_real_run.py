"""Lesson 8's real run: Adam with and without bias correction on a fresh SimpleCNN, queued like every training.

The two runs train in a worker process (simplecnn.comparison, runner "adam_bias"), never on the page
thread; the finished result is kept in the learner's folder, so a reload shows it again. Its numbers
answer the lesson's bias-correction question, so the page shows them only once that is checked.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.charts import show_chart
from dashboard.comparison_ui import comparison_job, comparison_progress, stored_runs
from dashboard.identity import learner
from simplecnn.classroom import RunRefused
from simplecnn.lessons.adam_bias import ADAM_VARIANTS, AdamRun, adam_config, constant_gradient_ratio
from simplecnn.lessons.adam_bias_figure import adam_bias_figure

RESULT_NAME = "lesson-08-adam-bias"  # the learner's last pair of runs, kept on disk
RUNNER = "adam_bias"


def _results(runs: list[AdamRun]) -> None:
    on, off = (next(r for r in runs if r.bias_correction is flag) for flag in (True, False))
    show_chart(adam_bias_figure(runs), key="t08_adam_bias_runs", width="stretch")
    first = min(5, len(on.update_ratios))
    st.dataframe(pd.DataFrame([{
        "step t": t + 1, "with correction": on.update_ratios[t], "without": off.update_ratios[t],
        "without ÷ with": off.update_ratios[t] / on.update_ratios[t],
        "(1 − β₁ᵗ)/√(1 − β₂ᵗ)": constant_gradient_ratio(t + 1, on.beta1, on.beta2)} for t in range(first)])
        .style.format("{:.3f}", subset=["with correction", "without", "without ÷ with", "(1 − β₁ᵗ)/√(1 − β₂ᵗ)"]),
        hide_index=True, width="stretch")
    n, early = len(on.losses), min(10, len(on.losses))
    worst_on, worst_off = max(on.losses[:early]), max(off.losses[:early])
    st.caption(
        f"Mean |Δw| / α over all {on.batch_size}-image steps, α = {on.lr:g}. With the correction step 1 is "
        f"{on.update_ratios[0]:.3f}·α (just under 1: a few weights, such as the conv biases that batch norm cancels, "
        f"get gradients as small as ε); without it {off.update_ratios[0]:.3f}·α, "
        f"{off.update_ratios[0] / on.update_ratios[0]:.2f} times more, as (1 − β₁)/√(1 − β₂) = "
        f"{constant_gradient_ratio(1, on.beta1, on.beta2):.2f} predicts. After step 1 real gradients change "
        "direction and partly cancel in m, so the steps shrink and the measured ratio leaves the dotted "
        "constant-gradient curve.")
    st.markdown(
        f"Over the first {early} steps the batch loss peaked at **{worst_on:.3f}** with the correction and "
        f"**{worst_off:.3f}** without (both start at {on.losses[0]:.3f}); after {n} steps the last batch's loss was "
        f"{on.losses[-1]:.3f} with and {off.losses[-1]:.3f} without. The uncorrected first steps are the large ones.")


def real_run_section(revealed: bool) -> None:
    """Choices, a Train button that queues both runs, progress, and the results once `revealed`."""
    c1, c2 = st.columns(2)
    lr = c1.select_slider("α for the real run", options=[1e-4, 1e-3, 1e-2], value=1e-3, key="adam_real_lr",
                          format_func=lambda a: f"{a:g}")
    steps = c2.select_slider("steps (batches of 64)", options=[10, 20, 40, 60], value=40, key="adam_real_steps")
    settings = {"lr": lr, "steps": steps}
    job = comparison_job(RUNNER)
    running = job is not None and job.active
    if st.button("Train both runs", type="primary", disabled=running, key="adam_real_train"):
        try:
            configs = {label: adam_config(int(steps), float(lr)) for label in ADAM_VARIANTS}
            state.classroom().start_comparison(learner(), RESULT_NAME, configs, settings, runner=RUNNER)
            running = True
        except RunRefused as exc:
            st.warning(str(exc))
    st.fragment(run_every=1.0 if running else None)(comparison_progress)(RUNNER, "adam_real", "Stop the runs")
    runs, ran_with = stored_runs(RESULT_NAME, AdamRun)
    if not runs:
        if not running:
            st.info("Press **Train both runs**: two short trainings wait for a free training slot like every "
                    "training on this server, then take a few seconds.")
        return
    if not (revealed or st.session_state.get("adam_real_revealed")):
        st.info("The runs have finished. Answer the question above and press **Check** to see them.")
        if st.button("Show the runs without answering", key="adam_real_reveal"):
            st.session_state["adam_real_revealed"] = True
            st.rerun()
        return
    if ran_with != settings:
        st.caption("These runs are from earlier settings; press Train both runs to rerun with the current ones.")
    _results(runs)
