"""Lesson 15: one real training step on a real MNIST batch, line by line, on a copy of a model."""
import pandas as pd
import streamlit as st

from dashboard import nav
from dashboard.lesson_settings import lesson_link, setting
from dashboard.state import dataset, lesson_model
from dashboard.widgets import predict_then_check
from simplecnn.data import to_float
from simplecnn.lessons.training_step import (BIAS_MOVE_OPTIONS, bias_move_option, bias_move_ratio, fresh_model,
                                             training_step)

st.title("15 · One real training step")
lesson_link("15")
st.markdown(
    "Every lesson so far explained one piece. Training puts them together in five lines that run once per "
    "batch, thousands of times. Here they run once, on a real batch of MNIST training digits, on a copy of a "
    "model (so nothing you do here changes it):")
st.code("""optimizer.zero_grad()                    # 1. clear the gradients left from the previous batch
logits = model(images)                   # 2. forward pass (train mode: dropout and batch statistics on)
loss = F.cross_entropy(logits, labels)   # 3. one number: how wrong the batch is
loss.backward()                          # 4. backprop: dL/dW for all 582,218 parameters
optimizer.step()                         # 5. move every weight a little against its gradient""", language="python")
st.markdown("`backward()` *adds* to `.grad`, so without line 1 each step would also use every older batch's "
            "gradient. With SGD, line 5 is W ← W − η·∂L/∂W; with Adam it is the rule of lesson 8.")

model, label = lesson_model()
ds = dataset()
c1, c2, c3, c4 = st.columns(4)
start = c1.radio("start from", ["this model", "a fresh SimpleCNN"], **setting("ts_start"),
                 help=f"This model: {label}. A fresh one has random weights, so one step changes more.")
optimizer = c2.radio("optimizer", ["SGD", "Adam"], horizontal=True, **setting("ts_optimizer"))
lr = c3.select_slider("learning rate η", options=[0.0001, 0.001, 0.01, 0.1, 0.5, 1.0, 5.0], **setting("ts_lr"))
batch = c4.number_input("training batch # (64 images)", 0, len(ds.train_labels) // 64 - 1, **setting("ts_batch"))
begin = int(batch) * 64
images, labels = to_float(ds.train_images[begin:begin + 64]), ds.train_labels[begin:begin + 64]
net = fresh_model() if start == "a fresh SimpleCNN" else model
step = training_step(net, images, labels, float(lr), optimizer, seed=int(batch))

m1, m2, m3 = st.columns(3)
m1.metric("loss on this batch before (eval mode)", f"{step.eval_loss_before:.4f}")
m2.metric("after one step", f"{step.eval_loss_after:.4f}", f"{step.eval_loss_after - step.eval_loss_before:+.4f}",
          delta_color="inverse")
m3.metric("correct on this batch", f"{step.correct_after} / 64", f"{step.correct_after - step.correct_before:+d}",
          delta_color="normal")
st.caption(f"Line 3 gave a training loss of {step.train_loss:.4f} (train mode, with dropout, the number backward() "
           "differentiated). The eval-mode numbers above score the same 64 images before and after the step. "
           "A step that is too large overshoots: on a fresh SimpleCNN with SGD, η = 0.1 lowers the loss on "
           "this batch and η = 1 raises it.")

st.header("Which weights moved most")
top = step.moves[0]
st.markdown(f"The single weight that moved most is **{top.name}{list(top.top_index)}**: from {top.top_before:.5f} "
            f"to {top.top_after:.5f} (a change of {top.max_change:.3g}).")
# conv1.bias's row answers the question at the bottom: it is left out until that is checked
bias_answered = bool(st.session_state.get("ts_bias_checked")) and st.session_state.get("ts_bias_guess") is not None
st.dataframe(pd.DataFrame([{"parameter": mv.name, "numbers": mv.numel, "‖gradient‖": mv.grad_norm,
                            "largest |change|": mv.max_change, "‖change‖ / ‖weights‖": mv.relative_change}
                           for mv in step.moves if bias_answered or mv.name != "conv1.bias"])
             .style.format({"numbers": "{:,}", "‖gradient‖": "{:.3g}", "largest |change|": "{:.3g}",
                            "‖change‖ / ‖weights‖": "{:.2e}"}), hide_index=True, width="stretch")
if optimizer == "SGD":
    worst = max(float((step.updates[n] + float(lr) * step.grads[n]).abs().max()) for n in step.updates)
    st.caption(f"With SGD every change is exactly −η × gradient (largest difference {worst:.1e}), so the tensors "
               "with the largest gradients move most, usually the last layer's.")
else:
    st.caption("Adam's first step moves every weight with a non-negligible gradient by about η, whatever its "
               "gradient (lesson 8), so the largest changes are all close to η."
               + (" The exception is the conv biases: batch norm subtracts each channel's mean right after them, "
                  "so their gradient is zero up to rounding, comparable to Adam's ε."
                  if net.batch_norm and bias_answered else ""))
if not bias_answered:
    st.caption("conv1.bias is left out of the table until you answer the question at the bottom of the page.")
st.caption("Zeroing worked: no gradient was left over after line 1." if not step.grads_before_zero_grad
           else "Gradients were still there after zero_grad().")
nav.link(nav.TRAIN, "Run thousands of these steps on the Train page", icon=":material/model_training:")

st.header("Predict, then check")


def _bias_answer() -> tuple[str, str]:
    sgd = step if optimizer == "SGD" else training_step(net, images, labels, float(lr), "SGD", seed=int(batch))
    ratio = bias_move_ratio(sgd)
    truth = bias_move_option(ratio)
    bias, weight = (float(sgd.updates[n].abs().max()) for n in ("conv1.bias", "conv1.weight"))
    why = ("Batch norm subtracts each channel's batch mean right after conv1, so adding a constant to a channel "
           "changes nothing downstream: the loss does not depend on the bias and its gradient is zero up to "
           "rounding." if net.batch_norm else
           "This model has no batch norm, so conv1's bias reaches the loss like any weight and gets a real gradient.")
    return truth, (f"with SGD at η = {lr:g}, conv1.bias moved at most {bias:.3g} and conv1.weight {weight:.3g} "
                   f"(ratio {ratio:.2g}), so the answer is **{truth}**. {why}")


def _show_bias_row(guess) -> None:
    if guess is not None and not bias_answered:
        st.rerun()  # draw the table above again, now with conv1.bias


predict_then_check(f"conv1's bias is added to each channel just before `batch1` (batch norm, lesson 11). In this step, "
                   f"with SGD at η = {lr:g} on the same batch and model, how far does conv1.bias move?",
                   BIAS_MOVE_OPTIONS, "ts_bias", _bias_answer, on_check=_show_bias_row)
