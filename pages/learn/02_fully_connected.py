"""Lesson 2: a fully-connected neuron is a weighted sum plus a bias, passed through an activation."""
from __future__ import annotations


import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard.charts import show_chart
from dashboard import nav, state
from dashboard.lesson_settings import lesson_link, setting
from simplecnn.data import DataError
from simplecnn.lessons import figures_a as fig
from simplecnn.lessons import tensors_fc as tf
from simplecnn.lessons.activations_losses import FC_ACTIVATIONS
from simplecnn.model import SimpleCNN

st.title("2 · The fully-connected layer")
lesson_link("02")
st.markdown(
    "A fully-connected (or *linear*) layer connects every input to every output. Each output is one "
    "**neuron**: it multiplies each input $x_i$ by its own weight $w_i$, adds the products up, adds "
    "a bias $w_0$ and passes the total $z$ through an activation function $h$. Training only ever "
    "changes the weights and biases.\n\n"
    "A layer with $n$ inputs and $m$ outputs is just $m$ such neurons side by side, so it holds an "
    "$m \\times n$ weight matrix and $m$ biases. PyTorch's `nn.Linear` computes all of them at once as "
    "$y = xW^T + b$.")
st.latex(r"y_j \;=\; h\Big(\sum_{i=1}^{n} w_{ji}\,x_i + w_{j0}\Big)")

# -- one neuron with sliders --------------------------------------------------------------------------
st.header("Build one neuron")
top = st.columns([1, 1, 1])
n_inputs = top[0].radio("Inputs", [3, 4], horizontal=True, **setting("t02_n"))
activation_name = top[1].selectbox("Activation h", FC_ACTIVATIONS, **setting("t02_act"))
slope = (top[2].slider("Leaky slope", 0.0, 0.5, step=0.01, **setting("t02_slope"))
         if activation_name == "Leaky ReLU" else 0.01)
defaults_x = np.linspace(1.0, -0.5, n_inputs)  # a spread of starting inputs
defaults_w = np.array([0.8, -0.4, 0.3, -0.6])[:n_inputs]  # mixed signs: some inputs excite, some inhibit
cols = st.columns(n_inputs + 1)
xs, ws = [], []
for i, c in enumerate(cols[:n_inputs]):
    xs.append(c.slider(f"x{i + 1}", -2.0, 2.0, float(round(defaults_x[i], 1)), 0.1, key=f"t02_x{i}"))
    ws.append(c.slider(f"w{i + 1}", -2.0, 2.0, float(round(defaults_w[i], 1)), 0.1, key=f"t02_w{i}"))
bias = cols[-1].slider("bias w0", -2.0, 2.0, step=0.1, **setting("t02_bias"))

steps = tf.neuron_steps(xs, ws, bias, activation_name, slope)
table = pd.DataFrame({"i": range(1, n_inputs + 1), "x_i": steps.inputs, "w_i": steps.weights,
                      "w_i · x_i": steps.products, "running sum": steps.running_sums})
left, right = st.columns([3, 2])
left.dataframe(table.style.format({c: "{:+.3f}" for c in table.columns if c != "i"}), hide_index=True)
with right:
    st.latex(rf"y = h(z) = \text{{{activation_name}}}({steps.pre_activation:.3f}) = {steps.output:.4f}")
    torch_y = tf.neuron_with_linear(xs, ws, bias, activation_name, slope)
    st.metric("torch.nn.Linear + activation gives", f"{torch_y:.4f}")
    st.caption(f"Difference from the hand computation: {abs(torch_y - steps.output):.1e}")
terms = " + ".join(f"({w:+.1f})({x:+.1f})" for w, x in zip(steps.weights, steps.inputs))
st.latex(rf"z = \sum_i w_i x_i + w_0 = {terms} + ({steps.bias:+.1f}) = {steps.pre_activation:.3f}")

# -- the live model ---------------------------------------------------------------------------------
st.header("Where this happens in SimpleCNN")
model, model_label = state.active_model()
if model is None:
    st.info(f"{model_label} Layer shapes below come from a freshly built, untrained SimpleCNN.")
reference = model if model is not None else SimpleCNN()
rows = tf.linear_layers(reference)
st.markdown("SimpleCNN ends in two fully-connected layers. Their shapes and parameter counts, read from the model:")
st.dataframe(pd.DataFrame([{**r, "weight shape": str(r["weight shape"]), "bias shape": str(r["bias shape"])}
                           for r in rows]), hide_index=True)
fc1 = rows[0]
st.caption(f"fc1: {fc1['outputs']} neurons × {fc1['inputs']} weights each + {fc1['biases']} biases = "
           f"{fc1['parameters']:,} parameters, {fc1['parameters'] / reference.num_parameters():.0%} of the "
           f"whole model's {reference.num_parameters():,}.")

if model is not None:
    try:
        ds = state.dataset()
    except DataError as exc:
        st.error(str(exc))
        st.stop()
    st.subheader("One real neuron: a logit of fc2")
    c1, c2 = st.columns(2)
    index = int(c1.number_input(f"Test image (0–{len(ds.test_labels) - 1})", 0, len(ds.test_labels) - 1, 0,
                                key="t02_index"))
    image, label = tf.digit(ds, index)
    cls = c2.selectbox("Output neuron (class)", range(len(ds.classes)), index=label,
                       format_func=lambda k: ds.classes[k], key="t02_class")
    neuron = tf.logit_as_neuron(model, image, cls)
    s = neuron.steps
    st.markdown(f"The score of class **{ds.classes[cls]}** is one neuron with {len(s.inputs)} inputs (the "
                f"outputs of fc1 after ReLU). Adding its {len(s.inputs)} products and the bias by hand gives "
                f"**{s.pre_activation:.4f}**; the model's own logit is **{neuron.model_logit:.4f}**.")
    order = np.argsort(-np.abs(s.products))[:15]
    show_chart(fig.bar_values([f"x{i}" for i in order], s.products[order],
                                   title="The 15 largest products w_i · x_i (input index on the axis)",
                                   y_title="w_i · x_i"), key="t02_products")
    st.caption(f"{int((s.inputs == 0).sum())} of the {len(s.inputs)} inputs are exactly 0 after ReLU, so "
               "their weights contribute nothing for this image.")
nav.link(nav.INSIDE, "See it in the live model", icon=":material/biotech:")

# -- predict, then check ---------------------------------------------------------------------------
st.header("Predict, then check")
n_in, n_out = 28 * 28, 128  # a plain network that reads the flattened digit: not one of SimpleCNN's layers
options = sorted({n_in * n_out, n_in * n_out + n_out, n_in + n_out, n_in * n_out + n_in})  # one right, three slips
guess = st.radio(f"A network without convolutions flattens each {28}×{28} digit into {n_in} numbers and feeds them to "
                 f"`nn.Linear({n_in}, {n_out})`. How many trainable numbers does that layer hold?", options,
                 index=None, format_func=lambda v: f"{v:,}", key="t02_guess")
if st.button("Check by running it", key="t02_check"):
    if guess is None:
        st.warning("Pick an answer first, then check.")
    else:
        layer = torch.nn.Linear(n_in, n_out)
        counted = sum(p.numel() for p in layer.parameters())
        shapes = ", ".join(f"{name} {tuple(p.shape)}" for name, p in layer.named_parameters())
        text = (f"PyTorch counts {counted:,} numbers ({shapes}): {n_out} neurons with {n_in} weights and one bias each. "
                f"That one layer alone holds {counted / reference.num_parameters():.0%} as many as all of SimpleCNN.")
        if guess == counted:
            st.success(f"Right. {text}")
        else:
            st.error(f"Not quite: {guess:,} is not it. {text}")
