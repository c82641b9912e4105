"""What the "Show data" toggle costs a chart that reruns every second, when it is off.

The Train page's live fragment redraws the loss/accuracy chart every 1-3 s in every open tab. Since
show_chart replaced st.plotly_chart there, each rerun also draws one toggle and computes the chart's
accessible description (simplecnn.figure_data.describe_figure); the table and CSV are built only
while the toggle is on. Measured with streamlit.testing (no browser, no server), in one process,
the two variants alternating rerun by rerun so that both see the same machine:

1. the chart call alone, timed inside the script: st.plotly_chart(fig) ("before") against
   show_chart(fig) with the toggle off ("after"), on the same cached figure of a 3-epoch full-MNIST
   run (as the page caches it while the curves do not change);
2. a whole rerun of pages/train.py showing a finished run, with show_chart swapped for a plain
   st.plotly_chart ("before") or not ("after");
3. the same rerun with the toggle on (table and CSV button built), for scale.

    python benchmarks/chart_data_toggle.py [--reruns 40]

Hold the machine's benchmark lock on a shared machine: flock /tmp/bench.lock -c "python ...".
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("SIMPLECNN_RUNS_DIR", tempfile.mkdtemp(prefix="simplecnn-bench-runs-"))

from streamlit.testing.v1 import AppTest  # noqa: E402

import dashboard.charts as charts  # noqa: E402


def chart_call_script(variant: str) -> None:
    """An AppTest script: draw the cached curves figure once, timing only the chart call."""
    import time

    import numpy as np
    import streamlit as st

    from dashboard.charts import show_chart
    from simplecnn.plots import training_curves

    if "_fig" not in st.session_state:
        steps = list(range(10, 3 * 750 * 10 + 1, 10))[:2250]  # 3 epochs x 750 batches, logged every 10
        losses = list(np.exp(-np.arange(len(steps)) / 400) + 0.05)
        epochs = [{"epoch": e, "train_loss": 0.1 / e, "val_loss": 0.12 / e, "train_accuracy": 97 + e / 2,
                   "val_accuracy": 97 + e / 3, "step": 7500 * e} for e in (1, 2, 3)]
        st.session_state["_fig"] = training_curves({"steps": steps, "batch_losses": losses,
                                                    "smoothed_losses": losses, "epochs": epochs})
    fig = st.session_state["_fig"]
    start = time.perf_counter()
    if variant == "before":
        st.plotly_chart(fig, width="stretch", theme=None, key="train_curves")
    else:
        show_chart(fig, width="stretch", theme=None, key="train_curves")
    st.session_state.setdefault("_times", []).append(time.perf_counter() - start)


def plain_chart(fig, *, key, data=None, alt=None, where=None, label=None, **kwargs):
    """What the pages did before show_chart: the chart alone."""
    return (where if where is not None else charts.st).plotly_chart(fig, key=key, **kwargs)


def median_ms(values) -> float:
    return 1000 * statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reruns", type=int, default=40)
    args = parser.parse_args()

    # 1. The chart call alone.
    apps = {v: AppTest.from_function(chart_call_script, args=(v,), default_timeout=60) for v in ("before", "after")}
    for app in apps.values():
        app.run()  # warm-up: builds the figure
        app.session_state["_times"] = []
    for _ in range(args.reruns):
        for app in apps.values():
            app.run()
    calls = {v: median_ms(app.session_state["_times"]) for v, app in apps.items()}
    alt_ms = timed(lambda: charts.describe_figure(apps["after"].session_state["_fig"]), args.reruns)  # uncached

    # 2./3. Whole reruns of the Train page with a finished run.
    from helpers import new_learner, page_as, train_run
    from simplecnn.training import TrainConfig

    token = new_learner()
    train_run(token, TrainConfig(epochs=1, subset=2000, batch_size=64, log_every=1), timeout=600)
    real = charts.show_chart
    page = {v: page_as(str(ROOT / "pages" / "train.py"), token, timeout=120) for v in ("before", "after", "on")}
    for v, app in page.items():
        charts.show_chart = plain_chart if v == "before" else real
        app.run()
        if v == "on":
            app.toggle(key="train_curves__data").set_value(True).run()
    runs: dict[str, list[float]] = {v: [] for v in page}
    for _ in range(args.reruns):
        for v, app in page.items():
            charts.show_chart = plain_chart if v == "before" else real
            start = time.perf_counter()
            app.run()
            runs[v].append(time.perf_counter() - start)
            assert not app.exception, app.exception
    charts.show_chart = real

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}, {os.cpu_count()} cores; {args.reruns} reruns per variant, alternating")
    print(f"chart call alone (median):  st.plotly_chart {calls['before']:.2f} ms   "
          f"show_chart, toggle off {calls['after']:.2f} ms   ratio {calls['after'] / calls['before']:.2f}")
    print(f"  describe_figure (the alt text), uncached: {alt_ms:.2f} ms; show_chart keeps it per figure object")
    before, after, on = (median_ms(runs[v]) for v in ("before", "after", "on"))
    print(f"Train page rerun (median):  before {before:.1f} ms   after, toggle off {after:.1f} ms   "
          f"ratio {after / before:.3f}   (toggle on: {on:.1f} ms)")


def timed(fn, n: int) -> float:
    values = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        values.append(time.perf_counter() - start)
    return median_ms(values)


if __name__ == "__main__":
    main()
