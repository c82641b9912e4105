"""Lesson 13: the MNIST dataset, described by numbers computed from its own tensors."""
import streamlit as st
import torch

from dashboard.charts import show_chart
from dashboard import nav
from dashboard.lesson_settings import lesson_link, setting
from dashboard.state import active_model, shared_dataset
from dashboard.widgets import predict_then_check
from simplecnn.data import split_indices
from simplecnn.evaluation import evaluate
from simplecnn.lessons.dataset_stats import (class_counts, mean_images, mistake_options, mosaic, pixel_stats,
                                             sample_indices)
from simplecnn.lessons.figures_b import class_balance_figure, image_row_figure
from simplecnn.training import TrainConfig


@st.cache_data(show_spinner="Counting the dataset…")
def _summary(name: str) -> dict:
    """Read-only facts about a dataset, computed once per server."""
    ds = shared_dataset(name)
    return {
        "train_counts": class_counts(ds.train_labels, ds.num_classes),
        "test_counts": class_counts(ds.test_labels, ds.num_classes),
        "means": mean_images(ds.train_images, ds.train_labels, ds.num_classes),
        "pixels": pixel_stats(ds.train_images),
    }


ds = shared_dataset("mnist")
summary = _summary("mnist")
n_train, n_test = len(ds.train_labels), len(ds.test_labels)
height, width = ds.train_images.shape[1:]

st.title("13 · The MNIST dataset")
lesson_link("13")
st.markdown(
    f"MNIST is a collection of **{n_train + n_test:,}** handwritten digits, split into **{n_train:,}** "
    f"training images and **{n_test:,}** test images. Each image is {height}×{width} grey pixels "
    f"({height * width} numbers from 0 for the background to 255 for full ink), showing one digit from "
    f"0 to 9, centred by its centre of mass. The training and test digits were written by different people.\n\n"
    "Yann LeCun, Corinna Cortes and Christopher Burges built it in 1998 by re-mixing two NIST "
    "collections (one written by US Census Bureau staff, one by high-school students) and size-"
    "normalising the digits. It is small enough to train on a laptop, yet hard enough that the "
    "differences between models show, which is why it became the first dataset most people meet. "
    "It is distributed under the Creative Commons Attribution-Share Alike 3.0 licence (CC BY-SA 3.0).")
px = summary["pixels"]
st.latex(rf"x = \frac{{\text{{pixel}}}}{{255}} \in [0, 1],\qquad \mu = \overline{{x}} = {px.mean:.4f},"
         rf"\qquad \sigma = {px.std:.4f}")
st.caption(f"μ and σ are computed here from all {n_train * height * width:,} training pixels; "
           f"{px.zero_fraction:.1%} of them are exactly 0 (pure background).")

st.header("Samples of each class")
c1, c2 = st.columns([1, 3])
per_class = c1.slider("samples per class", 4, 16, **setting("mn_per_class"))
seed = c1.number_input("random seed", 0, 10_000, **setting("mn_seed"))
picked = sample_indices(ds.train_labels, per_class, int(seed), ds.num_classes)  # (10, per_class)
c1.caption("One row per digit, 0 at the top. Pixels are shown as stored (white = 255).")
c2.image(mosaic(ds.train_images, picked), width=min(760, 44 * per_class), clamp=True,
         alt=f"A grid of {per_class} training images of each class, one row per class from "
             f"{ds.classes[0]} to {ds.classes[-1]}, light on black.")

st.header("Class balance")
show_chart(class_balance_figure(summary["train_counts"], summary["test_counts"], ds.classes), width="stretch", key="t13_class_balance")
tc = summary["train_counts"]
st.caption(f"Training counts sum to {sum(tc):,}; the largest class has {max(tc):,} images and the smallest "
           f"{min(tc):,}, so the classes are close to balanced (a model cannot score well by always guessing "
           "one digit: the best it could do is "
           f"{max(tc) / sum(tc):.1%}).")

st.header("The average digit")
show_chart(image_row_figure(summary["means"], [f"mean {c}" for c in ds.classes], zmax=1.0, height=150),
                width="stretch", key="t13_image_row")
st.caption("Each picture is the pixel-wise mean of all training images of that class: where the ink usually is.")

st.header("Where MNIST enters SimpleCNN")
model, label = active_model()
train_idx, val_idx = split_indices(n_train, TrainConfig().validation_split)
if model is None:
    st.info(label)
outputs = model.fc2.out_features if model is not None else ds.num_classes
st.markdown(
    f"SimpleCNN takes a batch shaped (N, 1, {height}, {width}) (one grey channel) and ends in "
    f"{outputs} outputs, one per class. The Train page holds out {TrainConfig().validation_split:.0%} of the "
    f"training images for validation: {len(train_idx):,} images to learn from and {len(val_idx):,} to check "
    f"on, while the {n_test:,} test images are kept for the final score.")
nav.link(nav.DATA, "Browse the dataset on the Data page", icon=":material/dataset:")
nav.link(nav.TRAIN, "Train SimpleCNN on it", icon=":material/model_training:")

st.header("Predict, then check")


def _test_confusion(net) -> torch.Tensor:
    """The model's confusion matrix on all test images, once per model object in this session."""
    cached = st.session_state.get("_mn_confusion")
    if cached is None or cached[0] is not net:
        with st.spinner("Evaluating the model on the 10,000 test images…"):
            result = evaluate(net, ds.test_images, ds.test_labels, num_classes=ds.num_classes)
        cached = st.session_state["_mn_confusion"] = (net, result.confusion)
    return cached[1]


if model is None:
    st.info("This question needs a trained model: train one on the Train page.")
else:
    pairs = mistake_options(_test_confusion(model), k=4)  # distinct counts: one right answer
    choices = sorted(pairs)  # by digit, so the order gives nothing away

    def _pair_text(pair: tuple[int, int, int]) -> str:
        return f"a {ds.classes[pair[0]]} read as {ds.classes[pair[1]]}"

    def _mistake_answer() -> tuple[tuple[int, int, int], str]:
        top = pairs[0]
        counts = ", ".join(f"{_pair_text(p)}: {p[2]}" for p in pairs)
        return top, (f"counting the confusion matrix gives {counts}, so the most frequent of these is "
                     f"**{_pair_text(top)}** ({top[2]} of the {int(_test_confusion(model)[top[0]].sum()):,} test "
                     f"{ds.classes[top[0]]}s). Digits that share strokes get confused; the Results page shows the "
                     "whole matrix.")

    predict_then_check(f"On the {n_test:,} test images, which of these mistakes does *{label}* make most often?",
                       choices, "mn", _mistake_answer, format_func=_pair_text)
