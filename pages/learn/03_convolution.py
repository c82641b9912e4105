"""Lesson 3: a convolution slides a small kernel over the image; each output pixel is one weighted sum."""
from __future__ import annotations


import numpy as np
import pandas as pd
import streamlit as st

from dashboard.charts import show_chart
from dashboard.lesson_params import KERNEL_LEARNED, KERNEL_PRESET
from dashboard import nav, state
from dashboard.lesson_settings import lesson_link, setting, settle
from simplecnn.data import DataError
from simplecnn.inspection import first_layer_filters
from simplecnn.lessons import convolution as cv
from simplecnn.lessons import figures_a as fig
from simplecnn.lessons import tensors_fc as tf
from simplecnn.model import SimpleCNN

PRESET, LEARNED = KERNEL_PRESET, KERNEL_LEARNED


def signed_map(values: np.ndarray, title: str, box: tuple[int, int, int, int], height: int = 430):
    """An output map on a zero-centred scale (negative blue, positive orange), one pixel boxed."""
    bound = float(np.abs(values).max()) or 1.0
    return fig.value_grid(values, title, colorscale=fig.DIVERGING, zmin=-bound, zmax=bound, show_text=False,
                          height=height, box=box)


st.title("3 · Convolution")
lesson_link("03")
st.markdown(
    "A convolutional layer does not look at the whole image at once. It holds small grids of weights, "
    "**kernels** (or filters), and slides each one over the input. At every position it multiplies "
    "the kernel with the patch of input underneath, element by element, adds everything up and adds a "
    "bias: one number, one pixel of the output map. A kernel that resembles an edge answers strongly "
    "wherever the image has that edge, so the output map is a map of *where the pattern is*.\n\n"
    "With several input channels the kernel has one slice per channel; each slice produces its own sum "
    "and the sums are added into a single output pixel. Each kernel makes one output channel. (Deep "
    "learning calls this convolution; strictly it is cross-correlation, as the kernel is not flipped.)")
st.latex(r"\text{out}(r, c) = b + \sum_{ch}\sum_{i=0}^{k-1}\sum_{j=0}^{k-1} "
         r"\text{in}_{ch}(r\,s + i\,d,\; c\,s + j\,d)\;K_{ch}(i, j)")
st.latex(r"H_{out} = \left\lfloor \frac{H_{in} + 2p - d\,(k - 1) - 1}{s} \right\rfloor + 1"
         r"\quad\overset{d=1}{=}\quad \left\lfloor \frac{H_{in} - k + 2p}{s} \right\rfloor + 1")
st.caption("k: kernel size, p: padding, s: stride, d: dilation (gaps between kernel taps; 1 means none).")

try:
    ds = state.dataset()
except DataError as exc:
    st.error(str(exc))
    st.stop()
model, model_label = state.active_model()
presets = cv.preset_kernels()

# -- one step of the convolution ------------------------------------------------------------------------
st.header("Slide a 5×5 kernel over a real digit")
c1, c2, c3 = st.columns(3)
index = int(c1.number_input(f"Test image (0–{len(ds.test_labels) - 1})", 0, len(ds.test_labels) - 1,
                            **setting("t03_index")))
sources = [PRESET, LEARNED] if model is not None else [PRESET]
settle("t03_source", sources)
source = c2.radio("Kernel", sources, **setting("t03_source"))
if model is None:
    c2.info(f"{model_label} Preset kernels only until there is a model.")
if source == PRESET:
    preset_name = c3.selectbox("Preset", list(presets), **setting("t03_preset"))
    kernel = presets[preset_name]
    bias = c3.slider("Bias", -1.0, 1.0, step=0.05, **setting("t03_bias"))
    kernel_title = preset_name
else:
    filter_index = c3.slider("conv1 filter", 0, model.conv1.out_channels - 1, **setting("t03_filter"))
    kernel3d, bias = cv.layer_kernel(model, "conv1", filter_index)
    kernel = kernel3d[0]
    kernel_title = f"conv1 filter {filter_index} (bias {bias:+.3f})"

image_u8, label = tf.digit(ds, index)
image = tf.model_view(image_u8)[0, 0].double().numpy()  # (28, 28) in [0, 1]
k = kernel.shape[0]
out_map = cv.conv_output_map(image, kernel, bias)  # (24, 24), from F.conv2d
p1, p2 = st.columns(2)
strongest = np.unravel_index(int(np.abs(out_map).argmax()), out_map.shape)  # start where the kernel responds most
row = p1.slider("Output row", 0, out_map.shape[0] - 1, int(strongest[0]), key="t03_row")
col = p2.slider("Output column", 0, out_map.shape[1] - 1, int(strongest[1]), key="t03_col")
step = cv.conv_step(image, kernel, bias, row, col)

g1, g2 = st.columns(2)
show_chart(fig.value_grid(image, f"Input {tuple(image.shape)}: the kernel covers rows {row}–{row + k - 1}, "
                               f"cols {col}–{col + k - 1}", zmin=0, zmax=1, show_text=False, height=430,
                               box=(row, col, k, k)), key="t03_input", where=g1)
show_chart(signed_map(out_map, f"Output {out_map.shape}: pixel ({row}, {col})", (row, col, 1, 1)),
                key="t03_output", where=g2)
s1, s2, s3 = st.columns(3)
show_chart(fig.value_grid(step.patch[0], "Patch under the kernel", zmin=0, zmax=1, text_size=12,
                               height=300), key="t03_patch", where=s1)
show_chart(fig.kernel_grid(kernel, kernel_title), key="t03_kernel", where=s2)
show_chart(fig.kernel_grid(step.products[0], "Products patch × kernel"), key="t03_products", where=s3)
st.latex(rf"\text{{out}}({row}, {col}) = \underbrace{{{step.weighted_sum:.4f}}}_{{\sum \text{{products}}}}"
         rf" + \underbrace{{({step.bias:+.4f})}}_{{\text{{bias}}}} = \mathbf{{{step.output:.4f}}}")
torch_value = float(out_map[row, col])
st.markdown(f"`F.conv2d` gives **{torch_value:.4f}** at ({row}, {col}) "
            f"(difference {abs(torch_value - step.output):.1e}).")
if model is not None:
    with st.expander(f"All {model.conv1.out_channels} conv1 filters of {model_label}"):
        show_chart(fig.filter_bank(first_layer_filters(model),
                                        highlight=filter_index if source == LEARNED else None),
                        key="t03_bank")

# -- several input channels ------------------------------------------------------------------------
st.header("Several input channels: one sum per channel, then the total")
second_index = (index + 1) % len(ds.test_labels)
second_u8, _ = tf.digit(ds, second_index)
two_channels = np.stack([image, tf.model_view(second_u8)[0, 0].double().numpy()])  # (2, 28, 28)
second_kernel_name = st.selectbox("Kernel slice for channel 1", list(presets),
                                  index=list(presets).index("Edge (vertical)"), key="t03_second")
kernel2 = np.stack([kernel, presets[second_kernel_name]])  # (2, 5, 5)
step2 = cv.conv_step(two_channels, kernel2, bias, row, col)
torch2 = float(cv.conv_output_map(two_channels, kernel2, bias)[row, col])
st.markdown(f"A made-up two-channel input: channel 0 is test image {index}, channel 1 is test image "
            f"{second_index}. The kernel has two 5×5 slices: channel 0 uses the kernel above, channel 1 uses "
            f"*{second_kernel_name}*. Same position ({row}, {col}).")
m1, m2 = st.columns(2)
for c, column in enumerate((m1, m2)):
    show_chart(fig.kernel_grid(step2.products[c], f"Channel {c}: products, sum = "
                                        f"{step2.channel_sums[c]:.4f}"), key=f"t03_multi{c}", where=column)
st.latex(rf"{step2.channel_sums[0]:.4f} + ({step2.channel_sums[1]:+.4f}) + ({step2.bias:+.4f}) = "
         rf"\mathbf{{{step2.output:.4f}}}\qquad(\texttt{{F.conv2d}}: {torch2:.4f})")

if model is not None:
    st.subheader(f"In SimpleCNN: conv2 adds up {model.conv2.in_channels} channels")
    maps = cv.live_feature_maps(model, image_u8)
    q1, q2, q3 = st.columns(3)
    out_channel = q1.slider("conv2 filter", 0, model.conv2.out_channels - 1, 0, key="t03_c2filter")
    h2 = maps["conv2"].shape[1]
    r2 = q2.slider("conv2 row", 0, h2 - 1, h2 // 2, key="t03_c2row")
    c2_ = q3.slider("conv2 column", 0, h2 - 1, h2 // 2, key="t03_c2col")
    weight2, bias2 = cv.layer_kernel(model, "conv2", out_channel)  # (32, 5, 5)
    real = cv.conv_step(maps["dropout1"], weight2, bias2, r2, c2_)
    show_chart(fig.bar_values([str(i) for i in range(len(real.channel_sums))], real.channel_sums,
                                   title=f"Per-channel sums for conv2 filter {out_channel} at ({r2}, {c2_})",
                                   y_title="sum of products"), key="t03_c2bars")
    st.markdown(f"Total of the {len(real.channel_sums)} sums {real.weighted_sum:.4f} + bias {real.bias:+.4f} = "
                f"**{real.output:.4f}**; the model's own conv2 output there is "
                f"**{float(maps['conv2'][out_channel, r2, c2_]):.4f}**.")

# -- output size ---------------------------------------------------------------------------------
st.header("Output size calculator")
o = st.columns(5)
h_in = int(o[0].number_input("Input size H", 1, 256, **setting("t03_h")))
ksz = int(o[1].number_input("Kernel k", 1, 15, **setting("t03_k")))
pad = int(o[2].number_input("Padding p", 0, 10, **setting("t03_p")))
stride = int(o[3].number_input("Stride s", 1, 10, **setting("t03_s")))
dil = int(o[4].number_input("Dilation d", 1, 5, **setting("t03_d")))
formula = cv.output_size(h_in, ksz, pad, stride, dil)
measured, error = cv.torch_output_size(h_in, ksz, pad, stride, dil)
st.latex(rf"H_{{out}} = \left\lfloor \frac{{{h_in} + 2\cdot{pad} - {dil}\cdot({ksz} - 1) - 1}}{{{stride}}}"
         rf"\right\rfloor + 1 = {formula}")
r1, r2_ = st.columns(2)
r1.metric("Formula", formula if formula >= 1 else "kernel does not fit")
r2_.metric(f"F.conv2d on zeros of shape (1, 1, {h_in}, {h_in})", measured if measured is not None else "error")
if measured is None:
    st.warning(f"torch refuses: {error}")
elif measured == formula:
    st.success(f"Formula and torch agree: the output is {measured}×{measured}.")
else:
    st.error(f"Formula says {formula}, torch says {measured}.")

# -- the live model ------------------------------------------------------------------------------------
st.header("Where this happens in SimpleCNN")
reference = model if model is not None else SimpleCNN()
st.dataframe(pd.DataFrame([{"layer": r.name, "what": r.kind, "output shape": str(r.output_shape),
                            "parameters": r.parameters}
                           for r in reference.layer_table() if r.name in ("input", "conv1", "max1", "conv2", "max2")]),
             hide_index=True)
nav.link(nav.INSIDE, "See it in the live model", icon=":material/biotech:")

# -- predict, then check ---------------------------------------------------------------------------
st.header("Predict, then check")
q_side, q_k, q_pad, q_stride = 28, 5, 2, 2
options = [q_side, q_side - q_k + 1, (q_side - q_k) // q_stride + 1, (q_side - q_k + 2 * q_pad) // q_stride + 1, q_side // 4]
options = sorted(set(options))
guess = st.radio(f"A {q_k}×{q_k} kernel slides over a {q_side}×{q_side} digit with padding {q_pad} and stride {q_stride}. "
                 "How big is the output map?", options, index=None, format_func=lambda v: f"{v}×{v}", key="t03_guess")
if st.button("Check by running it", key="t03_check"):
    if guess is None:
        st.warning("Pick an answer first, then check.")
    else:
        truth, _ = cv.torch_output_size(q_side, q_k, q_pad, q_stride)  # F.conv2d on zeros
        text = (f"F.conv2d turns {q_side}×{q_side} into {truth}×{truth}: the padding makes the input "
                f"{q_side + 2 * q_pad} wide, a {q_k}-wide kernel fits in {q_side + 2 * q_pad - q_k + 1} positions, "
                f"and stride {q_stride} keeps one position in {q_stride}.")
        if guess == truth:
            st.success(f"Right. {text}")
        else:
            st.error(f"Not quite. {text}")
