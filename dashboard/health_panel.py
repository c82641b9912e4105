"""The Train page's "Layer health" section: the selected run's health.json, live while it trains.

The numbers are recorded in the training process (simplecnn.health); this only reads the run's file,
rebuilds the figures when the file changed, and says what to look for.
"""
from __future__ import annotations

import streamlit as st

from dashboard import state
from dashboard.charts import show_chart
from dashboard.status import follow_refresh, live_fragment
from simplecnn.health import HEALTH_FILE, read_health
from simplecnn.health_plots import (dead_relu_figure, histogram_heatmaps, latest_numbers, update_ratio_figure)

WHAT_TO_LOOK_FOR = """\
Every few steps the training process takes a close look at one step of each layer.
* **Healthy:** a step changes a layer's weights by a small fraction of their size (here, with Adam at
  0.001, between about 0.001 and 0.02), and most ReLUs fire for some image of each batch.
* **Learning rate too high:** at 0.1 one Adam step changes fc1 by more than its own size; at 0.01 most
  of fc1's ReLUs die, and a dead ReLU gets exactly zero gradient, so nothing revives it.
* **Batch normalization off:** at that same 0.01 whole feature maps after conv2 die; batch norm
  re-centres every channel on each batch and keeps them alive.
* **Dropout 0.9:** the charts look calm, but the gradients stay larger and the accuracy stays low:
  the network cannot fit through so much noise.
"""


def layer_health_panel() -> None:
    """Draw the section for the Train page's selected run (refreshing while a run trains)."""
    st.header("Layer health")
    st.markdown(WHAT_TO_LOOK_FOR)
    live_fragment("train_health", _health_body, state.active_job())


def _stamp(path) -> tuple | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def load_health(run) -> tuple[dict | None, str]:
    """(the run's health, a message when there is none to show), read again only when the file changed."""
    path = run.record.dir.path / HEALTH_FILE
    stamp = _stamp(path)
    cached = st.session_state.get("_train_health")
    if cached is not None and cached[0] == (run.id, stamp):
        return cached[1], cached[2]
    try:
        data = read_health(run.record.dir.path)
        note = "" if data else "No layer health yet: it is recorded from the first training step on."
    except ValueError as exc:
        data, note = None, f"This run's layer health cannot be shown: {exc}."
    st.session_state["_train_health"] = ((run.id, stamp), data, note)
    return data, note


def _health_body() -> None:
    run = state.current_run()
    if run is None or run.job is None:
        st.caption("Start a run to see its layers' health here.")
        return
    if run.job.active:
        follow_refresh("train_health", run.job)
    data, note = load_health(run)
    numbers = latest_numbers(data)
    if numbers is None:
        st.info(note or "No samples yet: the first is taken on the first training step.", icon=":material/hourglass:")
        return
    per_epoch = data.get("batches_per_epoch") or 0
    when = f"step {numbers['step']:,}" + (f" (epoch {numbers['step'] / per_epoch:.2f})" if per_epoch else "")
    st.caption(f"**{run.id}**: {len(data['samples'])} samples, one every {data['every']} steps; newest at {when}.")
    for col, (name, ratio) in zip(st.columns(4), numbers["update_ratio"].items()):
        col.metric(f"{name}: update / weight", "not finite" if ratio is None else f"{ratio:.1e}", help="‖ΔW‖ / ‖W‖: how much the newest sampled "
                   "step changed this layer's weights, relative to their size.")
    for col, (name, dead) in zip(st.columns(4), numbers["dead_relu"].items()):
        col.metric(f"{name}: dead", f"{100 * dead:.0f}%", help="Share of this ReLU's units (channels after a "
                   "convolution, neurons after fc1) that were 0 for every image of the sampled batch.")
    outside = {name: share for name, share in numbers["weights_outside"].items() if share > 0}
    if outside:
        st.caption("Weights beyond the histogram's range (±4 × the initial bound): " + ", ".join(
            f"{name} {100 * share:.1f}%" for name, share in outside.items()) + ".")
    ratio_tab, dead_tab, weight_tab, grad_tab = st.tabs(["Update size", "Dead ReLUs", "Weights", "Gradients"])
    figures = _figures(run.id, data)
    with ratio_tab:
        show_chart(figures["ratio"], width="stretch", key="health_ratio")
    with dead_tab:
        show_chart(figures["dead"], width="stretch", key="health_dead")
    with weight_tab:
        show_chart(figures["weights"], width="stretch", key="health_weights")
        st.caption("Each column is one sampled step; brighter means more of the layer's weights in that bin. "
                   "The bins stay the same for the whole run: ±4 × 1/√(inputs per unit), PyTorch's initial "
                   "range, plus one bin below and one above.")
    with grad_tab:
        show_chart(figures["grads"], width="stretch", key="health_grads")
        st.caption("Sizes of the gradients, log10 |g| from 1e-10 to 1 (a quarter decade per bin); zeros, "
                   "such as the gradients of a dead ReLU's weights, fall in the lowest bin.")


def _figures(run_id: str, data: dict) -> dict:
    """The four figures, rebuilt only when a new sample arrived (the fragment reruns every second)."""
    key = (run_id, data["samples"][-1]["step"], len(data["samples"]))
    cached = st.session_state.get("_train_health_figures")
    if cached is not None and cached[0] == key:
        return cached[1]
    figures = {"ratio": update_ratio_figure(data), "dead": dead_relu_figure(data),
               "weights": histogram_heatmaps(data, "weights"), "grads": histogram_heatmaps(data, "grads")}
    st.session_state["_train_health_figures"] = (key, figures)
    return figures
