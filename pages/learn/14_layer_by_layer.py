"""Lesson 14: SimpleCNN layer by layer: shapes and parameter counts, then one digit's forward pass."""
import copy

import pandas as pd
import streamlit as st

from dashboard.charts import show_chart
from dashboard import nav
from dashboard.lesson_settings import lesson_link, setting
from dashboard.state import dataset, lesson_model
from dashboard.widgets import predict_then_check
from simplecnn.lessons.figures_b import (image_row_figure, receptive_field_figure, softmax_bars_figure,
                                         vector_figure)
from simplecnn.plots import BLUE, VERMILLION
from simplecnn.lessons.layer_walk import (MAP_STAGES, flatten_index, flatten_options, flatten_position,
                                          forward_walk, layer_rows, receptive_field, strongest_channels,
                                          strongest_listener, strongest_position)



st.title("14 · SimpleCNN layer by layer")
lesson_link("14")
st.markdown(
    "SimpleCNN is two convolution blocks followed by two fully-connected layers. Each block filters "
    "the image with 5×5 kernels, normalises each channel, keeps only positive responses (ReLU), "
    "halves the height and width by max-pooling, and applies dropout while training. The first "
    "block turns 1 grey channel into 32 feature maps, the second turns those into 64 smaller ones. "
    "Flattening gives one long vector that the first fully-connected layer maps to 512 features, "
    "and the last layer turns those into one score per digit; softmax makes the scores probabilities.\n\n"
    "A convolution without padding and with stride 1 shrinks each side by kernel − 1; a 2×2 pool with "
    "stride 2 halves it. The table reads every shape and count from the module itself.")
st.latex(r"H_{out} = \left\lfloor \frac{H_{in} - k + 2\cdot\text{padding}}{\text{stride}} \right\rfloor + 1")
st.latex(r"\#\text{params}_{\text{conv}} = C_{out}\cdot C_{in}\cdot k\cdot k + C_{out}"
         r"\qquad \#\text{params}_{\text{linear}} = n_{out}\cdot n_{in} + n_{out}")

model, label = lesson_model()
work = copy.deepcopy(model).cpu().float().eval()
ds = dataset()
st.caption(f"Model: {label}")

rows = layer_rows(work)
table = pd.DataFrame([{"layer": r.name, "type": r.kind, "output shape": r.output_shape,
                       "values per image": r.values_out, "parameters": r.parameters, "how": r.formula}
                      for r in rows])
st.dataframe(table.style.format({"values per image": "{:,}", "parameters": "{:,}"}), hide_index=True,
             width="stretch", height=35 * (len(rows) + 1) + 3)
total_rows, total_model = sum(r.parameters for r in rows), work.num_parameters()
m1, m2, m3 = st.columns(3)
m1.metric("total parameters (sum of the table)", f"{total_rows:,}")
m2.metric("model.num_parameters()", f"{total_model:,}", "same" if total_rows == total_model else "differs",
          delta_color="off")
fc1_share = sum(p.numel() for p in work.fc1.parameters()) / total_model
m3.metric("share held by fc1", f"{fc1_share:.1%}")

st.header("One digit through the network")
c1, c2 = st.columns([1, 3])
index = c1.number_input("test digit #", 0, len(ds.test_labels) - 1, **setting("lw_index"))
per_stage = c1.slider("feature maps per stage", 4, 12, **setting("lw_per_stage"))
walk = forward_walk(work, ds.test_images[int(index)])
true_label = int(ds.test_labels[int(index)])
c1.image(ds.test_images[int(index)].numpy(), width=140, caption=f"label {ds.classes[true_label]}",
         alt=f"Test image number {int(index)}: a handwritten {ds.classes[true_label]}, 28 by 28 pixels.")
show_chart(softmax_bars_figure(walk.probabilities, ds.classes, true_label), width="stretch", key="t14_softmax_bars", where=c2)
st.caption(f"For each stage: the {per_stage} channels with the strongest mean |activation| for this digit "
           "(the channel number is in each title); batch1 and batch2 are shown too, since normalising "
           "changes which channels stand out. Each map has its own colour scale: dark purple is its "
           "lowest value, yellow its highest.")
for stage in MAP_STAGES:
    out = walk.stages[stage]  # (1, C, H, W)
    chans = strongest_channels(out, per_stage)
    st.markdown(f"**{stage}** · {type(getattr(work, stage)).__name__} · output {tuple(out.shape)}")
    show_chart(image_row_figure(out[0, chans].numpy(), [f"ch {c}" for c in chans], colorscale="Viridis",
                                     zmin=None, height=130), width="stretch", key=f"lw_fig_{stage}")
relu3 = walk.stages["relu3"][0].numpy()
show_chart(vector_figure(relu3, f"fc1 + ReLU: {relu3.size} features, {int((relu3 > 0).sum())} of them "
                                     "non-zero for this digit"), width="stretch", key="t14_vector")

st.header("Follow one channel")
st.markdown(
    "Pick a channel of conv1 and follow it: its map after convolution, batch norm, ReLU and pooling. conv2 "
    "mixes all 32 channels, so the trail continues in the conv2 channel whose 5×5 kernel on your channel is "
    "largest. Each unit only sees part of the digit, its *receptive field*: a conv1 unit sees a 5×5 patch, a "
    "max1 unit 6×6, a conv2 unit 14×14 and a max2 unit 16×16.")
f1, f2 = st.columns([1, 3])
follow = f1.slider("conv1 channel", 0, work.conv1.out_channels - 1, **setting("lw_channel"))
listener = strongest_listener(work, int(follow))
block1 = [walk.stages[s][0, int(follow)].numpy() for s in ("conv1", "batch1", "relu1", "max1")]
block2 = [walk.stages[s][0, listener].numpy() for s in ("conv2", "batch2", "relu2", "max2")]
show_chart(image_row_figure(block1 + block2, [f"{s} ch {int(follow)}" for s in ("conv1", "batch1", "relu1", "max1")]
                                 + [f"{s} ch {listener}" for s in ("conv2", "batch2", "relu2", "max2")],
                                 colorscale="Viridis", zmin=None, height=150, wrap=4), width="stretch",
                key="lw_follow_fig", where=f2)
r1, c1_ = strongest_position(walk.stages["max1"], int(follow))
r2, c2_ = strongest_position(walk.stages["max2"], listener)
box1 = receptive_field(work, "max1", r1, c1_)
box2 = receptive_field(work, "max2", r2, c2_)
show_chart(receptive_field_figure(ds.test_images[int(index)].numpy() / 255.0, [
    (f"max1 ch {int(follow)} at ({r1}, {c1_})", box1, BLUE),
    (f"max2 ch {listener} at ({r2}, {c2_})", box2, VERMILLION)]), width="stretch", key="lw_rf_fig", where=f1)
f1.caption(f"Boxes: the input pixels that can change the strongest max1 unit of channel {int(follow)} "
           f"(rows {box1[0]}–{box1[2]}, columns {box1[1]}–{box1[3]}) and the strongest max2 unit of channel "
           f"{listener} (rows {box2[0]}–{box2[2]}, columns {box2[1]}–{box2[3]}).")

st.header("Flatten: from (64, 4, 4) to 1,024 numbers")
st.markdown(
    "`flatten` lays max2's 64 maps of 4×4 end to end: all 16 values of channel 0 row by row, then channel 1, "
    "and so on. fc1 then gives each of the 1,024 positions its own weight, so it learns *which channel at "
    "which place* it is looking at.")
st.latex(r"\text{index} = c\cdot 16 + r\cdot 4 + s \qquad (c = \text{channel},\ r = \text{row},\ s = \text{column})")
flat_index = st.number_input("fc1 input number", 0, work.fc1.in_features - 1, **setting("lw_flat_index"))
fc, fr, fs = flatten_position(int(flat_index), tuple(walk.stages["max2"].shape[1:]))
flat_value = float(walk.stages["flatten"][0, int(flat_index)])
grid_value = float(walk.stages["max2"][0, fc, fr, fs])
st.markdown(f"fc1 input **{int(flat_index)}** = max2 channel **{fc}**, row **{fr}**, column **{fs}**: "
            f"for this digit the flattened vector holds {flat_value:.4g} there and the map holds {grid_value:.4g} "
            f"({'the same number' if flat_value == grid_value else 'they differ'}).")

st.header("Where to go next")
st.markdown("Everything above is the live model: the same module the Train page trains and the Inside "
            "page opens up with hooks.")
nav.link(nav.INSIDE, "Open the network for your own drawings on the Inside page", icon=":material/biotech:")

st.header("Predict, then check")
q_channel, q_row, q_col = int(follow), 2, 3
q_options = flatten_options(q_channel, q_row, q_col, tuple(walk.stages["max2"].shape[1:]))


def _flatten_answer() -> tuple[int, str]:
    truth = flatten_index(work, q_channel, q_row, q_col)
    return truth, (f"a tensor that is 1 only at ({q_channel}, {q_row}, {q_col}) comes out of `model.flatten` with its "
                   f"1 at position **{truth}** = {q_channel}·16 + {q_row}·4 + {q_col}. Channels come first, then "
                   "rows, then columns.")


predict_then_check(f"max2's value at channel {q_channel}, row {q_row}, column {q_col} (counting from 0): which of "
                   "fc1's inputs receives it?", q_options, "lw", _flatten_answer, horizontal=True)
