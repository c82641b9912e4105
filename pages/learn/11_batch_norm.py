"""Lesson 11: batch normalisation on the real conv1 output of a batch of digits."""
import copy

import pandas as pd
import streamlit as st
import torch
from torch import nn

from dashboard.charts import show_chart
from dashboard import nav
from dashboard.lesson_settings import lesson_link, setting
from dashboard.state import dataset, lesson_model
from dashboard.widgets import predict_then_check
from simplecnn.data import to_float
from simplecnn.lessons.figures_b import batch_norm_histograms
from simplecnn.lessons.regularization import alone_vs_in_batch, batch_norm_view, with_channel



st.title("11 · Batch normalization")
lesson_link("11")
st.markdown(
    "Each channel of a convolution can come out on its own scale: one centred at 0.1, another at "
    "−3 with a wide spread. The next layer then has to cope with inputs whose range keeps shifting "
    "while the earlier weights learn. Batch normalisation re-centres and re-scales every channel to "
    "mean 0 and variance 1, using the statistics of the current mini-batch, and then lets the network "
    "choose the scale and offset it really wants through two learned numbers per channel, γ and β.\n\n"
    "While training, the layer also keeps a slow running average of the batch means and variances. "
    "In eval mode it uses those running statistics instead, so a prediction for one image no longer "
    "depends on which other images share its batch.")
st.latex(r"\mu_c = \frac{1}{NHW}\sum_{n,h,w} x_{nchw},\qquad \sigma_c^2 = \frac{1}{NHW}\sum_{n,h,w}"
         r"(x_{nchw}-\mu_c)^2")
st.latex(r"\hat x = \frac{x-\mu_c}{\sqrt{\sigma_c^2+\varepsilon}},\qquad y = \gamma_c\,\hat x + \beta_c")

model, label = lesson_model()
work = copy.deepcopy(model).cpu().float().eval()  # never touch the live model's running statistics
bn = work.batch1
if not isinstance(bn, nn.BatchNorm2d):
    st.info("This model was trained without batch normalization; the lesson uses a fresh BatchNorm2d "
            "(running mean 0, running variance 1) on its conv1 output instead.")
    bn = nn.BatchNorm2d(work.conv1.out_channels)
ds = dataset()

c1, c2, c3 = st.columns(3)
batch_size = c1.select_slider("batch size", options=[2, 4, 8, 16, 32, 64, 128, 256], **setting("bn_batch"))
start = c2.number_input("first test image of the batch", 0, len(ds.test_labels) - 256, step=64, **setting("bn_start"))
channel = c3.slider("channel of conv1", 0, bn.num_features - 1, **setting("bn_channel"))
with torch.no_grad():
    conv_out = work.conv1(to_float(ds.test_images[int(start):int(start) + batch_size]))  # (N, 32, 24, 24)

g1, g2 = st.columns(2)
learned_gamma, learned_beta = round(bn.weight[channel].item(), 2), round(bn.bias[channel].item(), 2)
gamma = g1.slider("γ (scale) for this channel", min(-3.0, learned_gamma), max(3.0, learned_gamma), learned_gamma,
                  0.01, key=f"bn_gamma_{channel}", help="Starts at the value the model learned.")
beta = g2.slider("β (shift) for this channel", min(-3.0, learned_beta), max(3.0, learned_beta), learned_beta,
                 0.01, key=f"bn_beta_{channel}", help="Starts at the value the model learned.")
view = batch_norm_view(bn, conv_out, gamma=with_channel(bn.weight, channel, gamma),
                       beta=with_channel(bn.bias, channel, beta))
st.caption(f"Model: {label} · conv1 output of {batch_size} test digits, shape {tuple(conv_out.shape)}")
show_chart(batch_norm_histograms(view, channel), width="stretch", key="t11_batch_norm_histograms")


def _stats(t: torch.Tensor) -> str:
    return f"mean {float(t.mean()):.3f}, std {float(t.std(unbiased=False)):.3f}"


c = channel
st.caption(f"The tall spike is the background: where the 5×5 window sees only zeros, conv1 outputs just its "
           f"bias ({work.conv1.bias[c].item():.4g} for this channel).")
st.dataframe(pd.DataFrame([
    {"": "before BN (conv1 output)", "mean μ used": "—", "variance σ² used": "—",
     "output": _stats(view.inputs[:, c])},
    {"": "train mode: batch statistics", "mean μ used": f"{float(view.batch_mean[c]):.4g}",
     "variance σ² used": f"{float(view.batch_var[c]):.4g}", "output": _stats(view.module_train[:, c])},
    {"": "eval mode: running statistics (buffers)", "mean μ used": f"{float(view.running_mean[c]):.4g}",
     "variance σ² used": f"{float(view.running_var[c]):.4g}", "output": _stats(view.module_eval[:, c])},
]), hide_index=True, width="stretch")
ok = view.max_difference() < 1e-4
(st.success if ok else st.error)(
    f"The formula γ·x̂ + β equals `nn.BatchNorm2d`'s output in both modes: **{'yes' if ok else 'no'}** "
    f"(largest difference {view.max_difference():.1e}). In train mode the output has mean β = {beta:g} and "
    f"standard deviation |γ| = {abs(gamma):g} (up to ε); in eval mode it only gets close to that when "
    "the running statistics match this batch.")
st.markdown(
    f"**Running statistics.** One training step on this batch would move the running mean of channel {c} "
    f"from {float(view.running_mean[c]):.4g} to (1 − {view.momentum:g})·{float(view.running_mean[c]):.4g} + "
    f"{view.momentum:g}·{float(view.batch_mean[c]):.4g} = **{float(view.running_mean_after[c]):.4g}**, and the "
    f"running variance from {float(view.running_var[c]):.4g} to **{float(view.running_var_after[c]):.4g}** "
    "(it averages the unbiased batch variance). This lesson works on a copy, so the model keeps its own.")

st.header("Where batch norm acts in SimpleCNN")
if isinstance(work.batch1, nn.BatchNorm2d):
    st.markdown(
        f"`batch1` normalises the {work.batch1.num_features} channels of conv1 and `batch2` the "
        f"{work.batch2.num_features} channels of conv2, each before its ReLU. Together they learn "
        f"{sum(p.numel() for m in (work.batch1, work.batch2) for p in m.parameters())} numbers (γ and β) "
        f"and keep {sum(b.numel() for m in (work.batch1, work.batch2) for n, b in m.named_buffers() if n != 'num_batches_tracked')} "
        f"running statistics, updated over {int(work.batch1.num_batches_tracked):,} training batches so far.")
else:
    st.markdown("This model has no batch normalization (its `batch1` and `batch2` are identities).")
nav.link(nav.TRAIN, "Train with and without batch norm on the Train page", icon=":material/model_training:")

st.header("Predict, then check")
options = ["It changes in both modes", "It changes only in train mode", "It changes only in eval mode",
           "It never changes"]


def _batch_answer() -> tuple[str, str]:
    dep = alone_vs_in_batch(bn, conv_out, 0)
    moved_train, moved_eval = dep.train_mode > 1e-5, dep.eval_mode > 1e-5
    truth = options[{(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}[(moved_train, moved_eval)]]
    return truth, (f"the largest change was {dep.train_mode:.4g} in train mode and {dep.eval_mode:.4g} in eval mode, "
                   f"so **{truth.lower()}**. Train mode normalises with the statistics of whatever batch the image "
                   "is in; eval mode uses fixed running statistics.")


predict_then_check("Put the first digit through `batch1` on its own, then again inside the whole batch. "
                   "Does its output change?", options, "bn", _batch_answer)
