"""Lesson 7: gradient descent and its variants, racing over 2-D loss surfaces with torch's own optimizers."""
from __future__ import annotations


import numpy as np
import pandas as pd
import streamlit as st

from dashboard.charts import show_chart
from dashboard import nav, state
from dashboard.lesson_params import GD_RATES
from dashboard.lesson_settings import lesson_link, setting
from simplecnn.lessons import figures_a as fig
from simplecnn.lessons import optim_paths as op
from simplecnn.model import SimpleCNN
from simplecnn.training import TrainConfig, build_optimizer

LEARNING_RATES = list(GD_RATES)  # 1e-4 ... 1: 1, 1.5, 2, 3, 5, 7 in every decade


@st.cache_data(show_spinner="Running the optimizers…", max_entries=64)
def run_all(surface: str, start: tuple[float, float], lr: float, beta1: float, beta2: float, steps: int,
            noise: float, seed: int, adaptive_lr: float | None, momentum: float) -> dict[str, np.ndarray]:
    return op.all_paths(surface, start, lr, beta1, beta2, steps, noise, seed, adaptive_lr=adaptive_lr,
                        momentum=momentum)


def nearest(options: list[float], value: float) -> float:
    return min(options, key=lambda v: abs(np.log(v) - np.log(value)))


st.title("7 · Gradient descent and its variants")
lesson_link("07")
st.markdown(
    "Training means finding weights with a low loss. The gradient $\\nabla L$ points uphill, so "
    "**gradient descent** takes a small step the other way, again and again; the learning rate $\\eta$ "
    "sets the step size. Too small and it crawls, too large and it overshoots or blows up.\n\n"
    "The variants change how a step is made. **SGD** uses the gradient of a single example or small "
    "batch: cheap, but noisy. **Momentum** keeps a running velocity, so steps add up along a consistent "
    "direction and cancel across a zig-zag. **Adagrad** divides each coordinate's step by the root of the "
    "*sum of all* its past squared gradients: that sum only grows, so its steps only shrink, and with a "
    "small learning rate it can stop short of the minimum. **RMSProp** divides by a decaying average of "
    "*recent* squared gradients instead, so its steps do not fade away. Both even out steep and flat "
    "directions. **Adam** combines a momentum-like average of the gradients with RMSProp's scaling.\n\n"
    "Below, the \"weights\" are just two numbers (x, y) and the loss is a surface you can see. Every "
    "path is produced by the real `torch.optim` optimizer acting on a 2-element tensor.")
st.latex(r"\text{SGD: } w_{t+1} = w_t - \eta\, g_t \qquad "
         r"\text{Momentum (torch): } v_t = \beta\, v_{t-1} + g_t,\;\; w_{t+1} = w_t - \eta\, v_t")
# One rule per formula: side by side they were wider than the column (a scroll region a keyboard cannot reach).
st.latex(r"\text{Adagrad: } G_t = G_{t-1} + g_t^2,\;\; w_{t+1} = w_t - \frac{\eta\, g_t}{\sqrt{G_t} + \epsilon}")
st.latex(r"\text{RMSProp: } s_t = \beta_2 s_{t-1} + (1-\beta_2)\, g_t^2,\;\; "
         r"w_{t+1} = w_t - \frac{\eta\, g_t}{\sqrt{s_t} + \epsilon}")
st.latex(r"\text{Adam: } m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\;\; v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\;\;"
         r"w_{t+1} = w_t - \eta \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}")
st.caption("g_t is the gradient at step t; all squares and roots act coordinate by coordinate; G, s, v, m start at 0. "
           "These are the rules torch.optim follows (Adagrad without its lr_decay, RMSProp with alpha = β₂).")

# -- settings -------------------------------------------------------------------------------------------
surface_name = st.selectbox("Loss surface", list(op.SURFACES), **setting("t07_surface"))
surface = op.SURFACES[surface_name]
st.caption(surface.note)
a1, a2, a3, a4 = st.columns(4)
lr = a1.select_slider("Learning rate η", LEARNING_RATES,
                      **setting(f"t07_lr_{surface_name}", nearest(LEARNING_RATES, surface.lr)))
beta1 = a2.slider("β₁ (Adam)", 0.0, 0.99, step=0.01, **setting("t07_b1"))
beta2 = a3.slider("β₂ (RMSProp, Adam)", 0.5, 0.999, step=0.001, format="%.3f", **setting("t07_b2"))
steps = a4.slider("Steps", 10, 500, step=10, **setting("t07_steps"))
b1, b2, b3, b4, b5 = st.columns(5)
momentum = b5.slider("β (Momentum)", 0.0, 0.99, step=0.01, **setting("t07_mom"))
noise = b1.slider("SGD gradient noise (std)", 0.0, 5.0, step=0.1, **setting("t07_noise"))
seed = int(b2.number_input("Noise seed", 0, 10_000, **setting("t07_seed")))
start_x = b3.slider("Start x", float(surface.x_range[0]), float(surface.x_range[1]),
                    **setting(f"t07_x_{surface_name}", float(surface.start[0])))
start_y = b4.slider("Start y", float(surface.y_range[0]), float(surface.y_range[1]),
                    **setting(f"t07_y_{surface_name}", float(surface.start[1])))
own_rate = st.checkbox("Give Adagrad, RMSProp and Adam their own learning rate", **setting("t07_own"))
adaptive_lr = (st.select_slider("Learning rate of the adaptive methods", LEARNING_RATES, **setting("t07_alr"))
               if own_rate else None)
show = st.multiselect("Paths drawn", list(op.OPTIMIZERS), **setting("t07_show"),
                      help="Compare a few methods at a time, e.g. Batch GD against Momentum.")
if not show:
    st.caption("No method picked, so all of them are drawn.")
    show = list(op.OPTIMIZERS)

every_path = run_all(surface_name, (start_x, start_y), lr, beta1, beta2, steps, noise, seed, adaptive_lr, momentum)
paths = {name: path for name, path in every_path.items() if name in show}  # (steps + 1, 2) each, those picked
escape = op.leaves_window(surface, every_path["Momentum"])
st.caption(f"Momentum has its own β, separate from Adam's β₁: torch adds whole gradients into its velocity "
           f"(no 1 − β factor), so along a steady slope its steps grow to η/(1 − β) = {lr:g}/(1 − {momentum:g}) = "
           f"{lr / (1 - momentum):.3g}, {1 / (1 - momentum):.3g} times plain gradient descent's. "
           + (f"With these settings its path leaves the drawn window at step {escape}." if escape is not None
              else "With these settings its path stays inside the drawn window."))
shown = st.slider("Step through the run", 0, steps, steps, key="t07_step")
xs, ys, z = op.surface_grid(surface, 150)
show_chart(fig.optimizer_contour(xs, ys, z, paths, shown, surface.log_levels, surface.minima),
                key="t07_contour")

losses = {name: op.loss_along(surface, path) for name, path in paths.items()}
rows = op.final_losses(surface, paths)
for row in rows:
    row[f"loss at step {shown}"] = float(losses[row["optimizer"]][shown])
left, right = st.columns([3, 2])
floor, best_possible = 1e-12, op.lowest_loss(surface)
gaps = {k: np.maximum(v - best_possible, floor) for k, v in losses.items()}  # distance above the minimum
show_chart(fig.curves(np.arange(steps + 1), gaps, "Loss above the minimum, L − L_min", x_title="step",
                             y_title="L − L_min", height=380, log_y=True, colours=fig.OPTIMIZER_COLOURS),
                  key="t07_losses", where=left)
left.caption(f"Logarithmic axis (L_min = {best_possible:g}): a straight downward line means the loss gap shrinks "
             f"by a constant factor per step. Gaps below {floor:g} are drawn at {floor:g}.")
short = op.short_of_minimum(surface, paths)
if short:
    st.markdown(f"After {steps} steps, **not** within 0.01 of the lowest loss: " + ", ".join(
        f"{name} ({'blew up' if np.isinf(gap) else f'{gap:.3g} above'})" for name, gap in short.items()) + ".")
else:
    st.markdown(f"After {steps} steps every method is within 0.01 of the lowest loss.")
right.dataframe(pd.DataFrame(rows)[["optimizer", f"loss at step {shown}", "final loss", "status"]]
                .style.format({f"loss at step {shown}": "{:.3g}", "final loss": "{:.3g}"}), hide_index=True)

# -- the live model ------------------------------------------------------------------------------------
st.header("Where this happens in SimpleCNN")
model, model_label = state.active_model()
if model is None:
    st.info(f"{model_label} The optimizer below is built on a freshly made SimpleCNN instead.")
reference = model if model is not None else SimpleCNN()
config = TrainConfig()
optimizer = build_optimizer(config.optimizer, reference.parameters(), config.learning_rate)
group = optimizer.param_groups[0]
settings = ", ".join(f"{k} = {group[k]}" for k in ("lr", "betas", "eps", "weight_decay") if k in group)
st.markdown(f"SimpleCNN's trainer uses **{type(optimizer).__name__}** by default ({settings}). It moves "
            f"all {reference.num_parameters():,} parameters at once, in {len(group['params'])} tensors, each by the "
            "same rule you see drawn here for two numbers. Its loss surface has "
            f"{reference.num_parameters():,} dimensions instead of 2, so it cannot be drawn, only followed.")
nav.link(nav.INSIDE, "See it in the live model", icon=":material/biotech:")
nav.link(nav.TRAIN, "Train SimpleCNN with another optimizer", icon=":material/model_training:")

# -- predict, then check ---------------------------------------------------------------------------
st.header("Predict, then check")
quiz_lr, bowl = 0.7, op.SURFACES["Bowl"]
guess = st.radio(f"Plain gradient descent on the Bowl x² + y², starting at {bowl.start}, with learning rate "
                 f"η = {quiz_lr}. What does x do over the first 40 steps?", list(op.GD_BEHAVIOURS), index=None,
                 key="t07_guess")
if st.button("Check by running it", key="t07_check"):
    if guess is None:
        st.warning("Pick an answer first, then check.")
    else:
        path = op.optimizer_path("Batch GD", bowl, bowl.start, quiz_lr, steps=40)
        truth = op.gd_behaviour(path)
        xs = ", ".join(f"{v:+.3f}" for v in path[:5, 0])
        text = (f"torch.optim.SGD with lr = {quiz_lr} gives x = {xs}, …: it {truth}. The gradient of x² is 2x, so "
                f"each step multiplies x by 1 − 2η = {1 - 2 * quiz_lr:+.2f}. Set the Bowl's learning rate to "
                f"{quiz_lr} above to watch it.")
        (st.success if guess == truth else st.error)(("Right. " if guess == truth else "Not quite. ") + text)
