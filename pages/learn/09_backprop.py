"""Lesson 9: backpropagation as the chain rule, on a four-node graph with real numbers."""
import pandas as pd
import streamlit as st

from dashboard.charts import show_chart
from dashboard import nav
from dashboard.lesson_settings import lesson_link, setting
from dashboard.state import dataset, lesson_model
from dashboard.widgets import predict_then_check
from simplecnn.data import to_float
from simplecnn.lessons.backprop import GRAD_NAMES, gradient_step, model_gradients, trace
from simplecnn.lessons.backprop_layers import block1_gradients
from simplecnn.lessons.figures_b import backprop_graph_figure, gradient_norms_figure, image_row_figure
from simplecnn.plots import DIVERGING



st.title("9 · Backpropagation")
lesson_link("09")
st.markdown(
    "A network is a chain of small functions. To learn, we need to know how the loss changes when "
    "we nudge each weight: the gradient. Backpropagation gets every gradient in one backward sweep. "
    "It starts at the loss, where ∂L/∂L = 1, and walks the graph in reverse. At each node it "
    "multiplies the gradient that arrived from above by that node's *local* derivative, which only "
    "needs numbers saved during the forward pass.\n\n"
    "The graph below is one neuron: z = w·x + b, a = σ(z), and a squared-error loss against a "
    "target t. Change the inputs and follow the numbers forward (grey arrows) and backward (orange-red arrows, with ∂ in their labels).")
st.latex(r"\frac{\partial L}{\partial w} = \underbrace{2(a-t)}_{\partial L/\partial a}\cdot"
         r"\underbrace{\sigma(z)\,(1-\sigma(z))}_{\partial a/\partial z}\cdot"
         r"\underbrace{x}_{\partial z/\partial w}")

c1, c2, c3, c4 = st.columns(4)
x = c1.number_input("input x", -5.0, 5.0, step=0.1, **setting("bp_x"))
w = c2.number_input("weight w", -5.0, 5.0, step=0.1, **setting("bp_w"))
b = c3.number_input("bias b", -5.0, 5.0, step=0.1, **setting("bp_b"))
t = c4.number_input("target t", 0.0, 1.0, step=0.05, **setting("bp_t"))
tr = trace(x, w, b, t)
show_chart(backprop_graph_figure(tr), width="stretch", config={"displayModeBar": False}, key="t09_backprop_graph")
st.caption("Grey arrows: the forward pass. Orange-red arrows, labelled with ∂: the backward pass, each multiplying by "
           "a local derivative.")

left, right = st.columns([2, 3])
with left:
    st.markdown("**Forward pass** (left to right)")
    st.dataframe(pd.DataFrame([
        {"node": "z = w·x + b", "value": tr.z},
        {"node": "a = σ(z)", "value": tr.a},
        {"node": "L = (a − t)²", "value": tr.loss},
    ]).style.format({"value": "{:.6g}"}), hide_index=True, width="stretch")
with right:
    st.markdown("**Backward pass** (right to left)")
    formulas = {"L": "1 (start)", "a": "2(a − t)", "z": "∂L/∂a · σ(z)(1 − σ(z))", "w": "∂L/∂z · x",
                "b": "∂L/∂z · 1", "x": "∂L/∂z · w"}
    st.dataframe(pd.DataFrame([{"gradient": f"∂L/∂{n}", "chain rule": formulas[n], "by hand": tr.grads[n],
                                "autograd": tr.autograd[n]} for n in GRAD_NAMES])
                 .style.format({"by hand": "{:.6g}", "autograd": "{:.6g}"}), hide_index=True, width="stretch")
ok = tr.max_difference() < 1e-12
(st.success if ok else st.error)(f"Every hand-computed gradient equals `torch.autograd`: **{'yes' if ok else 'no'}** "
                                 f"(largest difference {tr.max_difference():.1e}).")

lr = st.slider("learning rate for one gradient-descent step on w and b", 0.0, 5.0, step=0.1, **setting("bp_lr"))
new_w, new_b, new_loss = gradient_step(tr, lr)
st.markdown(f"w ← {w:g} − {lr:g}·({tr.grads['w']:.4g}) = **{new_w:.4g}**, "
            f"b ← {b:g} − {lr:g}·({tr.grads['b']:.4g}) = **{new_b:.4g}**; "
            f"the loss goes from {tr.loss:.4g} to **{new_loss:.4g}**.")

st.header("Where backprop acts in SimpleCNN")
model, label = lesson_model()
ds = dataset()
grads = model_gradients(model, to_float(ds.test_images[:64]), ds.test_labels[:64])
st.markdown(
    f"`loss.backward()` does exactly this for *{label}*, through 14 stages and "
    f"{model.num_parameters():,} parameters. Here is one backward pass on 64 test digits "
    f"(cross-entropy {grads.loss:.4f}). The last link can be checked by hand: for softmax with "
    "cross-entropy, ∂L/∂(fc2 bias) is the batch average of (predicted probabilities − one-hot target).")
st.latex(r"\frac{\partial L}{\partial b^{\text{fc2}}_k} = \frac{1}{N}\sum_{n=1}^{N}\left(p_{n,k} - y_{n,k}\right)")
cmp = pd.DataFrame({"class": list(ds.classes), "by hand": grads.fc2_bias_by_hand,
                    "autograd": grads.fc2_bias_autograd})
g1, g2 = st.columns([1, 1])
g1.dataframe(cmp.style.format({c: "{:.3e}" for c in cmp.columns[1:]}), hide_index=True, width="stretch")
g1.caption(f"∂L/∂(fc2 bias): mean(p − y) by hand vs `fc2.bias.grad`. Largest difference: "
           f"{grads.max_difference():.1e}")
show_chart(gradient_norms_figure(grads.norms), width="stretch", key="t09_gradient_norms", where=g2)

st.header("Through the real layers, by hand")
st.markdown(
    "The same chain rule runs through convolution, ReLU and max-pooling. Below, one test digit goes through "
    f"*{label}* (eval mode) and autograd gives ∂L/∂(max1 output). From there, each backward rule of block 1 "
    "is written out by hand and compared with autograd: **max-pool** sends each window's gradient only to its "
    "largest input; **ReLU** lets it through only where its input was positive; eval-mode **batch norm** "
    "multiplies it by γ/√(running var + ε); the **convolution** uses one kernel at every position, so "
    "the gradient of each kernel weight is a sum over all 24×24 positions of (input pixel under that weight) × "
    "(gradient at that position).")
st.latex(r"\frac{\partial L}{\partial W_{c,i,j}} = \sum_{y=0}^{23}\sum_{x=0}^{23} "
         r"\frac{\partial L}{\partial \text{conv}_{c,y,x}}\; \text{image}_{y+i,\,x+j}")
r1, r2, r3 = st.columns(3)
digit = r1.number_input("test digit #", 0, len(ds.test_labels) - 1, **setting("bp_digit"))
true_class = int(ds.test_labels[int(digit)])
target = r2.selectbox("loss against class", list(range(len(ds.classes))), index=true_class,
                      format_func=lambda c: f"{ds.classes[c]}{' (the true label)' if c == true_class else ''}",
                      key="bp_target", help="A wrong class gives a large loss and large gradients.")
channel = r3.slider("channel of conv1", 0, model.conv1.out_channels - 1, **setting("bp_channel"))
lg = block1_gradients(model, ds.test_images[int(digit)], int(target))
c = int(channel)
show_chart(image_row_figure(
    [lg.image.numpy(), lg.relu_in[c].numpy(), lg.grad_relu_out["hand"][c].numpy(),
     lg.grad_relu_in["hand"][c].numpy()],
    ["input digit", f"ReLU input, ch {c}", "after max-pool backward", "after ReLU backward"],
    colorscale=DIVERGING, zmin=None, height=190), width="stretch", key="bp_layers_fig")
scale = {k: float(v["autograd"].abs().max()) for k, v in (
    ("max-pool backward", lg.grad_relu_out), ("ReLU backward", lg.grad_relu_in),
    ("batch norm backward", lg.grad_conv_out), ("conv1 weight gradient", lg.grad_weight),
    ("conv1 bias gradient", lg.grad_bias))}
st.dataframe(pd.DataFrame([{"backward step": k, "largest |gradient|": scale[k], "largest |hand − autograd|": d}
                           for k, d in lg.differences().items()])
             .style.format({"largest |gradient|": "{:.3e}", "largest |hand − autograd|": "{:.1e}"}),
             hide_index=True, width="stretch")
st.caption(f"Loss {lg.loss:.4g}. Max-pool gave a gradient to {lg.routed_count():,} of relu1's "
           f"{lg.relu_in.numel():,} positions ({lg.routed_fraction():.1%}: one per 2×2 window at most), and ReLU "
           f"then stopped {lg.relu_blocked():,} of those, where its input "
           "was ≤ 0: the background, where every input of a window was negative, sends nothing back.")
nav.link(nav.INSIDE, "See the gradients of a digit on the Inside page", icon=":material/biotech:")

st.header("Predict, then check")
options = ["positive", "negative", "zero"]
other_t = 0.0 if t >= 0.5 else 1.0


def _sign_answer() -> tuple[str, str]:
    other = trace(x, w, b, other_t)
    grad_w = other.autograd["w"]
    truth = options[2] if grad_w == 0 else options[0] if grad_w > 0 else options[1]
    return truth, (f"with t = {other_t:g}, autograd says ∂L/∂w = {grad_w:.6g}, so it is **{truth}**. The factors "
                   f"were 2(a − t) = {other.local['dL/da']:.4g}, σ'(z) = {other.local['da/dz']:.4g} (always "
                   f"positive) and x = {x:g}.")


predict_then_check(f"Keep x = {x:g}, w = {w:g} and b = {b:g}, but change the target to t = {other_t:g}. "
                   "What sign will ∂L/∂w have then?", options, "bp", _sign_answer, horizontal=True,
                   hint="Hint: follow the signs of the three factors in the formula above.")
