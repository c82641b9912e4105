"""Lesson 15: one real training step, checked against closed forms and a hand-written SGD step."""
import copy

import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

from simplecnn.data import to_float
from simplecnn.lessons.training_step import fresh_model, training_step
from tests.test_pages_learn_b import LEARN, _model


def _batch(mnist, b=0):
    return to_float(mnist.train_images[b * 64:(b + 1) * 64]), mnist.train_labels[b * 64:(b + 1) * 64]


def test_sgd_step_is_minus_lr_times_the_gradient_of_an_independent_forward(mnist):
    model = fresh_model()
    saved = copy.deepcopy(model.state_dict())
    x, y = _batch(mnist)
    step = training_step(model, x, y, 0.1, "SGD", seed=0)
    # independent: same seed, same copy, a plain forward/backward with no optimizer
    ref = copy.deepcopy(model).train()
    for m in ref.modules():
        m.__dict__.pop("_rng", None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        loss = nn.functional.cross_entropy(ref(x), y)
    loss.backward()
    assert step.train_loss == pytest.approx(loss.item(), rel=1e-6)
    for name, p in ref.named_parameters():
        assert torch.allclose(step.updates[name], -0.1 * p.grad, atol=1e-6), name
    assert not step.grads_before_zero_grad
    assert step.moves == sorted(step.moves, key=lambda m: -m.max_change)
    top = step.moves[0]
    assert top.max_change == pytest.approx(float(step.updates[top.name].abs().max()))
    assert top.top_after - top.top_before == pytest.approx(float(step.updates[top.name][top.top_index]), abs=1e-7)
    for k, v in model.state_dict().items():  # the model passed in is untouched
        assert torch.equal(v, saved[k]), k


def test_adam_first_step_moves_weights_by_about_lr(mnist):
    step = training_step(fresh_model(), *_batch(mnist), 0.001, "Adam")
    moves = {m.name: m for m in step.moves}
    # conv biases feed batch norm, which subtracts the channel mean: their gradient is ~0 (rounding only)
    assert moves["conv1.bias"].grad_norm < 1e-5 and moves["conv2.bias"].grad_norm < 1e-5
    assert all(m.max_change == pytest.approx(0.001, rel=0.01) for n, m in moves.items()
               if n not in ("conv1.bias", "conv2.bias"))


@pytest.mark.parametrize("b", [0, 1, 2])
def test_small_step_lowers_the_loss_large_step_overshoots_on_a_fresh_model(mnist, b):
    """The page's claim: on a fresh SimpleCNN with SGD, η = 0.1 lowers this batch's loss, η = 1 raises it."""
    x, y = _batch(mnist, b)
    small = training_step(fresh_model(), x, y, 0.1, "SGD", seed=b)
    large = training_step(fresh_model(), x, y, 1.0, "SGD", seed=b)
    assert small.eval_loss_after < small.eval_loss_before < large.eval_loss_after
    assert small.moves[0].name == "fc2.weight"  # "usually the last layer's"


def test_on_the_trained_model_a_small_step_barely_changes_the_loss(bundled_path, mnist):
    from simplecnn.checkpoints import load_checkpoint

    trained = load_checkpoint(bundled_path)[0].eval()
    step = training_step(trained, *_batch(mnist), 0.1, "SGD")
    assert step.eval_loss_before < 0.01 and abs(step.eval_loss_after - step.eval_loss_before) < 0.005
    assert step.correct_before == step.correct_after == 64


@pytest.mark.parametrize("with_model", [False, True])
def test_training_step_page(with_model):
    at = AppTest.from_file(str(LEARN / "15_training_step.py"), default_timeout=60)
    model = _model() if with_model else None
    at.session_state["_bundled_copy"] = model
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.radio(key="ts_start").set_value("a fresh SimpleCNN").run()
    metrics = {m.label: m.value for m in at.metric}
    from simplecnn.data import load_dataset

    x, y = _batch(load_dataset("mnist"))
    ref = training_step(fresh_model(), x, y, 0.1, "SGD", seed=0)
    assert metrics["after one step"] == f"{ref.eval_loss_after:.4f}"
    at.radio(key="ts_optimizer").set_value("Adam").run()
    at.select_slider(key="ts_lr").set_value(0.001).run()
    at.number_input(key="ts_batch").set_value(3).run()
    assert not at.exception, [e.value for e in at.exception]
    if model is not None:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        at.radio(key="ts_start").set_value("this model").run()
        for k, v in at.session_state["_bundled_copy"].state_dict().items():
            assert torch.equal(v, before[k]), k
