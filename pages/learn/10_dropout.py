"""Lesson 10: dropout on the real activations that enter SimpleCNN's first dropout layer."""
import copy

import pandas as pd
import streamlit as st
import torch

from dashboard.charts import show_chart
from dashboard import nav
from dashboard.lesson_settings import lesson_link, setting
from dashboard.state import dataset, lesson_model
from dashboard.widgets import predict_then_check
from simplecnn.inspection import activations
from simplecnn.lessons.figures_b import dropout_maps_figure, monte_carlo_figure
from simplecnn.lessons.regularization import (dropout_conventions, dropout_view, dropout_wobble,
                                              monte_carlo_expectation, single_image_norm, values_seen_in_training)



st.title("10 · Dropout")
lesson_link("10")
st.markdown(
    "A big network can memorise its training images by letting a few units team up on details "
    "that only exist in those images. Dropout breaks up such teams: during training, every unit is "
    "switched off with probability p on each forward pass, so no unit can count on any other one "
    "being there.\n\n"
    "Switching units off makes the layer's output smaller on average, so the units that survive are "
    "multiplied by 1/(1 − p). Then the *expected* output during training equals the plain output, "
    "and at inference time (eval mode) the layer can simply pass everything through unchanged.")
st.latex(r"\text{training: }\tilde h_i = \begin{cases} 0 & \text{with probability } p \\[2pt] \dfrac{h_i}{1-p} & "
         r"\text{with probability } 1-p \end{cases} \qquad \text{eval: } \tilde h_i = h_i")
st.latex(r"\mathbb{E}[\tilde h_i] = p\cdot 0 + (1-p)\cdot\frac{h_i}{1-p} = h_i")

model, label = lesson_model()
work = copy.deepcopy(model).cpu().float().eval()
ds = dataset()

c1, c2, c3, c4 = st.columns(4)
index = c1.number_input("test digit #", 0, len(ds.test_labels) - 1, **setting("do_index"))
p = c2.slider("dropout rate p", 0.0, 0.9, step=0.05, **setting("do_p", float(work.dropout1.p)))
seed = c3.number_input("mask seed", 0, 10_000, **setting("do_seed"))
channel = c4.slider("channel", 0, work.conv1.out_channels - 1, **setting("do_channel"))

acts = activations(work, ds.test_images[int(index)], mode="eval")
h = acts["max1"]  # (1, 32, 12, 12): exactly what enters dropout1
view = dropout_view(work.dropout1, h, p, int(seed))
st.caption(f"Model: {label} · digit #{int(index)} (label {ds.classes[int(ds.test_labels[int(index)])]}) · "
           f"h = output of max1, shape {tuple(h.shape)}, entering `dropout1`")
show_chart(dropout_maps_figure(view, channel), width="stretch", key="t10_dropout_maps")
m1, m2, m3 = st.columns(3)
m1.metric("units kept in this mask", f"{view.kept_fraction:.1%}", f"expected {1 - p:.0%}", delta_color="off")
m2.metric("scale on kept units", f"{view.scale:.4g}", "= 1/(1 − p)", delta_color="off")
same = torch.equal(view.train_output, view.activations * view.scaled_mask)
m3.metric("module output = h × mask", "yes" if same else "no",
          f"eval output = h: {'yes' if torch.equal(view.eval_output, view.activations) else 'no'}", delta_color="off")
st.caption(f"Channel {channel}: white mask cells keep the unit and multiply it by {view.scale:.4g}. "
           "The mask is drawn by the model's own dropout module (a seeded copy of "
           f"`{type(work.dropout1).__name__}`), and the training output is that module's output for h.")

st.markdown("**Monte-Carlo check.** Average the training output over K random masks: the average should "
            "approach the eval output. The orange line is the exact expected error (a unit survives S of the "
            "K masks, S binomial); the dashed 1/√K line is the normal approximation, right only for large K.")
mc = monte_carlo_expectation(work.dropout1, h, p, int(seed))
show_chart(monte_carlo_figure(mc), width="stretch", key="t10_monte_carlo")
st.caption(f"Mean absolute error: {mc.mean_abs_error[0]:.4g} with one mask (exact expected value "
           f"{mc.exact[0]:.4g} = 2p·mean|h|; the approximation says {mc.theory[0]:.4g}), "
           f"{mc.mean_abs_error[-1]:.4g} with {mc.counts[-1]:,} masks (exact {mc.exact[-1]:.4g}, "
           f"approximation {mc.theory[-1]:.4g}), over all {h.numel():,} units.")

st.markdown("**Two conventions, one expected value.** The guide describes dropout as *scaling at inference*: "
            "keep units unscaled while training, then multiply everything by 1 − p at inference. PyTorch "
            "(and SimpleCNN) use *inverted* dropout: scale the kept units by 1/(1 − p) while training and "
            "leave inference alone. Here is the same mask on the same activations h, both ways:")
conv = dropout_conventions(view)
st.dataframe(pd.DataFrame([
    {"convention": "inverted (torch): scale while training", "training output, mean": float(conv.inverted_train.mean()),
     "inference output, mean": float(conv.inverted_eval.mean())},
    {"convention": "classic (guide): scale at inference", "training output, mean": float(conv.classic_train.mean()),
     "inference output, mean": float(conv.classic_eval.mean())},
]).style.format({"training output, mean": "{:.4g}", "inference output, mean": "{:.4g}"}), hide_index=True,
    width="stretch")
st.caption(f"Means over all {h.numel():,} units of h for this mask. In each row the training mean is close to "
           f"the inference mean (they are equal in expectation); the two rows differ by the factor "
           f"1 − p = {1 - p:.2f} everywhere, which the next layer's weights absorb. Both give the same network "
           "up to that factor; the inverted form makes inference free.")

st.header("Where dropout acts in SimpleCNN")
st.markdown(
    f"`dropout1` (p = {work.dropout1.p:g}) sits after the first pooling layer, on "
    f"{acts['max1'][0].numel():,} values shaped {tuple(acts['max1'].shape[1:])}; `dropout2` "
    f"(p = {work.dropout2.p:g}) sits after the second, on {acts['max2'][0].numel():,} values shaped "
    f"{tuple(acts['max2'].shape[1:])}. Switch only the two dropout layers to training (batch norm stays on "
    "its running statistics) and run the same digit 20 times:")
wobble = dropout_wobble(work, ds.test_images[int(index)], passes=20)
best = wobble.predicted
d_probs, t_probs = wobble.dropout_probs[:, best], wobble.train_probs[:, best]
st.markdown(f"With **dropout alone**, the probability of class **{ds.classes[best]}** ranged from "
            f"**{d_probs.min():.1%}** to **{d_probs.max():.1%}** (eval mode: **{wobble.eval_probs[best]:.1%}**), "
            f"and {wobble.flips('dropout')} of 20 passes changed the predicted class.")
norm = single_image_norm(work, ds.test_images[int(index)])
if norm is not None:
    shift = norm.mean_shift()
    st.markdown(
        f"`model.train()` does more than switch dropout on: `batch1` and `batch2` then normalise with the "
        f"statistics of the current batch, and a batch of one image means each channel is centred on this "
        f"digit's own mean and divided by its own spread. For this digit, conv1's channel means sit on "
        f"average {float(shift.mean()):.2f} running standard deviations away from the running means "
        f"(up to {float(shift.max()):.2f}), and dividing by the digit's own spread stretches the channels by "
        f"{float(norm.scale_ratio().min()):.2f}× to {float(norm.scale_ratio().max()):.2f}× compared with "
        f"eval mode (batch2 does the same on 8×8 maps). In full train mode the same 20 passes gave "
        f"**{t_probs.min():.1%}** to **{t_probs.max():.1%}** for class {ds.classes[best]}, with "
        f"{wobble.flips('train')} of 20 predictions changed. That extra wobble comes from batch norm "
        "on one image, not from dropout; the trainer never sees it, because it trains on batches of many images.")
else:
    st.markdown(f"This model has no batch norm, so full train mode is dropout alone: {t_probs.min():.1%} to "
                f"{t_probs.max():.1%}.")
nav.link(nav.INSIDE, "Watch dropout masks in the live network on the Inside page", icon=":material/biotech:")

st.header("Predict, then check")
p_real = float(work.dropout1.p)
kept = 1.0 / (1.0 - p_real)
options = list(dict.fromkeys(["always 1", "0 or 1", f"0 or {kept:.4g}", f"always {1 - p_real:.4g}"]))


def _values_answer() -> tuple[str, str]:
    seen = values_seen_in_training(work.dropout1, 1.0, p_real, seed=int(seed))
    seen_text = " or ".join(f"{v:.4g}" for v in seen)
    truth = next((o for o in options if o == ("always " if len(seen) == 1 else "") + seen_text), seen_text)
    return truth, (f"over 10,000 units the module produced **{seen_text}**. Dropped units give 0; kept ones are "
                   f"scaled by 1/(1 − {p_real:g}) = {kept:.4g}.")


predict_then_check(f"`dropout1` has p = {p_real:g}. In training mode, feed it a tensor in which every value is 1. "
                   "Which values come out?", options, "do", _values_answer)
