"""Lesson 4: pooling shrinks a feature map by keeping one number (the max or the mean) per window."""
from __future__ import annotations


import numpy as np
import streamlit as st
import torch
import torch.nn.functional as F

from dashboard.charts import show_chart
from dashboard import nav, state
from dashboard.lesson_settings import lesson_link, setting
from simplecnn.data import DataError
from simplecnn.lessons import convolution as cv
from simplecnn.lessons import figures_a as fig
from simplecnn.lessons import pooling_shift as ps
from simplecnn.lessons import tensors_fc as tf
from simplecnn.model import SimpleCNN

FALLBACK_KERNEL = "Edge (horizontal)"

st.title("4 · Pooling")
lesson_link("04")
st.markdown(
    "After a convolution, neighbouring pixels of a feature map usually say much the same thing. A "
    "**pooling** layer exploits that: it cuts the map into small windows and keeps a single number per "
    "window. **Max pooling** keeps the strongest response (\"the pattern is somewhere in here\"), "
    "**average pooling** keeps the mean. Pooling has nothing to learn, it only shrinks the map, so the "
    "next layers have fewer numbers to process and a small shift of the digit changes less.\n\n"
    "The window size and the stride (how far the window jumps) decide the output size, with the same "
    "formula as for a convolution.")
st.latex(r"\text{max: } y(r, c) = \max_{0 \le i, j < k} x(r s + i,\, c s + j) \qquad "
         r"\text{avg: } y(r, c) = \frac{1}{k^2}\sum_{i, j} x(r s + i,\, c s + j)")
st.latex(r"H_{out} = \left\lfloor \frac{H_{in} - k + 2p}{s} \right\rfloor + 1")

try:
    ds = state.dataset()
except DataError as exc:
    st.error(str(exc))
    st.stop()
model, model_label = state.active_model()

# -- a real feature map -------------------------------------------------------------------------------
st.header("Pool a real feature map")
c1, c2 = st.columns(2)
index = int(c1.number_input(f"Test image (0–{len(ds.test_labels) - 1})", 0, len(ds.test_labels) - 1,
                            **setting("t04_index")))
image_u8, label = tf.digit(ds, index)
if model is not None:
    maps = cv.live_feature_maps(model, image_u8)
    channel = c2.slider("Channel of conv1 → BatchNorm → ReLU", 0, maps["relu1"].shape[0] - 1,
                        **setting("t04_channel"))
    fmap = maps["relu1"][channel].astype(np.float64)  # (24, 24): exactly what SimpleCNN's max1 receives
    source = f"{model_label}: channel {channel} after conv1, BatchNorm and ReLU"
else:
    st.info(f"{model_label} Meanwhile the map comes from the preset '{FALLBACK_KERNEL}' kernel followed by ReLU.")
    image = tf.model_view(image_u8)[0, 0].double().numpy()
    fmap = np.maximum(cv.conv_output_map(image, cv.preset_kernels()[FALLBACK_KERNEL]), 0.0).astype(np.float64)
    source = f"'{FALLBACK_KERNEL}' kernel + ReLU on test image {index}"

k1, k2 = st.columns(2)
kernel = k1.slider("Window size k", 1, 6, **setting("t04_k"))
stride = k2.slider("Stride s", 1, 6, **setting("t04_s"))
max_map = cv.pool2d(fmap, kernel, stride, "max")
avg_map = cv.pool2d(fmap, kernel, stride, "avg")
w1, w2 = st.columns(2)
strongest = np.unravel_index(int(max_map.argmax()), max_map.shape)  # start on the strongest window
out_row = w1.slider("Output row", 0, max_map.shape[0] - 1, int(strongest[0]), key="t04_row")
out_col = w2.slider("Output column", 0, max_map.shape[1] - 1, int(strongest[1]), key="t04_col")
window = cv.pool_window(fmap, kernel, stride, out_row, out_col)
top, left = window.top_left

st.caption(source)
show_chart(fig.maps_side_by_side(
    {f"input {fmap.shape}": fmap, f"max-pooled {max_map.shape}": max_map, f"average-pooled {avg_map.shape}": avg_map},
    boxes={f"input {fmap.shape}": (top, left, kernel, kernel),
           f"max-pooled {max_map.shape}": (out_row, out_col, 1, 1),
           f"average-pooled {avg_map.shape}": (out_row, out_col, 1, 1)}, height=380), key="t04_maps")
v1, v2 = st.columns([2, 3])
show_chart(fig.value_grid(window.values, f"Window at rows {top}–{top + kernel - 1}, cols {left}–{left + kernel - 1}",
                               colorscale="Viridis", zmin=float(fmap.min()), zmax=float(fmap.max()),
                               text_size=12, height=300), key="t04_window", where=v1)
with v2:
    st.latex(rf"\max = {window.maximum:.4f} \qquad \text{{mean}} = \frac{{{window.values.sum():.4f}}}"
             rf"{{{kernel * kernel}}} = {window.average:.4f}")
    x = torch.as_tensor(fmap)[None, None]  # (1, 1, H, W)
    torch_max = F.max_pool2d(x, kernel, stride)[0, 0]
    torch_avg = F.avg_pool2d(x, kernel, stride)[0, 0]
    st.markdown(f"`F.max_pool2d` / `F.avg_pool2d` give **{float(torch_max[out_row, out_col]):.4f}** / "
                f"**{float(torch_avg[out_row, out_col]):.4f}** at ({out_row}, {out_col}).")
    formula = cv.output_size(fmap.shape[0], kernel, 0, stride)
    st.latex(rf"H_{{out}} = \left\lfloor \frac{{{fmap.shape[0]} - {kernel}}}{{{stride}}} \right\rfloor + 1 = {formula}")
    st.markdown(f"torch's output shape: **{tuple(torch_max.shape)}**; the formula: **({formula}, {formula})**. "
                f"The map shrank from {fmap.size} to {max_map.size} numbers.")

# -- a one-pixel shift --------------------------------------------------------------------------------
st.header("Move the digit by one pixel")
st.markdown("Pooling is said to make a network less sensitive to small shifts. Test it on the real digit above "
            "(the raw pixels, pooled like max1 with k = 2, s = 2): move it by one pixel and measure what share of "
            "the map changes, $\\sum |x_{shifted} - x| / \\sum |x|$, before and after pooling.")
digit = tf.model_view(image_u8)[0, 0].double().numpy()  # (28, 28) in [0, 1]
d1, d2 = st.columns([1, 2])
direction = d1.radio("Shift the digit", list(ps.SHIFTS), horizontal=True, **setting("t04_shift"))
shift_guess = d2.radio(f"Test image {index} moved one pixel {direction}: which changes more?", list(ps.SHIFT_ANSWERS),
                       index=None, key="t04_shift_guess")
comparison = ps.shift_comparison(digit, direction)
show_chart(fig.maps_side_by_side({"digit": digit, f"moved {direction}": comparison["shifted"]}, height=300,
                                      colorscale="gray"), key="t04_shift_inputs")
if st.button("Check by running it", key="t04_shift_check"):
    if shift_guess is None:
        st.warning("Pick an answer first, then check.")
    else:
        st.session_state["t04_shift_shown"] = (index, direction, shift_guess)
if st.session_state.get("t04_shift_shown") == (index, direction, shift_guess):
    show_chart(fig.maps_side_by_side({"pooled digit (14, 14)": comparison["pooled"],
                                           "pooled, moved (14, 14)": comparison["pooled_shifted"]}, height=300,
                                          colorscale="gray"), key="t04_shift_pooled")
    text = (f"{comparison['input_change']:.1%} of the input changes, {comparison['pooled_change']:.1%} of the pooled map; "
            f"{comparison['pooled_unchanged']:.0%} of the pooled cells that hold ink keep exactly their value: "
            "their maximum stayed inside the same 2×2 window.")
    if shift_guess == comparison["answer"]:
        st.success(f"Right: {comparison['answer']}. {text}")
    else:
        st.error(f"Not quite: here {comparison['answer']}. {text}")

# -- the live model ------------------------------------------------------------------------------------
st.header("Where this happens in SimpleCNN")
pool = (model if model is not None else SimpleCNN()).max1
pk, ps = int(np.atleast_1d(pool.kernel_size)[0]), int(np.atleast_1d(pool.stride)[0])
if model is None:
    st.markdown(f"SimpleCNN's `max1` and `max2` are max pooling with k = {pk}, s = {ps} (read from a freshly "
                "built SimpleCNN): each halves the width and height of every feature map.")
else:
    own = cv.pool2d(maps["relu1"], pk, ps, "max")  # (32, 12, 12)
    gap = float(np.abs(own - maps["max1"]).max())
    st.markdown(f"SimpleCNN's `max1` is max pooling with k = {pk}, s = {ps}: it turns all "
                f"{maps['relu1'].shape[0]} maps of {maps['relu1'].shape[1:]} into {maps['max1'].shape[1:]}. "
                f"Running the hand-written pooling above on those maps reproduces the model's real max1 "
                f"output for this digit to within {gap:.1e}.")
if (kernel, stride) != (pk, ps):
    st.caption(f"Set the sliders to k = {pk}, s = {ps} to see exactly what max1 does to this channel.")
nav.link(nav.INSIDE, "See it in the live model", icon=":material/biotech:")

# -- predict, then check ---------------------------------------------------------------------------
st.header("Predict, then check")
options = ["The max is always at least the average", "The average can be larger than the max",
           "They always give the same value"]
guess = st.radio("Compare the two pooled maps position by position. Which is true for every window?",
                 options, index=None, key="t04_guess")
if st.button("Check by running it", key="t04_check"):
    if guess is None:
        st.warning("Pick an answer first, then check.")
    else:
        x = torch.as_tensor(fmap)[None, None]
        mx, av = F.max_pool2d(x, kernel, stride), F.avg_pool2d(x, kernel, stride)
        bigger_avg = int((av > mx + 1e-12).sum())
        equal = int(torch.isclose(mx, av).sum())
        if bigger_avg:
            right = {options[1]}
        else:  # with k = 1 (or a flat map) every window is equal, and "max >= average" still holds
            right = {options[0], options[2]} if equal == mx.numel() else {options[0]}
        summary = (f"With k = {kernel}, s = {stride} on this map: the average beats the max in {bigger_avg} of "
                   f"{mx.numel()} windows, and they are equal in {equal} (windows where every value is the same, "
                   "e.g. all zeros after ReLU).")
        if guess in right:
            st.success(f"Right. {summary}")
        else:
            st.error(f"Not quite. {summary} The mean of numbers can never exceed their largest one.")
