"""Lesson 14: SimpleCNN layer by layer: shapes and parameter counts, then one digit's forward pass."""
import copy

import pandas as pd
import streamlit as st
import torch

from dashboard import nav
from dashboard.state import dataset, lesson_model
from simplecnn.lessons.figures_b import image_row_figure, softmax_bars_figure, vector_figure
from simplecnn.lessons.layer_walk import forward_walk, layer_rows, parameter_formula, strongest_channels



st.title("14 · SimpleCNN layer by layer")
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

st.subheader("One digit through the network")
c1, c2 = st.columns([1, 3])
index = c1.number_input("test digit #", 0, len(ds.test_labels) - 1, 0, key="lw_index")
per_stage = c1.slider("feature maps per stage", 4, 12, 8, key="lw_per_stage")
walk = forward_walk(work, ds.test_images[int(index)])
true_label = int(ds.test_labels[int(index)])
c1.image(ds.test_images[int(index)].numpy(), width=140, caption=f"label {ds.classes[true_label]}")
c2.plotly_chart(softmax_bars_figure(walk.probabilities, ds.classes, true_label), width="stretch")
st.caption(f"For each stage: the {per_stage} channels with the strongest mean |activation| for this digit "
           "(the channel number is in each title). Each map has its own colour scale: dark purple is its "
           "lowest value, yellow its highest.")
for stage in ("conv1", "relu1", "max1", "conv2", "relu2", "max2"):
    out = walk.stages[stage]  # (1, C, H, W)
    chans = strongest_channels(out, per_stage)
    st.markdown(f"**{stage}** · {type(getattr(work, stage)).__name__} · output {tuple(out.shape)}")
    st.plotly_chart(image_row_figure(out[0, chans].numpy(), [f"ch {c}" for c in chans], colorscale="Viridis",
                                     zmin=None, height=130), width="stretch", key=f"lw_fig_{stage}")
relu3 = walk.stages["relu3"][0].numpy()
st.plotly_chart(vector_figure(relu3, f"fc1 + ReLU: {relu3.size} features, {int((relu3 > 0).sum())} of them "
                                     "non-zero for this digit"), width="stretch")

st.subheader("Where to go next")
st.markdown("Everything above is the live model: the same module the Train page trains and the Inside "
            "page opens up with hooks.")
nav.link(nav.INSIDE, "Open the network for your own drawings on the Inside page", icon=":material/biotech:")

st.subheader("Predict, then check")
candidates = ["conv1", "conv2", "fc1", "fc2"]
guess = st.radio("Which layer holds the most parameters?", candidates, index=None, horizontal=True, key="lw_guess")
if st.button("Check by running it", key="lw_check"):
    st.session_state["lw_checked"] = True
if st.session_state.get("lw_checked"):
    if guess is None:
        st.warning("Pick an answer first, then check.")
    else:
        counts = {name: sum(p.numel() for p in getattr(work, name).parameters()) for name in candidates}
        truth = max(counts, key=counts.get)
        detail = ", ".join(f"{n}: {parameter_formula(getattr(work, n))[0]} = {c:,}" for n, c in counts.items())
        winner = getattr(work, truth)
        why = (f"each of its {winner.out_features} outputs has its own weight for every one of its "
               f"{winner.in_features} inputs, while a convolution reuses one small kernel at every position"
               if isinstance(winner, torch.nn.Linear) else "its kernels are many and deep")
        (st.success if guess == truth else st.error)(
            f"{'Right' if guess == truth else 'Not quite'}: counting `p.numel()` gives {detail}. "
            f"**{truth}** has the most: {why}.")
