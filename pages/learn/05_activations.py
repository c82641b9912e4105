"""Lesson 5: activation functions bend the straight lines of layers; softmax turns scores into probabilities."""
from __future__ import annotations


import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard.charts import show_chart
from dashboard import nav, state
from dashboard.lesson_settings import lesson_link, setting
from simplecnn.data import DataError
from simplecnn.inspection import activations
from simplecnn.lessons import activations_losses as al
from simplecnn.lessons import figures_a as fig
from simplecnn.lessons import tensors_fc as tf

st.title("5 · Activation functions and softmax")
lesson_link("05")
st.markdown(
    "Convolutions and fully-connected layers only multiply and add, and a stack of such steps is still "
    "one big multiply-and-add: it could only draw straight boundaries. An **activation function**, applied "
    "to every number a layer outputs, bends that line. With it, two layers are already enough *in principle* (the universal approximation "
    "theorem): one hidden layer with a non-polynomial activation such as ReLU, sigmoid or tanh can come as close "
    "as you like to any continuous function on a bounded range of inputs, **provided it has enough hidden "
    "neurons**. The theorem does not say how many that is (it can be enormous), nor that training will find "
    "those weights; in practice deeper networks need far fewer neurons.\n\n"
    "Training needs each activation's **derivative** too: backpropagation multiplies by it at every "
    "layer. Where the derivative is close to zero (the flat tails of sigmoid and tanh, the negative side "
    "of ReLU) the learning signal fades. The derivative curves below come from PyTorch's autograd, the "
    "same machinery that trains SimpleCNN.")
st.latex(r"\sigma(x) = \frac{1}{1 + e^{-x}} \quad \tanh(x) = \frac{e^x - e^{-x}}{e^x + e^{-x}} \quad "
         r"\mathrm{ReLU}(x) = \max(0, x) \quad \mathrm{LReLU}(x) = \begin{cases} a x & x \le 0 \\ x & x > 0\end{cases}")

# -- the four activations ---------------------------------------------------------------------------
st.header("Curves and their derivatives")
c1, c2, c3 = st.columns(3)
chosen = c1.multiselect("Activations", al.ACTIVATIONS, default=list(al.ACTIVATIONS), key="t05_chosen")
slope = c2.slider("Leaky ReLU slope a", 0.0, 0.5, step=0.01, **setting("t05_slope"))
span = c3.slider("x range ±", 1.0, 10.0, step=0.5, **setting("t05_span"))
xs = np.linspace(-span, span, 401)
values, slopes = {}, {}
for name in chosen:
    values[name], slopes[name] = al.activation_and_derivative(name, xs, slope)
p1, p2 = st.columns(2)
show_chart(fig.curves(xs, values, "h(x)", y_title="h(x)"), key="t05_values", where=p1)
show_chart(fig.curves(xs, slopes, "h′(x) by autograd", y_title="h′(x)"), key="t05_slopes", where=p2)
probe = st.slider("Look at one point x", -10.0, 10.0, step=0.1, **setting("t05_probe"))
probe_rows = []
for name in chosen:
    y, dy = al.activation_and_derivative(name, [probe], slope)
    probe_rows.append({"activation": name, "h(x)": float(y[0]), "h′(x) (autograd)": float(dy[0])})
st.dataframe(pd.DataFrame(probe_rows), hide_index=True)

# -- softmax ---------------------------------------------------------------------------------------
st.header("Softmax: from scores to probabilities")
st.markdown(
    "The last layer outputs one raw score (a *logit*) per class. **Softmax** exponentiates each score, "
    "which makes it positive, and divides by the total, so the results add up to 1. A **temperature** "
    "$T$ divides the scores first: a high $T$ flattens the distribution, a low $T$ makes the largest "
    "score take almost everything.")
st.latex(r"\mathrm{softmax}(z)_i = \frac{e^{z_i / T}}{\sum_j e^{z_j / T}}")
n1, n2 = st.columns(2)
n_classes = n1.slider("Number of classes", 2, 6, **setting("t05_nclasses"))
temperature = n2.slider("Temperature T", 0.1, 5.0, step=0.1, **setting("t05_T"))
default_logits = np.linspace(2.0, -1.0, n_classes)
cols = st.columns(n_classes)
logits = np.array([cols[i].number_input(f"z{i}", -20.0, 20.0, float(round(default_logits[i], 2)), 0.5,
                                        key=f"t05_z{i}") for i in range(n_classes)])
probs = al.softmax_with_temperature(logits, temperature)
s1, s2 = st.columns([3, 2])
show_chart(fig.probability_bars([f"z{i}" for i in range(n_classes)], probs,
                                     highlight=int(np.argmax(probs))), key="t05_softmax", where=s1)
with s2:
    exps = np.exp(logits / temperature)
    st.dataframe(pd.DataFrame({"z": logits, "z / T": logits / temperature, "exp(z / T)": exps,
                               "probability": probs}), hide_index=True)
    st.caption(f"Sum of exp = {exps.sum():.4f}; probabilities add up to {probs.sum():.4f}. "
               f"torch.softmax(z / T) differs by at most "
               f"{np.abs(torch.softmax(torch.tensor(logits / temperature), 0).numpy() - probs).max():.1e}.")

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
    index = int(st.number_input(f"Test image (0–{len(ds.test_labels) - 1})", 0, len(ds.test_labels) - 1, 0,
                                key="t05_index"))
    image, label = tf.digit(ds, index)
    acts = activations(model, image)
    rows = [{"ReLU": name, "after": before, "values": int(acts[name].numel()),
             "set to 0": f"{float((acts[name] == 0).float().mean()):.0%}"}
            for name, before in (("relu1", "conv1 + batch1"), ("relu2", "conv2 + batch2"), ("relu3", "fc1"))]
    st.markdown(f"SimpleCNN uses ReLU after both convolution blocks and after fc1. For test image {index} "
                f"({model_label}), this is how much each ReLU switches off:")
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    model_probs = al.softmax_with_temperature(acts["logits"][0].numpy(), temperature)
    st.markdown(f"Softmax is not a layer of SimpleCNN (the loss applies it), but it turns the model's 10 logits "
                f"into the probabilities below, here at your temperature T = {temperature:g}:")
    show_chart(fig.probability_bars(ds.classes, model_probs, highlight=label, height=280), key="t05_model")
nav.link(nav.INSIDE, "See it in the live model", icon=":material/biotech:")

# -- predict, then check ---------------------------------------------------------------------------
st.header("Predict, then check")
shift = float(n_classes * 2.5)  # any constant works; this one is just big
options = ["They all get bigger", "They do not change at all", "Only the largest one grows",
           "They become equal"]
guess = st.radio(f"Add {shift:g} to every one of your logits above. What happens to the softmax probabilities?",
                 options, index=None, key="t05_guess")
if st.button("Check by running it", key="t05_check"):
    if guess is None:
        st.warning("Pick an answer first, then check.")
    else:
        before = torch.softmax(torch.tensor(logits) / temperature, 0)
        after = torch.softmax((torch.tensor(logits) + shift) / temperature, 0)
        change = float((after - before).abs().max())
        truth = options[1] if change < 1e-9 else options[0]
        message = (f"torch.softmax before: {np.round(before.numpy(), 4).tolist()}, after: "
                   f"{np.round(after.numpy(), 4).tolist()} (largest change {change:.1e}). Adding a constant "
                   "multiplies every exponential by the same factor, which cancels in the division.")
        (st.success if guess == truth else st.error)(("Right. " if guess == truth else "Not quite. ") + message)
