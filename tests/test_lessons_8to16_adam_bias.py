"""Lesson 8's bias-correction run: HandAdam against torch.optim.Adam, and the first steps against closed forms."""
import copy

import pytest
import torch
from torch import nn

from simplecnn.data import to_float
from simplecnn.lessons.adam_bias import (ADAM_VARIANTS, HandAdam, adam_config, constant_gradient_ratio,
                                         mnist_batches, train_adam_run, train_steps)
from simplecnn.model import SimpleCNN


def _fresh(seed=0):
    torch.manual_seed(seed)
    return SimpleCNN()


def _batches(mnist, steps, b=64):
    return [(to_float(mnist.train_images[i * b:(i + 1) * b]), mnist.train_labels[i * b:(i + 1) * b])
            for i in range(steps)]


def _torch_adam_weights(model, batches, lr, seed):
    """The independent reference: torch.optim.Adam in a plain loop, same start, same dropout stream."""
    ref = copy.deepcopy(model).train()
    opt = torch.optim.Adam(ref.parameters(), lr=lr)
    torch.manual_seed(seed)
    for x, y in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(ref(x), y).backward()
        opt.step()
    return ref.state_dict()


@pytest.mark.parametrize("lr", [1e-4, 1e-3])
def test_hand_adam_with_correction_equals_torch_adam_on_simplecnn(mnist, lr):
    """Same SimpleCNN, same 20 MNIST batches, same dropout masks: the weights agree to ~1e-6.

    (At α = 1e-2 float32 rounding differences grow over 20 steps to ~5e-3 in conv2.weight: Adam
    divides every gradient by its own size, so a rounding-sized gradient still takes an α-sized step.)
    """
    start, batches = _fresh(), _batches(mnist, 20)
    reference = _torch_adam_weights(start, batches, lr, seed=5)
    hand = copy.deepcopy(start)
    torch.manual_seed(5)
    train_steps(hand, batches, HandAdam(hand.parameters(), lr=lr), lr)
    # conv1/conv2 biases feed batch norm, which subtracts them again: their gradient is rounding noise
    # (~1e-10, the size of ε), so both optimizers turn different noise into steps that change nothing
    # downstream; they and the running means that carry them are compared through the output instead.
    noise = {"conv1.bias", "conv2.bias", "batch1.running_mean", "batch2.running_mean"}
    worst = max((float((hand.state_dict()[k].float() - v.float()).abs().max()), k)
                for k, v in reference.items() if k not in noise)
    assert worst[0] < 1e-6, worst
    ref_model = copy.deepcopy(start)
    ref_model.load_state_dict(reference)
    x = to_float(mnist.test_images[:64])
    outputs = []
    for net in (hand, ref_model):  # batch statistics (the conv bias cancels), dropout off
        net.train()
        net.dropout1.eval(), net.dropout2.eval()
        with torch.no_grad():
            outputs.append(net(x))
    assert torch.allclose(*outputs, atol=1e-5)
    moved = max(float((hand.state_dict()[k].float() - start.state_dict()[k].float()).abs().max())
                for k in reference)
    assert moved > 10 * lr  # the runs really trained (20 steps of about α each)


def test_hand_adam_without_correction_differs_from_torch(mnist):
    start, batches = _fresh(), _batches(mnist, 3)
    reference = _torch_adam_weights(start, batches, 1e-3, seed=5)
    hand = copy.deepcopy(start)
    torch.manual_seed(5)
    train_steps(hand, batches, HandAdam(hand.parameters(), lr=1e-3, bias_correction=False), 1e-3)
    assert float((hand.fc2.weight.detach() - reference["fc2.weight"]).abs().max()) > 1e-3


def _first_gradient(mnist, seed):
    """∂L/∂w of the first batch by autograd on an independent copy (same weights, same dropout stream)."""
    config = adam_config(1, 1e-3, seed=seed)
    torch.manual_seed(seed)
    model = SimpleCNN().train()
    x, y = mnist_batches(mnist, config)[0]
    nn.functional.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.flatten().double() for p in model.parameters()])


def test_first_step_sizes_match_the_closed_form_on_a_real_run(mnist):
    """Step 1: with correction each weight moves α·|g|/(|g| + ε); without, α·(1 − β₁)|g|/(√(1 − β₂)|g| + ε)."""
    config = adam_config(4, 1e-3, seed=2)
    on = train_adam_run("with bias correction", config, mnist)
    off = train_adam_run("without bias correction", config, mnist)
    g = _first_gradient(mnist, seed=2).abs()
    eps, b1, b2 = 1e-8, 0.9, 0.999
    expected_on = float((g / (g + eps)).mean())
    expected_off = float(((1 - b1) * g / ((1 - b2) ** 0.5 * g + eps)).mean())
    assert on.update_ratios[0] == pytest.approx(expected_on, rel=1e-3)
    assert off.update_ratios[0] == pytest.approx(expected_off, rel=1e-3)
    # the page's claim: corrected step 1 is about α, uncorrected about (1 − β₁)/√(1 − β₂) = 3.16 α
    assert 0.95 < on.update_ratios[0] <= 1.0
    assert off.update_ratios[0] / on.update_ratios[0] == pytest.approx(constant_gradient_ratio(1), rel=0.02)
    assert constant_gradient_ratio(1) == pytest.approx(0.1 / 0.001 ** 0.5)
    assert on.losses[0] == pytest.approx(off.losses[0])  # same start, same first batch


def test_uncorrected_steps_stay_larger_for_the_first_dozens():
    """Closed form with a constant gradient: (1 − β₁ᵗ)/√(1 − β₂ᵗ) rises above 3 and falls back to 1 only slowly."""
    ratios = [constant_gradient_ratio(t) for t in range(1, 5001)]
    assert ratios[0] == pytest.approx(3.1623, abs=1e-4)
    assert max(ratios) > 6 and all(r > 1 for r in ratios[:1000])
    assert ratios[-1] == pytest.approx(1.0, abs=0.01)


def test_run_is_bounded_and_labels_are_known(mnist):
    with pytest.raises(ValueError):
        adam_config(0, 1e-3)
    with pytest.raises(ValueError):
        adam_config(10_000, 1e-3)
    with pytest.raises(KeyError):
        train_adam_run("no such variant", adam_config(2, 1e-3), mnist)
    assert set(ADAM_VARIANTS.values()) == {True, False}


def test_the_comparison_worker_runs_the_adam_variants(mnist):
    """The queue's child side with runner "adam_bias": one run per label, in order, then "done"."""
    import threading
    from multiprocessing import Pipe

    from simplecnn.comparison import RUNNERS, compare_in_child

    assert "adam_bias" in RUNNERS
    parent, child = Pipe()
    configs = {label: adam_config(3, 1e-3).to_dict() for label in ADAM_VARIANTS}
    compare_in_child(child, configs, "mnist", threading.Event(), "adam_bias")
    messages = []
    while True:
        try:
            messages.append(parent.recv())
        except EOFError:  # the child side closed its end: everything was sent
            break
    runs = [m[1] for m in messages if m[0] == "run"]
    assert [r["label"] for r in runs] == list(ADAM_VARIANTS) and messages[-1] == ("done",)
    assert [r["bias_correction"] for r in runs] == [True, False]
    assert all(len(r["losses"]) == len(r["update_ratios"]) == 3 for r in runs)


def test_adam_bias_figure_draws_both_runs_and_the_closed_form(mnist):
    from simplecnn.lessons.adam_bias_figure import adam_bias_figure

    runs = [train_adam_run(label, adam_config(3, 1e-3), mnist) for label in ADAM_VARIANTS]
    fig = adam_bias_figure(runs)
    steps = [list(t.y) for t in fig.data if t.xaxis == "x2"]
    assert steps == [r.update_ratios for r in runs]
    measured, closed = (list(t.y) for t in fig.data if t.xaxis == "x3")
    assert measured == pytest.approx([b / a for a, b in zip(*steps)])
    assert closed == pytest.approx([(1 - 0.9 ** t) / (1 - 0.999 ** t) ** 0.5 for t in (1, 2, 3)])
    assert measured[0] == pytest.approx(closed[0], rel=0.02)  # equal at t = 1 on real gradients
