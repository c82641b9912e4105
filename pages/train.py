"""Train: set the knobs, start/stop/resume a run, watch it learn live, compare and save runs."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.charts import show_chart
from dashboard import state
from dashboard.health_panel import layer_health_panel
from dashboard.identity import learner
from dashboard.run_report import report_button
from dashboard.settings_params import TRAIN_FIELDS
from dashboard.shared_settings import from_link, share_ui
from dashboard.status import follow_refresh, format_eta, live_fragment, progress_text
from dashboard.widgets import keep
from simplecnn.checkpoints import MAX_CHECKPOINT_BYTES, load_checkpoint
from simplecnn.classroom import DEFAULT_SPEED, RunRefused, split_sizes
from simplecnn.raybackend import ray_address
from simplecnn.codegen import training_script
from simplecnn.data import FASHION_CLASSES, MNIST_CLASSES, DataError
from simplecnn.plots import training_curves
from simplecnn.training import OPTIMIZERS, TrainConfig

LEARNING_RATES = [1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0]
BATCH_SIZES = [8, 16, 32, 64, 128, 256, 512, 1024]
SUBSETS = [500, 1000, 2000, 5000, 10000, 20000, 30000, None]
OPTIMIZER_NAMES = {"adam": "Adam", "sgd": "SGD", "momentum": "SGD + momentum 0.9", "rmsprop": "RMSProp",
                   "adagrad": "Adagrad"}


def settings_ui() -> TrainConfig:
    """Draw the training controls and return the config they describe."""
    c1, c2, c3 = st.columns(3)
    with c1:
        lr = st.select_slider("Learning rate (log scale)", LEARNING_RATES, format_func=lambda v: f"{v:g}",
                              help="Step size of the optimizer. Too high diverges, too low crawls.",
                              **keep("train_lr", 1e-3))
        optimizer = st.selectbox("Optimizer", OPTIMIZERS, format_func=OPTIMIZER_NAMES.get,
                                 **keep("train_optimizer", "adam"))
        batch_norm = st.toggle("Batch normalization", help="BatchNorm2d after each convolution",
                               **keep("train_batch_norm", True))
    with c2:
        dropout1 = st.slider("Dropout after conv block 1", 0.0, 0.9, step=0.05, **keep("train_dropout1", 0.45))
        dropout2 = st.slider("Dropout after conv block 2", 0.0, 0.9, step=0.05, **keep("train_dropout2", 0.35))
        batch_size = st.select_slider("Batch size", BATCH_SIZES, **keep("train_batch_size", 64))
    with c3:
        epochs = st.number_input("Epochs", min_value=1, max_value=100, step=1, **keep("train_epochs", 2))
        subset = st.select_slider("Training images (train + validation)", SUBSETS,
                                  format_func=lambda v: "all 60,000" if v is None else f"{v:,}",
                                  help="Fewer images train faster; the full set gives the best model.",
                                  **keep("train_subset", 5000))
        validation_split = st.slider("Validation split", 0.05, 0.5, step=0.05, **keep("train_val_split", 0.2))
    with st.expander("More settings"):
        a1, a2, a3 = st.columns(3)
        seed = a1.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, **keep("train_seed", 0))
        weight_decay = a2.select_slider("Weight decay (L2)", [0.0, 1e-5, 1e-4, 1e-3, 1e-2],
                                        format_func=lambda v: f"{v:g}", **keep("train_wd", 0.0))
        schedule = a3.selectbox("Learning-rate schedule", ["constant", "onecycle", "cosine"],
                                **keep("train_schedule", "constant"))
        b1, b2 = st.columns(2)
        augment = b1.toggle("Augment: random ±2 px shifts", **keep("train_augment", False))
        custom_lr = b2.number_input("Exact learning rate (0 = use the slider)", min_value=0.0, max_value=100.0,
                                    format="%g", **keep("train_custom_lr", 0.0))
    return TrainConfig(
        learning_rate=float(custom_lr or lr), epochs=int(epochs), batch_size=int(batch_size),
        validation_split=float(validation_split), dropout1=float(dropout1), dropout2=float(dropout2),
        batch_norm=bool(batch_norm), optimizer=optimizer, weight_decay=float(weight_decay), subset=subset,
        seed=int(seed), dataset=state.dataset_name(), lr_schedule=schedule, augment=bool(augment))


def start_run(config: TrainConfig) -> bool:
    """Start a run with `config`; False (and a message saying why) when it cannot start."""
    try:
        ds = state.dataset()
        job = state.classroom().start_run(learner(), config, state.dataset_name(), ds.num_classes,
                                          len(ds.train_labels))
    except RunRefused as exc:
        st.error(f"**Not started.** {exc}", icon=":material/block:")
        return False
    except (ValueError, DataError) as exc:
        st.error(f"Cannot start: {exc}")
        return False
    st.session_state["current_run_id"] = job.id
    st.session_state["model_key"] = job.id
    st.session_state.pop("train_reset", None)
    st.rerun()


def train_size() -> int:
    """Training images in the chosen dataset; 60,000 while its files cannot be read (the page still
    shows the learner's runs; Start then says what is wrong with the data)."""
    try:
        return len(state.dataset().train_labels)
    except DataError:
        return 60_000


def estimate_ui(config: TrainConfig, refused: bool = False) -> None:
    """How long these settings take on this server, and whether they fit its per-run budget (not said
    twice when a Start was just refused with the same words)."""
    room = state.classroom()
    size = train_size()
    n_train, _ = split_sizes(config, size)
    seconds = room.estimate_seconds(config, size)
    basis = (f"this server's measured speed, {room.speed:,.0f} images/s" if room.speed else
             f"an assumed {DEFAULT_SPEED:,.0f} images/s until this server has measured a run")
    try:
        room.check_budget(config, size)
    except RunRefused as exc:
        if not refused:
            st.warning(f"{exc}", icon=":material/timer_off:")
        return
    st.caption(f":material/timer: About **{format_eta(seconds)}** (min:s) for {n_train:,} training images × "
               f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}, from {basis}; more if others are "
               f"training. Budget per run on this server: {room.limits.max_run_images:,} images.")


def controls_ui(config: TrainConfig) -> None:
    run = state.current_run()
    snap = run.snapshot() if run and run.job else None
    b1, b2, b3, b4, _ = st.columns([1, 1, 1, 1, 3])
    refused = False
    if b1.button("Start", type="primary", icon=":material/play_arrow:", width="stretch",
                 help="Start a new run with the settings above"):
        refused = not start_run(config)
    if b2.button("Stop", icon=":material/stop:", width="stretch", disabled=not (snap and snap.active)):
        if not run.job.stop():
            st.info("This run is not training.")
        st.rerun()
    if b3.button("Resume", icon=":material/resume:", width="stretch",
                 disabled=not (snap and snap.can_resume)):
        try:
            state.classroom().resume(learner(), run.id)
            st.rerun()
        except RunRefused as exc:
            st.warning(str(exc))
    if b4.button("Reset", icon=":material/restart_alt:", width="stretch",
                 disabled=snap is None or snap.active,
                 help="Start over with a fresh, untrained model; finished runs stay in the history"):
        st.session_state.pop("current_run_id", None)
        st.session_state["train_reset"] = True
        st.rerun()
    if snap is None or not snap.active:
        estimate_ui(config, refused)
    if snap is None:
        n_train, _ = split_sizes(config, train_size())
        if config.batch_size > n_train:
            st.info(f"The batch size ({config.batch_size}) is larger than the training split ({n_train:,} "
                    f"images): each epoch will be a single batch of {n_train:,}.")


def live_ui() -> None:
    """Progress, metrics and curves of the current run; refreshed every second while it trains."""
    run = state.current_run()
    if run is None or run.job is None:
        st.info("Set the knobs above and press **Start**. Training runs in the background: you can visit "
                "other pages while it learns, and stop it from the sidebar.")
        return
    if run.job.active:
        follow_refresh("train_live", run.job)
    snap = run.job.snapshot()
    fraction, text = progress_text(snap)
    st.progress(fraction if snap.status not in ("finished",) else 1.0, text=f"**{snap.id}** · {snap.status} · {text}")
    if snap.status == "diverged":
        st.error(snap.message, icon=":material/error:")
    elif snap.status == "failed":
        st.error(snap.message, icon=":material/error:")
    elif snap.status in ("stopped", "interrupted") and snap.can_resume:
        hint = "" if "Resume" in snap.message else " Press **Resume** to continue from here."
        st.warning(f"{snap.message}{hint}", icon=":material/pause:")
    elif snap.status in ("stopped", "interrupted"):
        st.info(snap.message, icon=":material/pause:")
    elif snap.status == "finished":
        st.success(snap.message, icon=":material/check_circle:")
    if snap.history.warning and snap.status != "diverged":
        st.warning(snap.history.warning, icon=":material/warning:")
    m1, m2, m3, m4 = st.columns(4)
    last = snap.history.last_epoch
    if snap.latest:
        m1.metric("Batch loss (smoothed)", f"{snap.latest['smoothed_loss']:.4f}")
        m2.metric("Train accuracy (this epoch)", f"{snap.latest['running_accuracy']:.1f}%")
    if last and last.get("val_accuracy") is not None:
        m3.metric("Validation accuracy", f"{last['val_accuracy']:.2f}%", help=f"after epoch {last['epoch']}")
        m4.metric("Validation loss", f"{last['val_loss']:.4f}")
    others = [(r.label + f" ({r.id})", r.snapshot().history) for r in overlay_runs() if r.id != run.id]
    if snap.status == "queued" and not snap.history.steps and not others:
        st.caption("The curves start when your run leaves the queue.")
    else:
        show_chart(curves_figure(run.id, run.label, snap, others), width="stretch",  # theme: light or dark
                        key="train_curves")
    if snap.status in ("running", "queued", "stopping"):
        st.caption(f"Compute path: {snap.history.compute_path or 'starting'}")
    report_button(run, key="train_report")


def curves_figure(run_id: str, label: str, snap, others: list) -> go.Figure:
    """The loss/accuracy figure, rebuilt only when a curve has new points (it refreshes every second,
    and rebuilding an unchanged figure was most of what a waiting learner's page cost the server)."""
    def size(history) -> tuple[int, int]:
        return len(history.steps), len(history.epochs)

    key = (run_id, snap.status, size(snap.history), tuple((name, size(h)) for name, h in others))
    cached = st.session_state.get("_train_curves")
    if cached is not None and cached[0] == key:
        return cached[1]
    fig = training_curves(snap.history, other_runs=others, label=f"{label} ({run_id})")
    st.session_state["_train_curves"] = (key, fig)
    return fig


def overlay_runs() -> list[state.RunEntry]:
    chosen = st.session_state.get("train_overlay", [])
    runs = state.runs()
    return [runs[i] for i in chosen if i in runs and runs[i].job is not None]


def history_ui() -> None:
    runs = list(state.runs().values())
    room = state.classroom()
    used = room.store.learner_bytes(learner())
    st.caption(f"Your runs are kept on this server (they survive a reload and a restart): {len(runs)} of "
               f"{room.limits.max_runs_per_learner} stored, {used / 1e6:.1f} of "
               f"{room.limits.max_learner_bytes / 1e6:.0f} MB used.")
    for entry in runs:
        if entry.error:
            st.warning(entry.error + " Delete it below to free its place.", icon=":material/broken_image:")
    trained = [r for r in runs if r.job is not None]
    if trained:
        rows = []
        for r in trained:
            s = r.snapshot()
            val = [e["val_accuracy"] for e in s.history.epochs if e.get("val_accuracy") is not None]
            rows.append({"run": r.id, "settings": r.label, "status": s.status, "epochs": f"{s.epoch}/{s.epochs}",
                         "best val acc %": round(max(val), 2) if val else None,
                         "train time s": round(s.history.seconds, 1),
                         "images/s": round(s.history.images_seen / s.history.seconds) if s.history.seconds else None})
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        ids = [r.id for r in trained]
        labels = {r.id: f"{r.id}: {r.label}" for r in trained}
        st.multiselect("Overlay these runs' curves on the chart", ids, format_func=labels.get, key="train_overlay")
    elif not runs:
        st.caption("Every run you start is kept here: compare their settings and overlay their curves.")
    if runs:
        delete_ui(runs)


def delete_ui(runs: list[state.RunEntry]) -> None:
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    labels = {r.id: f"{r.id}: {r.label}" + (" (uploaded)" if r.kind == "uploaded" else "") for r in runs}
    run_id = c1.selectbox("Delete a run and its files", list(labels), format_func=labels.get, index=None,
                          placeholder="Choose a run to delete", key="train_delete_choice")
    if c2.button("Delete", icon=":material/delete:", disabled=run_id is None, key="train_delete"):
        try:
            state.classroom().delete(learner(), run_id)
        except RunRefused as exc:
            st.warning(str(exc))
            return
        for key in ("current_run_id", "model_key"):
            if st.session_state.get(key) == run_id:
                st.session_state.pop(key)
        st.session_state.pop("train_delete_choice", None)
        st.toast(f"Deleted {run_id}.")
        st.rerun()


def checkpoint_ui() -> None:
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Download a run's checkpoint**")
        ready = {r.id: r for r in state.runs().values() if r.job is not None and r.snapshot().epoch > 0
                 and not r.snapshot().active and r.record.dir.latest_path.exists()}
        if not ready:
            st.caption("A run that has finished at least one epoch (and is not training) can be saved here.")
        else:
            run_id = st.selectbox("Run", list(ready), format_func=lambda i: f"{i}: {ready[i].label}",
                                  key="train_ckpt_run")
            data = ready[run_id].record.dir.latest_path.read_bytes()
            st.download_button("Download checkpoint (.pt)", data, file_name=f"simplecnn-{run_id}.pt",
                               mime="application/octet-stream", icon=":material/download:")
    with c2:
        st.markdown("**Load a checkpoint**")
        upload = st.file_uploader("SimpleCNN checkpoint (.pt)", type=["pt", "pth"], key="train_upload",
                                  help=f"At most {MAX_CHECKPOINT_BYTES // (1024 * 1024)} MB. Loaded with "
                                       "torch.load(weights_only=True): files that would run code are refused.")
        if upload is not None and st.session_state.get("train_upload_done") != upload.file_id:
            add_uploaded(upload)


def add_uploaded(upload) -> None:
    st.session_state["train_upload_done"] = upload.file_id
    if upload.size > MAX_CHECKPOINT_BYTES:
        st.error(f"{upload.name} is {upload.size / 1e6:.1f} MB; a SimpleCNN checkpoint is about 2.4 MB "
                 f"(limit {MAX_CHECKPOINT_BYTES // (1024 * 1024)} MB).")
        return
    try:
        model, meta = load_checkpoint(upload.getvalue())
    except ValueError as exc:
        st.error(f"Could not load {upload.name}: {exc}")
        return
    config = meta.get("config") or {}
    label = TrainConfig.from_dict(config).label() if config else upload.name
    dataset = config.get("dataset", "mnist")
    classes = len(FASHION_CLASSES if dataset == "fashion-mnist" else MNIST_CLASSES)
    if model.num_classes != classes:  # e.g. a 7-class SimpleCNN: every page would index past its outputs
        st.error(f"Could not load {upload.name}: the network has {model.num_classes} outputs, but {dataset} "
                 f"has {classes} classes. Only SimpleCNN checkpoints for {classes} classes fit here.")
        return
    try:
        run = state.classroom().add_upload(learner(), upload.getvalue(), f"{label} [{upload.name}]", dataset,
                                           classes, meta)
    except RunRefused as exc:
        st.error(f"Could not keep {upload.name}: {exc}")
        return
    st.session_state["model_key"] = run.run_id
    st.success(f"Loaded {upload.name} as {run.run_id}. It is now the model used on the Draw, Inside and "
               "Results pages, and it is kept with your runs.")


st.title("Train the network")
where = (f"trainings go to the Ray cluster at `{ray_address()}`" if ray_address() else
         f"trainings on this server at once: {state.scheduler().max_concurrent}")
st.caption(f"Dataset: **{state.dataset_name()}** · SimpleCNN, 582,218 parameters · {where}")
from_link("train", TRAIN_FIELDS)
config = settings_ui()
share_ui("train", TRAIN_FIELDS)
controls_ui(config)
live_fragment("train_live", live_ui, state.active_job())
layer_health_panel()
st.header("Run history")
history_ui()
st.header("Checkpoints")
checkpoint_ui()
with st.expander("Show the code: these settings as a plain PyTorch script", icon=":material/code:"):
    st.code(training_script(config), language="python")
