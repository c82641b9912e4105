"""Lesson 16: mini-batch gradient descent: batch size against the noise of real MNIST gradients."""
import numpy as np
import pandas as pd
import streamlit as st

from dashboard.charts import show_chart
from dashboard import nav
from dashboard.lesson_settings import lesson_link, setting
from dashboard.state import dataset, lesson_model
from dashboard.widgets import predict_then_check
from simplecnn.data import to_float
from simplecnn.lessons.figures_b import minibatch_noise_figure
from simplecnn.lessons.minibatch import (SHRINK_OPTIONS, closest_shrink_option, error_shrink, gradient_noise,
                                         loss_concentration, noise_scaling)
from simplecnn.lessons.training_step import fresh_model
from simplecnn.training import TrainConfig

BATCH_SIZES = (4, 16, 64, 256)
POOL = 4096  # training images the batches are drawn from

st.title("16 · Mini-batches and gradient noise")
lesson_link("16")
st.markdown(
    "The loss we want to lower is the average over all 60,000 training images, and so is its gradient. "
    "Computing it exactly would cost a pass over the whole dataset for every single step. Mini-batch "
    "gradient descent estimates it from B random images instead: the batch gradient is an average of B "
    "per-image gradients, so it points roughly the right way, with an error whose spread shrinks like 1/√B. "
    "Small batches are cheap per step and noisy; large ones are accurate and cost more per step.")
st.latex(r"g_B = \frac{1}{B}\sum_{n \in \text{batch}} \nabla_W L_n,\qquad "
         r"\operatorname{std}(g_B) = \frac{\operatorname{std}(\nabla_W L_n)}{\sqrt{B}}")

model, label = lesson_model()
ds = dataset()
c1, c2, c3 = st.columns(3)
start = c1.radio("model", ["a fresh SimpleCNN", "this model"], **setting("mb_start"),
                 help=f"This model: {label}.")
batches = c2.slider("batches per size", 4, 12, **setting("mb_batches"))
seed = c3.number_input("random seed", 0, 10_000, **setting("mb_seed"))
settings = (start, int(batches), int(seed), label)
st.caption(f"Batches of {', '.join(map(str, BATCH_SIZES))} images are drawn from the first {POOL:,} training "
           "images; the reference gradient is the one over the first 1,024. The model is a copy in eval mode, so "
           "the only randomness is which images are in the batch.")


def measure() -> None:
    """Gradients only (no weight changes): about a second for a few dozen batches of at most 256 images."""
    net = fresh_model() if start == "a fresh SimpleCNN" else model
    with st.spinner("Computing gradients…"):
        results, ref_size = gradient_noise(net, to_float(ds.train_images[:POOL]), ds.train_labels[:POOL],
                                           BATCH_SIZES, batches=int(batches), reference_size=1024, seed=int(seed))
    st.session_state["mb_result"] = (settings, results)


if st.button("Measure", type="primary", key="mb_run"):
    measure()
stored = st.session_state.get("mb_result")
# The numbers answer the question at the bottom: shown once it is checked (or skipped).
noise_answered = bool(st.session_state.get("mb_noise_checked")) and st.session_state.get("mb_noise_guess") is not None
if stored is None:
    st.info("Press **Measure** to compute the gradients (about a second).")
elif not (noise_answered or st.session_state.get("mb_revealed")):
    st.info("Measured. First answer the question at the bottom of the page, then press **Check** to see the numbers.")
    if st.button("Show the results without answering", key="mb_reveal"):
        st.session_state["mb_revealed"] = True
        st.rerun()
else:
    ran_with, results = stored
    if ran_with != settings:
        st.caption("These results are from earlier settings; press Measure to rerun.")
    show_chart(minibatch_noise_figure(results), width="stretch", key="t16_minibatch_noise")
    st.dataframe(pd.DataFrame([{"batch size B": r.batch_size, "mean cosine": np.mean(r.cosines),
                                "spread of cosine (std)": np.std(r.cosines),
                                "mean relative error": np.mean(r.relative_errors),
                                "ms per forward + backward": 1000 * r.seconds_per_batch} for r in results])
                 .style.format({"mean cosine": "{:.3f}", "spread of cosine (std)": "{:.3f}",
                                "mean relative error": "{:.3f}", "ms per forward + backward": "{:.1f}"}),
                 hide_index=True, width="stretch")
    slope = noise_scaling(results)
    net = fresh_model() if ran_with[0] == "a fresh SimpleCNN" else model
    share = loss_concentration(net, to_float(ds.train_images[:1024]), ds.train_labels[:1024], top=10)
    text = (f"On a log-log plot the relative error falls with slope **{slope:.2f}** here; pure averaging "
            f"of independent, similar per-image gradients gives −0.5. For this model the 10 hardest of the 1,024 "
            f"reference images carry **{share:.0%}** of the loss (an even spread would be {10 / 1024:.0%}).")
    if share > 0.3:
        text += (" A well-trained network gets almost every image right, so its gradient comes from the few "
                 "images it still finds hard, and a batch either happens to contain one of them or not: the "
                 "error then falls far less regularly with B, and even the 1,024-image reference is noisy.")
    st.markdown(text)

st.header("Where this acts in SimpleCNN")
st.markdown(f"The Train page uses batches of {TrainConfig().batch_size} images: each step costs one forward and "
            f"backward pass over {TrainConfig().batch_size} digits, and one epoch of the "
            f"{int(len(ds.train_labels) * (1 - TrainConfig().validation_split)):,} training images takes "
            f"{int(len(ds.train_labels) * (1 - TrainConfig().validation_split)) // TrainConfig().batch_size:,} "
            "such noisy steps.")
nav.link(nav.TRAIN, "Try other batch sizes on the Train page", icon=":material/model_training:")

st.header("Predict, then check")


def _measured_now(guess) -> None:
    """On Check: measure for the current settings if needed, then draw the page again with the numbers."""
    if guess is None:
        return
    current = st.session_state.get("mb_result")
    if current is None or current[0] != settings:
        measure()
    st.rerun()


def _shrink_answer() -> tuple[str, str] | None:
    current = st.session_state.get("mb_result")
    if current is None:
        return None
    ratio = error_shrink(current[1], 16, 256)
    truth = closest_shrink_option(ratio)
    note = "" if current[0] == settings else " (measured with earlier settings: press Check again to remeasure)"
    errors = {r.batch_size: float(np.mean(r.relative_errors)) for r in current[1]}
    return truth, (f"the mean relative error was {errors[16]:.3f} at B = 16 and {errors[256]:.3f} at B = 256 (ratio "
                   f"{ratio:.2f}){note}, so the answer is **{truth}**. Pure averaging of independent per-image "
                   "gradients predicts √16 = 4. A trained model's gradient comes from a few hard images, so it "
                   "can fall far short of that, or the error even grows: a large batch brings in hard images the "
                   "1,024-image reference lacks.")


predict_then_check("Go from batches of 16 images to batches of 256 (16 times more images per step), with the "
                   "model and seed chosen above. How much smaller does the batch gradient's mean relative error get?",
                   [t for t, _ in SHRINK_OPTIONS], "mb_noise", _shrink_answer, on_check=_measured_now)
