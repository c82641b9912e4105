"""Inside the network: follow one image through every stage of SimpleCNN, as the chosen model sees it.

The picture is rebuilt from the model's current weights, so while a run of this session trains,
the filters and feature maps visibly change from noise into stroke detectors.
"""
from __future__ import annotations


import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from dashboard.charts import show_chart
from dashboard import nav, state
from simplecnn import plots
from simplecnn.inspection import activations, as_batch, first_layer_filters
from simplecnn.model import describe_module

MAP_STAGES = ("conv1", "batch1", "relu1", "max1", "dropout1", "conv2", "batch2", "relu2", "max2", "dropout2")
SIGNED_STAGES = ("conv1", "batch1", "conv2", "batch2")  # can be negative: diverging colours around 0
SOURCES = ("Test image", "Example of a class", "Your drawing")
LIVE_REFRESH_S = 2.0
STAGE_NOTES = {
    "conv1": "Each of the 32 filters slides over the image; a bright spot means \"my 5×5 pattern is here\". "
             "28 − 5 + 1 = 24, so every map is 24×24.",
    "batch1": "Batch normalization shifts and rescales each map with statistics learned in training, "
              "so every channel arrives at the next layer on a similar scale.",
    "relu1": "ReLU keeps positive evidence and sets everything negative to exactly 0.",
    "max1": "2×2 max pooling keeps the strongest response of each 2×2 block: half the width and height.",
    "dropout1": "In evaluation mode dropout passes everything through unchanged. Turn on training mode "
                "to see the units it switches off while the network learns.",
    "conv2": "64 filters, each 5×5 over all 32 maps at once: they combine simple strokes into parts of digits. "
             "12 − 5 + 1 = 8.",
    "batch2": "The same normalization for the 64 maps of the second block.",
    "relu2": "Negative responses become 0 again.",
    "max2": "Pooling again: 8×8 becomes 4×4. These 64 × 4 × 4 = 1024 numbers are all the classifier sees.",
    "dropout2": "The second dropout. Switch on training mode to see which of the 1024 values it hides.",
}


def _input_image(ds) -> tuple[torch.Tensor | None, str, int | None]:
    """The picked input as (1, 1, 28, 28) floats, a description, and its true class (None for drawings)."""
    source = st.segmented_control("Input image", SOURCES, default=SOURCES[0], key="inside_source",
                                  required=True)
    n = len(ds.test_labels)
    if source == "Your drawing":
        drawing = _latest_drawing()
        if drawing is None:
            st.info("Draw a digit on the Draw page first; your latest drawing then appears here.")
            nav.link(nav.DRAW, "Go to the Draw page", icon=":material/draw:")
            return None, "", None
        return as_batch(drawing)[:1], "your latest drawing", None
    if source == "Example of a class":
        return _class_example(ds)
    index = int(st.number_input(f"Test image index (0–{n - 1})", min_value=0, max_value=n - 1, value=0,
                                step=1, key="inside_index"))
    return as_batch(ds.test_images[index]), f"test image #{index}", int(ds.test_labels[index])


def _latest_drawing() -> torch.Tensor | None:
    """The Draw page's latest prepared 28x28 input, or None when nothing has been drawn yet."""
    tensor = st.session_state.get("draw_tensor")
    if tensor is None:  # the Draw page also keeps its last reading, whose steps hold the tensor
        reading = (st.session_state.get("draw_reading") or (None, None))[1]
        tensor = getattr(getattr(reading, "steps", None), "tensor", None)
    return tensor


def _step_class_example(members: int, cls: int, how: str) -> None:
    """Button callback: move to the next, or a random, example of class `cls`."""
    positions = st.session_state.setdefault("inside_class_pos", {})
    if how == "next":
        positions[cls] = (positions.get(cls, 0) + 1) % members
    else:
        positions[cls] = int(np.random.default_rng().integers(members))


def _class_example(ds) -> tuple[torch.Tensor, str, int]:
    cols = st.columns([2, 1, 1], vertical_alignment="bottom")
    cls = cols[0].selectbox("Class", range(ds.num_classes), format_func=lambda c: ds.classes[c],
                            key="inside_class")
    indices = (ds.test_labels == cls).nonzero().flatten()  # test images of this class
    cols[1].button("Next example", key="inside_next", icon=":material/skip_next:", width="stretch",
                   on_click=_step_class_example, args=(len(indices), cls, "next"))
    cols[2].button("Random example", key="inside_random", icon=":material/casino:", width="stretch",
                   on_click=_step_class_example, args=(len(indices), cls, "random"))
    position = st.session_state.get("inside_class_pos", {}).get(cls, 0) % len(indices)
    index = int(indices[position])
    return (as_batch(ds.test_images[index]),
            f"test image #{index}, example {position + 1} of {len(indices)} of class {ds.classes[cls]}", cls)


def _fmt_shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def _shape_table(acts: dict[str, torch.Tensor], model) -> None:
    """One row per stage: what it outputs for this one image."""
    rows = []
    for name, t in acts.items():
        module = getattr(model, name, None)
        rows.append({"stage": name, "layer": describe_module(module) if module is not None else "",
                     "output shape": _fmt_shape(t), "values": t.numel(),
                     "min": float(t.min()), "max": float(t.max()),
                     "zeros": f"{100.0 * float((t == 0).float().mean()):.0f}%"})
    st.dataframe(rows, hide_index=True, height=35 * (len(rows) + 1) + 3,
                 column_config={"min": st.column_config.NumberColumn(format="%.3f"),
                                "max": st.column_config.NumberColumn(format="%.3f")})


def _map_grid(maps: torch.Tensor, stage: str, title: str | None = None, cols: int = 16) -> go.Figure:
    """All channels of one stage for one image; signed stages on a diverging scale centred at 0."""
    signed = stage in SIGNED_STAGES
    return plots.image_grid(maps[0], titles=[f"#{c}" for c in range(maps.shape[1])], cols=cols,
                            colorscale=plots.DIVERGING if signed else "Viridis",
                            zmid=0.0 if signed else None, title=title)


def _maps_alt(stage: str, maps: torch.Tensor, description: str, mode: str = "") -> str:
    """What a grid of feature maps shows, for screen readers: how many, how big, how to read them."""
    channels, height, width = maps.shape[1:]
    reading = ("signed values on a diverging scale centred on zero: one side where the channel's pattern "
               "matches, the other where it is opposed" if stage in SIGNED_STAGES else
               "bright where the channel responds strongly, dark where it is zero")
    return (f"The {channels} feature maps of {stage} for {description}{', ' + mode if mode else ''}, numbered "
            f"0 to {channels - 1}, {height}×{width} each: {reading}.")


def _dropped_share(before: torch.Tensor, after: torch.Tensor) -> float:
    """Percent of the non-zero values entering a dropout layer that it set to zero."""
    live = before != 0
    return 100.0 * float(((after == 0) & live).sum()) / max(int(live.sum()), 1)


def _fc1_strip(fc1: torch.Tensor) -> go.Figure:
    """The 512 fc1 outputs before ReLU: bars that ReLU keeps in colour, the ones it zeroes in grey."""
    values = fc1.reshape(-1).numpy()  # (512,)
    colors = np.where(values > 0, plots.TRAIN_COLOR, plots.MUTED)
    fig = go.Figure(go.Bar(x=np.arange(len(values)), y=values, marker_color=colors, marker_line_width=0,
                           hovertemplate="unit %{x}<br>fc1 %{y:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="fc1 unit", range=[-1, len(values)])
    fig.update_yaxes(title_text="value before ReLU", zeroline=True, zerolinecolor=plots.NEUTRAL)
    fig.update_layout(template=plots.TEMPLATE, height=240, bargap=0, margin=dict(l=50, r=20, t=20, b=40))
    return fig


def _network_view(key: str, x: torch.Tensor, description: str, true_class: int | None) -> None:
    """Everything drawn from the model's weights; rerun on its own while the run trains."""
    ds = state.dataset()
    model = state.get_model(key)  # a fresh copy whenever a training run publishes new weights
    if model is None:
        st.warning("This model is no longer available: pick another one above.")
        return
    entry = state.runs().get(key)
    if entry is not None and entry.job is not None:
        snap = entry.snapshot()
        latest = snap.latest or {}
        where = (f"epoch {latest.get('epoch', snap.epoch)}, batch {latest.get('batch', 0)}"
                 if snap.active else f"{snap.status}, {snap.epoch}/{snap.epochs} epochs")
        st.caption(f":material/update: Weights version {snap.weights_version} of run `{key}` ({where})"
                   + (f" · refreshed every {LIVE_REFRESH_S:g} s while it trains" if snap.active else ""))
    acts = activations(model, x, mode="eval")
    probs = acts["softmax"][0]  # (10,)
    predicted = int(probs.argmax())

    # -- the input and the answer
    left, right = st.columns([1, 2])
    with left:
        show_chart(plots.digit_image(x, height=260), key="inside_input_fig",
                   alt=f"The input, {description}: a 28×28 grey image, white ink on black"
                       + (f", a {ds.classes[true_class]}." if true_class is not None else "."))
        truth = f" · true class **{ds.classes[true_class]}**" if true_class is not None else ""
        st.markdown(f"Input: {description}{truth}  \nShape `{_fmt_shape(acts['input'])}`")
    with right:
        verdict = ("correct" if predicted == true_class else "wrong") if true_class is not None else ""
        st.markdown(f"**Softmax output** `{_fmt_shape(acts['softmax'])}`: the network says "
                    f"**{ds.classes[predicted]}** with {100 * float(probs[predicted]):.1f}%"
                    + (f" ({verdict})" if verdict else ""))
        show_chart(plots.probability_bars(probs, ds.classes, height=260), key="inside_softmax_fig",
                   alt=f"Bar chart of the softmax output: one probability per class; "
                       f"{ds.classes[predicted]} is highest with {float(probs[predicted]):.0%}.")

    # -- learned filters
    st.header("The 32 filters of conv1")
    filters = first_layer_filters(model)  # (32, 5, 5)
    st.caption("Each 5×5 filter is a small template. Orange weights reward ink at that spot, blue weights "
               "punish it; the filter responds most where the image looks like its orange pattern. "
               "An untrained network starts with random noise here.")
    show_chart(plots.image_grid(filters, titles=[f"filter {i}" for i in range(len(filters))], cols=16,
                                     colorscale=plots.DIVERGING, zmid=0.0), key="inside_filters_fig",
               alt=f"The {len(filters)} learned 5×5 filters of conv1, numbered 0 to {len(filters) - 1}, each "
                   f"a small grid of signed weights on a diverging scale centred on zero.")

    # -- feature maps, stage by stage
    st.header("Feature maps after every stage")
    stage = st.segmented_control("Stage", MAP_STAGES, default="conv1", key="inside_stage", required=True)
    maps = acts[stage]  # (1, C, H, W)
    channels, height, width = maps.shape[1:]
    note = STAGE_NOTES[stage]
    if stage.startswith("batch") and not getattr(model, "batch_norm", True):
        note = "This model was trained without batch normalization: this stage passes its input unchanged."
    st.markdown(f"**{stage}** output shape `{_fmt_shape(maps)}`: {channels} maps of {height}×{width}.  \n{note}")
    train_cols = st.columns([2, 1], vertical_alignment="bottom")
    train_mode = train_cols[0].toggle("training mode (dropout active)", key="inside_train_mode",
                                      help="Run the same image with the dropout layers in training mode: they "
                                           "switch units off at random. Everything else stays in eval mode.")
    seed = int(train_cols[1].number_input("Dropout seed", min_value=0, max_value=2**31 - 1, value=0, step=1,
                                          key="inside_seed", disabled=not train_mode))
    if not train_mode:
        show_chart(_map_grid(maps, stage), key="inside_maps_fig", alt=_maps_alt(stage, maps, description))
    else:
        train_acts = activations(model, x, mode="dropout", seed=seed)
        dropped = {name: _dropped_share(train_acts[pre], train_acts[name])
                   for name, pre in (("dropout1", "max1"), ("dropout2", "max2"))}
        st.caption(f"With seed {seed}, dropout1 switched off {dropped['dropout1']:.0f}% of the non-zero values "
                   f"reaching it (p = {model.dropout1.p:g}) and dropout2 {dropped['dropout2']:.0f}% "
                   f"(p = {model.dropout2.p:g}); the survivors are scaled up by 1/(1 − p), so the colour scale "
                   "reaches higher. Change the seed and other units drop. Batch norm keeps its running "
                   "statistics here, so every difference you see before dropout1 is zero: dropout alone.")
        eval_col, train_col = st.columns(2)
        with eval_col:
            st.markdown("**Evaluation mode** (how predictions are made)")
            show_chart(_map_grid(maps, stage, cols=8), key="inside_maps_fig", alt=_maps_alt(stage, maps, description))
        with train_col:
            st.markdown(f"**Training mode**, seed {seed}")
            show_chart(_map_grid(train_acts[stage], stage, cols=8), key="inside_train_maps_fig",
                       alt=_maps_alt(stage, train_acts[stage], description, f"in training mode, seed {seed}"))
        train_probs = train_acts["softmax"][0]
        st.caption(f"In training mode the network says **{ds.classes[int(train_probs.argmax())]}** with "
                   f"{100 * float(train_probs.max()):.1f}% (evaluation mode: {100 * float(probs[predicted]):.1f}%).")

    # -- the classifier
    st.header("fc1: 512 numbers that describe the image")
    active = int((acts["relu3"] > 0).sum())
    st.caption(f"fc1 output shape `{_fmt_shape(acts['fc1'])}`: the 1024 pooled values (`flatten` "
               f"{_fmt_shape(acts['flatten'])}) are mixed into 512 features. ReLU keeps the {active} positive "
               f"ones (blue) and zeroes the other {acts['fc1'].numel() - active} (grey); fc2 then turns the "
               f"kept ones into the 10 scores `{_fmt_shape(acts['logits'])}` that softmax makes into probabilities.")
    show_chart(_fc1_strip(acts["fc1"]), key="inside_fc1_fig",
               alt=f"Bar chart of the 512 fc1 values before ReLU for this input: {active} are positive and kept "
                   f"by ReLU, the other {acts['fc1'].numel() - active} are set to zero.")

    with st.expander("Shapes of every stage for this image", expanded=False):
        _shape_table(acts, model)


st.title("Inside the network")
st.markdown("Follow one image through SimpleCNN: the filters it learned, what each stage produces, "
            "and how the final 512 features become a prediction.")

dataset = state.dataset()
pick_cols = st.columns([1, 2], vertical_alignment="top")
with pick_cols[0]:
    model, model_label = state.model_picker()
if model is None:
    st.info(model_label)
    nav.link(nav.TRAIN, "Train a model", icon=":material/model_training:")
    st.stop()
with pick_cols[1]:
    image, image_description, image_class = _input_image(dataset)
if image is None:
    st.stop()

model_key = state.selected_model_key()
run_entry = state.runs().get(model_key)
is_training = run_entry is not None and run_entry.job is not None and run_entry.snapshot().active
st.fragment(run_every=LIVE_REFRESH_S if is_training else None)(_network_view)(
    model_key, image, image_description, image_class)
