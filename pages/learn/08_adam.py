"""Lesson 8: Adam, one step at a time, on a bowl-shaped loss, checked against torch.optim.Adam."""
import copy

import pandas as pd
import streamlit as st
import torch

from dashboard.charts import show_chart
from dashboard import nav
from dashboard.lesson_settings import lesson_link, setting
from dashboard.state import dataset, lesson_model
from dashboard.adam_real_run import real_run_section
from dashboard.widgets import predict_then_check
from simplecnn.data import to_float
from simplecnn.lessons.adam_table import (AdamSettings, Bowl, adam_by_hand, bias_correction_options,
                                          check_against_torch, closest_option, compare_bias_correction,
                                          first_step_on_model, first_step_sizes, torch_adam_thetas,
                                          uncorrected_first_step_ratio)
from simplecnn.lessons.figures_b import adam_path_figure
from simplecnn.training import TrainConfig



st.title("8 · Adam step by step")
lesson_link("08")
st.markdown(
    "Plain gradient descent moves every parameter by *learning rate × gradient*, so a steep "
    "direction gets huge steps and a flat one barely moves. Adam fixes this by keeping two running "
    "averages per parameter: **m**, a smoothed gradient (momentum: it remembers which way we have "
    "been going), and **v**, a smoothed *squared* gradient (how large the gradients usually are).\n\n"
    "The step is m divided by √v. Dividing a gradient by its own typical size leaves roughly its "
    "sign, so each step is about α long, whatever the scale of the loss, as long as the gradient is well "
    "above ε. A weight whose gradient is 0 or tiny (its input or its unit was silent for the whole batch) "
    "hardly moves: in a well-trained SimpleCNN that is more than half of the weights at the first step. "
    "Both averages start at 0, "
    "which makes them too small for the first few steps; dividing by 1 − βᵗ (the *bias correction*) "
    "undoes that. Below, Adam runs on the bowl L(θ) = k·(θ − 3)², written out by hand and compared "
    "with PyTorch's own optimizer.")
st.latex(r"""\begin{aligned}
g_t &= \nabla_\theta L(\theta_{t-1}) &
m_t &= \beta_1 m_{t-1} + (1-\beta_1)\,g_t &
v_t &= \beta_2 v_{t-1} + (1-\beta_2)\,g_t^2 \\
\hat m_t &= \frac{m_t}{1-\beta_1^t} &
\hat v_t &= \frac{v_t}{1-\beta_2^t} &
\theta_t &= \theta_{t-1} - \alpha\,\frac{\hat m_t}{\sqrt{\hat v_t}+\epsilon}
\end{aligned}""")

st.header("Try it")
c1, c2, c3, c4 = st.columns(4)
lr = c1.number_input("α (learning rate)", min_value=0.0001, max_value=10.0, step=0.05,
                     format="%.4g", **setting("adam_lr"))
beta1 = c2.slider("β₁ (momentum)", 0.0, 0.99, step=0.01, **setting("adam_beta1"))
beta2 = c3.select_slider("β₂", options=[0.5, 0.9, 0.99, 0.999, 0.9999], **setting("adam_beta2"))
eps = c4.select_slider("ε", options=[1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 1e-1, 1.0],
                       format_func=lambda e: f"{e:.0e}", **setting("adam_eps"))
c5, c6, c7 = st.columns(3)
k = c5.select_slider("bowl steepness k", options=[0.01, 0.1, 1.0, 10.0, 100.0], **setting("adam_k"))
theta0 = c6.number_input("start θ₀", min_value=-20.0, max_value=20.0, step=0.5, **setting("adam_theta0"))
steps = c7.slider("steps", 3, 40, **setting("adam_steps"))

settings = AdamSettings(lr=lr, beta1=beta1, beta2=beta2, eps=eps)
bowl = Bowl(k=k, c=3.0)
rows = adam_by_hand(bowl, theta0, settings, steps)
check = check_against_torch(rows, torch_adam_thetas(bowl, theta0, settings, steps))
st.caption(f"Loss: ${bowl.latex()}$, minimum at θ = {bowl.c:g}")
table = pd.DataFrame([{"t": r.t, "θ before": r.theta, "gₜ": r.grad, "mₜ": r.m, "vₜ": r.v, "m̂ₜ": r.m_hat,
                       "v̂ₜ": r.v_hat, "step α·m̂/(√v̂+ε)": r.update, "θ after": r.theta_next,
                       "L(θ after)": r.loss_next} for r in rows])
st.dataframe(table.style.format({c: "{:.6g}" for c in table.columns if c != "t"}), hide_index=True,
             width="stretch")
verdict = "yes" if check.matches else "NO"
(st.success if check.matches else st.error)(
    f"Hand-written table matches `torch.optim.Adam` (float64, same settings): **{verdict}**, "
    f"largest difference in θ over {steps} steps: {check.max_difference:.1e}")
show_chart(adam_path_figure(bowl, rows), width="stretch", key="t08_adam_path")
scale_checked = bool(st.session_state.get("adam_checked"))  # the last question on the page asks why
if scale_checked:
    st.caption(f"Step 1 moved θ by {abs(rows[0].update):.4g} with α = {lr:g}: at t = 1, m̂ = g and v̂ = g², "
               "so the step is α·g/(|g| + ε), about α in the direction of −g.")
else:
    st.caption("What sets the size of step 1? Keep the table in mind: the last question on this page asks it.")

st.header("Why the bias correction? Predict, then check")
st.markdown("m and v start at 0, so after one step they are only (1 − β₁)·g and (1 − β₂)·g². The table above "
            "divides them by 1 − βᵗ. Predict what happens if you leave that out.")
bc_options = bias_correction_options(settings)
bc_steps = min(steps, 10)
bc_runs: dict = {}  # the hand runs both ways, made only once the question is checked


def _bc_answer() -> tuple[str, str]:
    comparison = bc_runs["bowl"] = compare_bias_correction(bowl, theta0, settings, bc_steps)
    ratio = comparison.without_correction[0] / lr
    truth = closest_option(bc_options, ratio)
    return truth, (f"without the correction step 1 moved θ by {comparison.without_correction[0]:.4g} = "
                   f"{ratio:.4g}·α, so the answer is **{truth}**. m/√v = (1 − β₁)g/(√(1 − β₂)·|g|) = "
                   f"{uncorrected_first_step_ratio(settings):.4g}·sign(g): the too-small v shrinks the denominator "
                   "more than the too-small m shrinks the numerator.")


bc_revealed = predict_then_check(f"Turn the bias correction off, keep β₁ = {beta1:g}, β₂ = {beta2:g} and the bowl "
                                 "above. How long is Adam's **first** step?", [t for t, _ in bc_options], "adam_bc",
                                 _bc_answer) is not None
if bc_revealed:
    comparison = bc_runs["bowl"]
    st.dataframe(pd.DataFrame({"t": list(range(1, bc_steps + 1)),
                               "|step| with correction": comparison.with_correction,
                               "|step| without correction": comparison.without_correction})
                 .style.format({"|step| with correction": "{:.4g}", "|step| without correction": "{:.4g}"}),
                 hide_index=True, width="stretch")
    st.caption(f"The same bowl and settings, by hand, both ways. After {bc_steps} steps θ is "
               f"{comparison.final_with:.4g} with the correction and {comparison.final_without:.4g} without "
               f"(minimum at {bowl.c:g}). As t grows, 1 − βᵗ tends to 1 and the two rules agree.")

st.subheader("The same switch on a real run")
st.markdown("`torch.optim.Adam` always corrects, so here Adam is written out by hand with the correction as a switch "
            "(with it on, it moves SimpleCNN's weights as torch's does, to within float rounding). A fresh SimpleCNN "
            "trains twice on the same MNIST batches from the same start: once with the correction, once without, "
            "with torch's β₁ = 0.9 and β₂ = 0.999. The chart shows the loss and how far the weights move each step.")
real_run_section(bc_revealed)

st.header("Where Adam acts in SimpleCNN")
model, label = lesson_model()
work = copy.deepcopy(model).cpu().float()
n_params = work.num_parameters()
ds = dataset()
defaults = torch.optim.Adam([torch.zeros(1, requires_grad=True)]).defaults
st.markdown(
    f"The trainer builds `torch.optim.Adam` over all **{n_params:,}** parameters of *{label}*, so "
    f"Adam stores {2 * n_params:,} extra numbers (one m and one v each). The Train page starts with "
    f"α = {TrainConfig().learning_rate:g}, and torch's defaults are β₁ = {defaults['betas'][0]}, "
    f"β₂ = {defaults['betas'][1]}, ε = {defaults['eps']:g}.")
st.markdown(f"Here is **Adam's first step on the real `fc2.bias`** (10 numbers), after one batch of 64 "
            f"training images with α = {lr:g} and your β₁, β₂, ε:")
images = to_float(ds.train_images[:64])
real = first_step_on_model(work, images, ds.train_labels[:64], settings, "fc2.bias")
real_table = pd.DataFrame([{"class": ds.classes[s.index], "gradient g₁": s.grad, "m₁": s.m, "v₁": s.v,
                            "step by hand": s.update_by_hand, "step by torch": s.update_by_torch,
                            "step without bias correction": s.update_uncorrected} for s in real])
if not bc_revealed:  # that column answers the question above: shown once it is checked
    real_table = real_table.drop(columns=["step without bias correction"])
st.dataframe(real_table.style.format("{:.3g}", subset=[c for c in real_table.columns if c != "class"]),
             hide_index=True, width="stretch")
grads = [abs(s.grad) for s in real if s.grad != 0]
if grads:
    if scale_checked:  # says how the last question comes out: shown once it is checked
        st.caption(f"The gradients span a factor of {max(grads) / min(grads):,.0f} in size, yet every step is "
                   f"close to α = {lr:g} (from {min(abs(s.update_by_torch) for s in real):.3g} to "
                   f"{max(abs(s.update_by_torch) for s in real):.3g}).")
nav.link(nav.TRAIN, "Train a model with Adam (or compare it with SGD) on the Train page", icon=":material/model_training:")

st.header("Predict, then check")
options = ["about 100 times larger", "about the same size", "about 100 times smaller"]


def _scale_answer() -> tuple[str, str]:
    sizes = first_step_sizes((1.0, 100.0), theta0 if theta0 != 3.0 else 0.0, settings)
    ratio = sizes[100.0] / sizes[1.0]
    truth = options[0] if ratio > 3 else options[2] if ratio < 1 / 3 else options[1]
    return truth, (f"torch.optim.Adam moved θ by {sizes[1.0]:.6g} for k = 1 and by {sizes[100.0]:.6g} for k = 100 "
                   f"(ratio {ratio:.4g}), so the answer is **{truth}**. The gradient is 100× larger, but so is √v̂, "
                   "and the two cancel.")


predict_then_check(f"Make the bowl 100 times steeper (k = 100 instead of k = 1), with your α = {lr:g}. "
                   "How long is Adam's first step now?", options, "adam", _scale_answer)
