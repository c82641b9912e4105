"""Lesson 1: an image is a grid of numbers, and a batch of images is a 4-D tensor (N, C, H, W)."""
from __future__ import annotations


import pandas as pd
import streamlit as st
import torch

from dashboard.charts import show_chart
from dashboard import nav, state
from dashboard.lesson_settings import lesson_link, setting
from simplecnn.data import DataError
from simplecnn.inspection import activations
from simplecnn.lessons import figures_a as fig
from simplecnn.lessons import tensors_fc as tf
from simplecnn.model import SimpleCNN

BYTE_MAX = torch.iinfo(torch.uint8).max  # the brightest value a byte can hold

st.title("1 · Images as tensors")
lesson_link("01")
st.markdown(
    "A computer never sees a picture, only numbers. A greyscale image is a grid with one number per "
    "pixel: how bright that pixel is. On disk each pixel is a single **byte** (an integer from 0 to "
    f"{BYTE_MAX}); before the network reads it, every byte is divided by {BYTE_MAX} so the values lie "
    "between 0 and 1, a range that keeps the first layer's sums in a comfortable size.\n\n"
    "Networks work on many images at once. PyTorch stacks them into one 4-D **tensor** with the "
    "axes **(N, C, H, W)**: N images, each with C channels (1 for grey, 3 for colour), each channel "
    "H rows by W columns. Every layer of SimpleCNN takes and returns tensors in this layout.")
st.latex(rf"x_{{n,c,h,w}} \;=\; \frac{{\text{{byte}}_{{n,c,h,w}}}}{{{BYTE_MAX}}} \in [0, 1],"
         r"\qquad x \in \mathbb{R}^{N \times C \times H \times W}")

try:
    ds = state.dataset()
except DataError as exc:
    st.error(str(exc))
    st.stop()

# -- one real digit ---------------------------------------------------------------------------------
st.header("A real digit, pixel by pixel")
c1, c2, c3 = st.columns([1, 1, 1])
split = c1.radio("Split", ["test", "train"], horizontal=True, **setting("t01_split"))
n_images = len(ds.test_labels if split == "test" else ds.train_labels)
index = int(c2.number_input(f"Image index (0–{n_images - 1})", 0, n_images - 1, 0, key="t01_index"))
view = c3.radio("Show the values as", ["bytes (uint8, on disk)", "floats in [0, 1] (what the model reads)"],
                **setting("t01_view"))
image_u8, label = tf.digit(ds, index, split)
image_float = tf.model_view(image_u8)[0, 0]  # (28, 28) float32
as_bytes = view.startswith("bytes")
values = image_u8.numpy() if as_bytes else image_float.numpy()

show_chart(fig.value_grid(values, f"{split} image {index}: a {ds.classes[label]!s}",
                               fmt="d" if as_bytes else ".2f", zmin=0, zmax=BYTE_MAX if as_bytes else 1.0,
                               text_size=9 if as_bytes else 8, height=720),
                key="t01_grid")

left, right = st.columns(2)
with left:
    st.markdown("**The same image, two data types**")
    st.dataframe(pd.DataFrame([
        {"form": "on disk", "dtype": str(image_u8.dtype), "shape": str(tuple(image_u8.shape)),
         "min": float(image_u8.min()), "max": float(image_u8.max()),
         "bytes": image_u8.element_size() * image_u8.numel()},
        {"form": "model input", "dtype": str(image_float.dtype), "shape": str(tuple(tf.model_view(image_u8).shape)),
         "min": float(image_float.min()), "max": float(image_float.max()),
         "bytes": image_float.element_size() * image_float.numel()},
    ]), hide_index=True)
with right:
    st.markdown("**One pixel**")
    pc1, pc2 = st.columns(2)
    brightest = divmod(int(image_u8.argmax()), image_u8.shape[1])  # start on an inked pixel
    row = pc1.slider("Row", 0, image_u8.shape[0] - 1, brightest[0], key="t01_row")
    col = pc2.slider("Column", 0, image_u8.shape[1] - 1, brightest[1], key="t01_col")
    byte = int(image_u8[row, col])
    st.latex(rf"\text{{byte}} = {byte} \;\Rightarrow\; x = \frac{{{byte}}}{{{BYTE_MAX}}} = "
             rf"{float(image_float[row, col]):.4f}")

# -- a real batch -----------------------------------------------------------------------------------
st.header("A batch: the tensor SimpleCNN actually receives")
batch_size = st.slider("Batch size N", 1, 256, **setting("t01_batch"))
images, labels = tf.first_batch(ds, batch_size)
st.markdown(f"The trainer's first batch of the training split has shape **{tuple(images.shape)}** "
            f"and dtype `{images.dtype}`; its labels have shape {tuple(labels.shape)}.")
st.dataframe(pd.DataFrame([{"axis": name, "size": size, "meaning": meaning}
                           for (name, meaning), size in zip(tf.NCHW, images.shape)]), hide_index=True)
st.caption(f"{images.numel():,} numbers in all = {' × '.join(str(s) for s in images.shape)}; "
           f"as float32 that is {images.numel() * images.element_size() / 1024:,.1f} KiB.")

# -- the live model ----------------------------------------------------------------------------------
st.header("Where this happens in SimpleCNN")
model, model_label = state.active_model()
reference = model if model is not None else SimpleCNN()
conv1 = reference.conv1
st.markdown(f"SimpleCNN's first layer `conv1` has a weight tensor of shape **{tuple(conv1.weight.shape)}**: "
            f"{conv1.out_channels} filters, each reading **{conv1.in_channels}** input channel of "
            f"{conv1.kernel_size[0]}×{conv1.kernel_size[1]} pixels. That in-channel count is why the C axis "
            "of the input must be there, even though a grey image has only one channel.")
if model is None:
    st.info(f"{model_label} The shapes above come from a freshly built, untrained SimpleCNN.")
else:
    probs = activations(model, image_u8)["softmax"][0].numpy()
    st.markdown(f"**{model_label}** reads this digit as the tensor of shape {tuple(tf.model_view(image_u8).shape)} "
                f"and answers **{ds.classes[int(probs.argmax())]}** (true label {ds.classes[label]}):")
    show_chart(fig.probability_bars(ds.classes, probs, highlight=label, height=280), key="t01_probs")
nav.link(nav.INSIDE, "See it in the live model", icon=":material/biotech:")

# -- predict, then check ---------------------------------------------------------------------------
st.header("Predict, then check")
n, channels, side, maps_out = 8, 3, 32, 16  # colour photos: not what SimpleCNN reads, same rule
colour_conv = torch.nn.Conv2d(channels, maps_out, 5)
candidates = [(n, side, side, channels), (n, channels, side, side), (channels, n, side, side), (n, channels * side * side)]
question = (f"A colour photo has {channels} channels (red, green, blue). You hand {n} colour photos of {side}×{side} "
            f"pixels to `nn.Conv2d({channels}, {maps_out}, 5)`. Which tensor does it accept and turn into "
            f"{maps_out} feature maps per photo?")
guess = st.radio(question, candidates, index=None, format_func=lambda s: str(s), key="t01_guess")
if st.button("Check by running it", key="t01_check"):
    if guess is None:
        st.warning("Pick an answer first, then check.")
    else:
        results = tf.try_shapes(colour_conv, candidates)
        working = [shape for shape, out, _ in results if out is not None and len(out) == 4 and out[:2] == (n, maps_out)]
        if guess in working:
            st.success(f"Right: {guess} is the (N, C, H, W) layout: {n} photos, {channels} channels, {side} rows, "
                       f"{side} columns.")
        else:
            st.error(f"Not this one: only {working[0]} gives {n} photos × {maps_out} maps.")
        st.dataframe(pd.DataFrame([{"input shape": str(s), "conv output": str(out) if out else "—",
                                    "torch says": err or "ok"} for s, out, err in results]), hide_index=True)
