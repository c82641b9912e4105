"""Lesson 6: a loss turns "how wrong was the prediction" into one number whose gradient says how to fix it."""
from __future__ import annotations


import numpy as np
import pandas as pd
import streamlit as st
import torch
import torch.nn.functional as F

from dashboard.charts import show_chart
from dashboard import nav, state
from dashboard.lesson_settings import lesson_link, setting
from simplecnn.data import DataError
from simplecnn.evaluation import predict_logits
from simplecnn.lessons import activations_losses as al
from simplecnn.lessons import figures_a as fig


def vector(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:+.3f}" for v in np.ravel(values)) + "]"


st.title("6 · Loss functions")
lesson_link("06")
st.markdown(
    "A **loss** compares what the model predicted with what it should have predicted and condenses the "
    "difference into a single number: 0 for perfect, larger for worse. Training never looks at accuracy "
    "directly; it follows the **gradient** of the loss, the direction in which each prediction should "
    "move to make the loss smaller.\n\n"
    "Which loss fits depends on the task. For numbers (regression) you measure distances: squared "
    "(MSE, harsh on big misses) or absolute (MAE). Mean Bias Error keeps the sign, so it tells you "
    "whether a model over- or under-shoots on average, but it cannot train one alone: misses in both "
    "directions cancel. For classes you score the class scores: the hinge loss wants the true class to "
    "win by a margin of 1, cross-entropy wants a high probability for the true class.")
st.latex(r"\mathrm{MSE} = \frac{1}{N}\sum_i (y_i - t_i)^2 \quad \mathrm{MAE} = \frac{1}{N}\sum_i |y_i - t_i| "
         r"\quad \mathrm{MBE} = \frac{1}{N}\sum_i (y_i - t_i)")
st.latex(r"H = \sum_{j \ne y} \max(0,\; s_j - s_y + 1) \qquad "
         r"\mathrm{CE} = -\sum_i t_i \log \hat{y}_i = -\log \mathrm{softmax}(s)_y")

# -- regression losses ---------------------------------------------------------------------------------
st.header("Regression: predictions against targets")
n = 4
start_pred, start_target = np.linspace(0.5, 2.0, n), np.linspace(1.0, 1.0, n)
cols = st.columns(n)
preds = np.array([cols[i].slider(f"prediction y{i}", -3.0, 3.0, float(start_pred[i]), 0.1, key=f"t06_y{i}")
                  for i in range(n)])
targets = np.array([cols[i].slider(f"target t{i}", -3.0, 3.0, float(start_target[i]), 0.1, key=f"t06_t{i}")
                    for i in range(n)])
rows = []
for name in al.REGRESSION_LOSSES:
    value, grad = al.loss_and_gradient(name, preds, targets)
    rows.append({"loss": name, "value": value, "gradient dL/dy (autograd)": vector(grad)})
st.dataframe(pd.DataFrame(rows), hide_index=True)
st.caption("MSE's gradient grows with the miss (2·(y − t)/N); MAE's is only its sign (±1/N); MBE's is the "
           "same 1/N everywhere, whatever the prediction: it gives no direction towards the targets.")

# -- classification losses -----------------------------------------------------------------------------
st.header("Classification: class scores and the true class")
classes = 4
start_scores = np.linspace(1.5, -1.0, classes)
cols = st.columns(classes + 1)
scores = np.array([cols[i].slider(f"score s{i}", -5.0, 5.0, float(start_scores[i]), 0.1, key=f"t06_s{i}")
                   for i in range(classes)])
true_class = cols[-1].selectbox("True class y", range(classes), format_func=lambda k: f"class {k}",
                                **setting("t06_true"))
probs = al.softmax_with_temperature(scores)
c1, c2 = st.columns([3, 2])
with c1:
    rows = []
    for name in al.CLASSIFICATION_LOSSES:
        value, grad = al.loss_and_gradient(name, scores[None], [true_class])
        rows.append({"loss": name, "value": value, "gradient dL/ds (autograd)": vector(grad)})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.dataframe(pd.DataFrame(al.hinge_terms(scores, true_class)), hide_index=True)
    torch_hinge = float(F.multi_margin_loss(torch.tensor(scores[None]), torch.tensor([true_class])))
    st.caption(f"torch's `F.multi_margin_loss` gives {torch_hinge:.4f}: it divides the same sum by the number of "
               f"classes ({classes}), so {classes} × {torch_hinge:.4f} = {classes * torch_hinge:.4f}. "
               f"`F.cross_entropy` gives {float(F.cross_entropy(torch.tensor(scores[None]), torch.tensor([true_class]))):.4f}.")
show_chart(fig.probability_bars([f"class {k}" for k in range(classes)], probs, highlight=true_class,
                                     title="softmax(s)"), key="t06_probs", where=c2)

# -- cross-entropy in two halves -------------------------------------------------------------------
st.header("Cross-entropy = log-softmax, then NLL")
halves = al.log_softmax_then_nll(scores, true_class)
st.markdown(
    "PyTorch splits cross-entropy in two. `F.log_softmax` turns the scores into log-probabilities, "
    "$z_j - \\log\\sum_k e^{z_k}$ (subtracting one number from every score), and `F.nll_loss` "
    "(negative log-likelihood) just picks the true class's entry and flips its sign. "
    "`F.cross_entropy` is the two in one call, which is why SimpleCNN outputs raw logits and has no softmax layer.")
st.latex(rf"\log\textstyle\sum_k e^{{s_k}} = {halves['logsumexp']:.4f} \qquad "
         rf"\mathrm{{NLL}} = -\log\mathrm{{softmax}}(s)_{{{true_class}}} = "
         rf"-({halves['log_softmax'][true_class]:.4f}) = {halves['nll']:.4f}")
torch_log_probs = F.log_softmax(torch.tensor(scores), dim=0)
torch_nll = float(F.nll_loss(torch_log_probs[None], torch.tensor([true_class])))
st.dataframe(pd.DataFrame({"class j": range(classes), "score s_j": scores, "s_j − logsumexp (by hand)": halves["log_softmax"],
                           "F.log_softmax": torch_log_probs.numpy()}).style.format(precision=4), hide_index=True)
st.caption(f"`F.nll_loss(F.log_softmax(s))` = {torch_nll:.4f}, `F.cross_entropy(s)` = "
           f"{float(F.cross_entropy(torch.tensor(scores[None]), torch.tensor([true_class]))):.4f}, by hand {halves['nll']:.4f}.")

# -- why cross-entropy -------------------------------------------------------------------------------
st.header("Why cross-entropy, and not MSE, for classes")
curve_classes = 10  # as many as SimpleCNN has digits
grid = np.geomspace(1e-4, 0.999, 400)
curve = al.logit_gradient_curves(grid, num_classes=curve_classes)
p_now = float(np.clip(probs[true_class], grid[0], grid[-1]))
marker = al.logit_gradient_curves([p_now], num_classes=curve_classes)
low = al.logit_gradient_curves([0.001], num_classes=curve_classes)
st.markdown(
    f"Take {curve_classes} classes, give the true class probability $p$ and spread the rest evenly. "
    "Cross-entropy's loss $-\\log p$ grows without limit as $p \\to 0$, but training does not follow the "
    "loss's slope in $p$: it follows the gradient with respect to the **logits** $z$, the numbers the network "
    "actually outputs. For cross-entropy that gradient is $\\partial L / \\partial z = p - \\text{onehot}$, "
    "so on the true class it is $p - 1$: never larger than 1 in size, and close to its full size "
    "whenever the model is wrong.\n\n"
    "MSE on the softmax outputs has to pass through softmax's own slope, which vanishes when the true class's "
    "probability is tiny. So the more confidently wrong the model is, the *weaker* MSE pushes: at "
    f"$p = 0.001$ the true logit's gradient is **{low['ce_grad'][0]:+.4f}** with cross-entropy and "
    f"**{low['mse_grad'][0]:+.6f}** with MSE. That, not the size of the loss, is why classifiers train "
    "with cross-entropy.")
st.latex(r"\frac{\partial\,\mathrm{CE}}{\partial z_y} = p - 1 \qquad "
         r"\frac{\partial\,\mathrm{MSE}}{\partial z_y} = \frac{2}{C}\sum_j (q_j - t_j)\, q_j\,(\delta_{jy} - p)"
         r"\;\xrightarrow{\;p \to 0\;}\; 0")
v1, v2 = st.columns(2)
show_chart(fig.curves(curve["p"], {"cross-entropy": curve["ce"], "MSE": curve["mse"]}, "Loss",
                           x_title="p (probability of the true class)", y_range=(0, 6.5), log_x=True,
                           markers={f"your p = {p_now:.2f}": (p_now, float(marker["ce"][0]))}), key="t06_curve", where=v1)
show_chart(fig.curves(curve["p"], {"cross-entropy": curve["ce_grad"], "MSE": curve["mse_grad"]},
                           "Gradient on the true logit, dL/dz_y (autograd)", x_title="p (probability of the true class)",
                           y_range=(-1.05, 0.05), log_x=True,
                           markers={f"your p = {p_now:.2f}": (p_now, float(marker["ce_grad"][0]))}), key="t06_slope", where=v2)
st.caption("Logarithmic p axis. Cross-entropy's push on the true logit stays near −1 for every wrong answer; MSE's "
           "is small everywhere and fades to 0 exactly where the model is most wrong.")

# -- the live model ------------------------------------------------------------------------------------
st.header("Where this happens in SimpleCNN")
model, model_label = state.active_model()
if model is None:
    st.info(model_label)
else:
    try:
        ds = state.dataset()
    except DataError as exc:
        st.error(str(exc))
        st.stop()
    count = st.slider("Test images to score", 100, 2000, step=100, **setting("t06_count"))
    logits = predict_logits(model, ds.test_images[:count])  # (count, 10)
    labels = ds.test_labels[:count]
    worst = al.largest_losses(logits, labels, 8)
    st.markdown(f"SimpleCNN trains with cross-entropy on its logits. On the first {count} test images "
                f"{model_label} has a mean loss of **{worst['mean_loss']:.4f}** "
                f"(`F.cross_entropy`: {float(F.cross_entropy(logits, labels)):.4f}) and makes "
                f"**{worst['mistakes_in_set']}** mistakes. These are the {len(worst['index'])} images with the "
                f"largest loss: {al.describe_largest_losses(worst)}")
    st.dataframe(pd.DataFrame({"test image": worst["index"], "label": [ds.classes[int(k)] for k in worst["label"]],
                               "predicted": [ds.classes[int(k)] for k in worst["predicted"]],
                               "p(true class)": worst["p_true"], "loss": worst["loss"]}),
                 hide_index=True)
    st.caption(f"These {len(worst['index'])} images ({len(worst['index']) / count:.1%} of the set) carry "
               f"{worst['share']:.0%} of the total loss. Score more images to meet real mistakes: each one costs "
               "−ln p(true class), and a mistake has p(true class) ≤ 0.5, so it costs at least ln 2 ≈ 0.69.")
nav.link(nav.INSIDE, "See it in the live model", icon=":material/biotech:")

# -- predict, then check ---------------------------------------------------------------------------
st.header("Predict, then check")
good, bad = 0.9, 0.01  # p(true class) of two images in one batch
options = {"A's logits are pushed about 10 times harder": 0.1, "both about the same": 1.0,
           "B's logits are pushed about 10 times harder": 10.0, "B's logits are pushed about 100 times harder": 100.0}
guess = st.radio(f"Two images in one batch. The model gives image A's true class p = {good} and image B's "
                 f"p = {bad} (a confident mistake). After `loss.backward()`, compare the lengths of the gradients "
                 "with respect to each image's logits (what the layers below receive).",
                 list(options), index=None, key="t06_guess")
if st.button("Check by running it", key="t06_check"):
    if guess is None:
        st.warning("Pick an answer first, then check.")
    else:
        g_good, g_bad = al.logit_gradient_length(good, 10), al.logit_gradient_length(bad, 10)
        ratio = g_bad / g_good
        truth = min(options, key=lambda k: abs(np.log(options[k]) - np.log(ratio)))
        text = (f"Autograd on `F.cross_entropy` (10 classes): |∂L/∂z| is {g_bad:.3f} for B and {g_good:.3f} for A, "
                f"B/A = {ratio:.1f}. The gradient is softmax − onehot, so it never exceeds √2: B is pushed harder, "
                f"but not 1/p harder (that would be {good / bad:.0f}×).")
        (st.success if guess == truth else st.error)(("Right. " if guess == truth else "Not quite. ") + text)
