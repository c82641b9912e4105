"""Lesson 6: a loss turns "how wrong was the prediction" into one number whose gradient says how to fix it."""
from __future__ import annotations


import numpy as np
import pandas as pd
import streamlit as st
import torch
import torch.nn.functional as F

from dashboard import nav, state
from simplecnn.data import DataError
from simplecnn.evaluation import predict_logits
from simplecnn.lessons import activations_losses as al
from simplecnn.lessons import figures_a as fig


def vector(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:+.3f}" for v in np.ravel(values)) + "]"


st.title("6 · Loss functions")
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
true_class = cols[-1].selectbox("True class y", range(classes), index=1, format_func=lambda k: f"class {k}",
                                key="t06_true")
probs = al.softmax_with_temperature(scores)
margins = np.maximum(0.0, scores - scores[true_class] + 1.0)
c1, c2 = st.columns([3, 2])
with c1:
    rows = []
    for name in al.CLASSIFICATION_LOSSES:
        value, grad = al.loss_and_gradient(name, scores[None], [true_class])
        rows.append({"loss": name, "value": value, "gradient dL/ds (autograd)": vector(grad)})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    terms = pd.DataFrame({"class j": range(classes), "s_j - s_y + 1": scores - scores[true_class] + 1.0,
                          "hinge term max(0, ·)": [m if j != true_class else np.nan for j, m in enumerate(margins)],
                          "softmax probability": probs})
    st.dataframe(terms.style.format(precision=4, na_rep="— (j = y)"), hide_index=True)
    torch_hinge = float(F.multi_margin_loss(torch.tensor(scores[None]), torch.tensor([true_class])))
    st.caption(f"torch's `F.multi_margin_loss` gives {torch_hinge:.4f}: it divides the same sum by the number of "
               f"classes ({classes}), so {classes} × {torch_hinge:.4f} = {classes * torch_hinge:.4f}. "
               f"`F.cross_entropy` gives {float(F.cross_entropy(torch.tensor(scores[None]), torch.tensor([true_class]))):.4f}.")
c2.plotly_chart(fig.probability_bars([f"class {k}" for k in range(classes)], probs, highlight=true_class,
                                     title="softmax(s)"), key="t06_probs")

# -- why cross-entropy -------------------------------------------------------------------------------
st.header("Why cross-entropy punishes confident mistakes")
curve_classes = 10  # as many as SimpleCNN has digits
curve = al.true_class_probability_curves(np.linspace(0.002, 1.0, 500), num_classes=curve_classes)
p_now = float(probs[true_class])
marker = al.true_class_probability_curves([p_now], num_classes=curve_classes)
st.markdown(
    f"Take {curve_classes} classes, give the true class probability $p$ and spread the rest evenly. Cross-entropy is "
    "$-\\log p$: as $p \\to 0$ it grows without limit, and so does its slope $-1/p$. A model that is "
    "confidently wrong gets a huge loss and a strong push. MSE on the same probabilities can never exceed "
    "a small bound and its slope stays small, so a confident mistake barely moves it.")
v1, v2 = st.columns(2)
v1.plotly_chart(fig.curves(curve["p"], {"cross-entropy": curve["ce"], "MSE": curve["mse"]}, "Loss",
                           x_title="p (probability of the true class)", y_range=(0, 6.5),
                           markers={f"your p = {p_now:.2f}": (p_now, float(marker["ce"][0]))}), key="t06_curve")
v2.plotly_chart(fig.curves(curve["p"], {"cross-entropy": curve["ce_slope"], "MSE": curve["mse_slope"]},
                           "Slope dL/dp (autograd)", x_title="p (probability of the true class)",
                           y_range=(-25, 1)), key="t06_slope")

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
    count = st.slider("Test images to score", 100, 2000, 500, 100, key="t06_count")
    logits = predict_logits(model, ds.test_images[:count])  # (count, 10)
    labels = ds.test_labels[:count]
    per_image = al.cross_entropy(logits.double(), labels, reduction="none")  # (count,)
    p_true = torch.softmax(logits.double(), 1).gather(1, labels[:, None])[:, 0]
    worst = torch.argsort(per_image, descending=True)[:8]
    st.markdown(f"SimpleCNN trains with cross-entropy on its logits. On the first {count} test images "
                f"{model_label} has a mean loss of **{float(per_image.mean()):.4f}** "
                f"(`F.cross_entropy`: {float(F.cross_entropy(logits, labels)):.4f}). Confident mistakes weigh "
                "heavily in that mean; these are the images with the largest loss:")
    st.dataframe(pd.DataFrame({"test image": worst.numpy(), "label": [ds.classes[int(labels[i])] for i in worst],
                               "predicted": [ds.classes[int(logits[i].argmax())] for i in worst],
                               "p(true class)": p_true[worst].numpy(), "loss": per_image[worst].numpy()}),
                 hide_index=True)
    share = float(per_image[worst].sum() / per_image.sum())
    st.caption(f"These {len(worst)} images ({len(worst) / count:.1%} of the set) carry {share:.0%} of the total loss.")
nav.link(nav.INSIDE, "See it in the live model", icon=":material/biotech:")

# -- predict, then check ---------------------------------------------------------------------------
st.header("Predict, then check")
p_quiz = 0.01
options = {"about p": p_quiz, "about 1 − p": 1 - p_quiz, "about −ln p": -np.log(p_quiz), "about 1 / p": 1 / p_quiz}
guess = st.radio(f"A model gives the true class probability p = {p_quiz}. What cross-entropy loss does it get?",
                 list(options), index=None, format_func=lambda k: f"{options[k]:.2f}", key="t06_guess")
if st.button("Check by running it", key="t06_check"):
    if guess is None:
        st.warning("Pick an answer first, then check.")
    else:
        logits = torch.log(torch.tensor([[p_quiz, 1 - p_quiz]]))  # softmax gives back [p, 1 - p]
        loss = float(F.cross_entropy(logits, torch.tensor([0])))
        truth = min(options, key=lambda k: abs(options[k] - loss))
        text = f"F.cross_entropy says {loss:.4f}: the loss is −ln p, and it keeps growing as p shrinks."
        (st.success if guess == truth else st.error)(("Right. " if guess == truth else "Not quite. ") + text)
