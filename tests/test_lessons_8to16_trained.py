"""Claims the lessons 8-16 make about a *trained* SimpleCNN, measured on the bundled model.

The page tests run on untrained stand-ins, so nothing there checks what a trained network does; these
tests load models/simplecnn_mnist.pt (skipped where it is absent) and measure each claim.
"""
import copy

import numpy as np
import pytest
import torch

from simplecnn.checkpoints import load_checkpoint
from simplecnn.data import to_float
from simplecnn.lessons import regularization


@pytest.fixture(scope="module")
def trained(bundled_path):
    return load_checkpoint(bundled_path)[0].eval()


def _forward_dropout_only(model, image, seed):
    """Eval mode with only the dropout layers training, written out without simplecnn.inspection."""
    work = copy.deepcopy(model).eval()
    for m in work.modules():
        if isinstance(m, torch.nn.Dropout):
            m.train()
            m.__dict__.pop("_rng", None)
    torch.manual_seed(seed)
    with torch.no_grad():
        return work(to_float(image.reshape(1, 28, 28))).softmax(1)[0]


def test_dropout_alone_barely_moves_a_trained_prediction_full_train_mode_does(trained, mnist):
    """Lesson 10: the wobble of a trained model is batch norm on one image, not dropout."""
    n, passes = 30, 8
    with torch.no_grad():
        ev = trained(to_float(mnist.test_images[:n])).softmax(1)
    pred = ev.argmax(1)
    dropout_change, train_change, dropout_flips, train_flips = [], [], 0, 0
    for i in range(n):
        w = regularization.dropout_wobble(trained, mnist.test_images[i], passes=passes)
        assert np.allclose(w.eval_probs, ev[i].numpy(), atol=1e-5)
        dropout_change.append(np.abs(w.dropout_probs[:, pred[i]] - float(ev[i, pred[i]])).mean())
        train_change.append(np.abs(w.train_probs[:, pred[i]] - float(ev[i, pred[i]])).mean())
        dropout_flips += w.flips("dropout")
        train_flips += w.flips("train")
        # the "dropout alone" passes are exactly eval mode with dropout training (independent forward)
        ref = _forward_dropout_only(trained, mnist.test_images[i], seed=3)
        assert np.allclose(w.dropout_probs[3], ref.numpy(), atol=1e-5)
    # measured: mean |Δp| ≈ 0.007 with dropout alone, ≈ 0.2 in full train mode; flips 0.6 % vs ≈ 20 %
    assert np.mean(dropout_change) < 0.03
    assert np.mean(train_change) > 5 * np.mean(dropout_change)
    assert dropout_flips <= 0.03 * n * passes < train_flips


def test_single_image_batch_norm_uses_the_images_own_statistics(trained, mnist):
    """Lesson 10: train-mode batch1 on one image equals normalising with that image's own channel stats."""
    image = mnist.test_images[0]
    norm = regularization.single_image_norm(trained, image)
    bn = copy.deepcopy(trained.batch1).train()
    with torch.no_grad():
        x = trained.conv1(to_float(image.reshape(1, 28, 28)))
        by_module = bn(x)
    by_hand = (x - norm.own_mean.view(1, -1, 1, 1)) / torch.sqrt(norm.own_var.view(1, -1, 1, 1) + bn.eps)
    by_hand = by_hand * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    assert torch.allclose(by_module, by_hand.detach(), atol=1e-4)
    assert torch.equal(norm.running_mean, trained.batch1.running_mean)
    assert float(norm.scale_ratio().max()) > 1.2  # some channels are stretched well beyond eval mode


def test_most_frequent_mistake_of_the_trained_model(trained, mnist):
    """Lesson 13's question on the bundled model: confusion_pairs agrees with a plain argmax count."""
    from simplecnn.evaluation import evaluate
    from simplecnn.lessons.dataset_stats import confusion_pairs, mistake_options

    result = evaluate(trained, mnist.test_images, mnist.test_labels, num_classes=10)
    with torch.no_grad():
        pred = torch.cat([trained(to_float(mnist.test_images[i:i + 2500])).argmax(1) for i in range(0, 10000, 2500)])
    counts = torch.bincount(mnist.test_labels * 10 + pred, minlength=100).view(10, 10)
    counts.fill_diagonal_(-1)
    t, p, n = confusion_pairs(result.confusion, 4)[0]
    assert n == int(counts.max()) and int(counts[t, p]) == n
    assert 0 < n < 30  # a trained model makes few mistakes, but some: the question has an answer
    options = mistake_options(result.confusion, 4)
    assert [int(counts[a, b]) for a, b, _ in options] == [c for _, _, c in options]
    assert len({c for _, _, c in options}) == 4 and options[0][2] == n  # one right answer, the true maximum


def _first_batch_gradients(model, mnist, seed=0):
    """∂L/∂w of the first 64 training images by autograd on a train-mode copy (dropout from the seeded stream)."""
    work = copy.deepcopy(model).float().train()
    for m in work.modules():
        m.__dict__.pop("_rng", None)
    torch.manual_seed(seed)
    torch.nn.functional.cross_entropy(work(to_float(mnist.train_images[:64])), mnist.train_labels[:64]).backward()
    return {n: p.grad.detach().double() for n, p in work.named_parameters()}


@pytest.mark.parametrize("lr", [0.1, 1e-3])
def test_adam_first_steps_on_fc2_bias_of_the_trained_model_are_all_close_to_lr(trained, mnist, lr):
    """Lesson 8's caption: the fc2.bias gradients span a large factor, yet every first step is close to α."""
    from simplecnn.lessons.adam_table import AdamSettings, first_step_on_model

    steps = first_step_on_model(trained, to_float(mnist.train_images[:64]), mnist.train_labels[:64],
                                AdamSettings(lr=lr), "fc2.bias")
    g = _first_batch_gradients(trained, mnist)["fc2.bias"].abs()
    closed_form = lr * g / (g + 1e-8)  # Adam's corrected first step: α·|g|/(|g| + ε)
    assert [abs(s.update_by_torch) for s in steps] == pytest.approx(closed_form.tolist(), rel=1e-4)
    assert float(g.max() / g.min()) > 50  # measured: 1.3e-3 / 6.9e-6 ≈ 190
    assert all(0.99 * lr <= abs(s.update_by_torch) <= 1.0001 * lr for s in steps)  # measured ≥ 0.9986 α


def test_adam_first_step_of_most_weights_of_the_trained_model_is_well_below_lr(trained, mnist):
    """Lesson 8's intro: a step is about α only while |g| ≫ ε; on the trained model most gradients are not."""
    grads = _first_batch_gradients(trained, mnist)
    g = torch.cat([v.flatten() for v in grads.values()]).abs()
    step = g / (g + 1e-8)  # |Δw| / α of Adam's corrected first step (closed form)
    near_lr = float((step > 0.9).float().mean())
    assert 0.2 < near_lr < 0.5  # measured 0.43: more than half of the 582,218 weights move less than 0.9 α
    assert float((grads["fc1.weight"] == 0).float().mean()) > 0.1  # silent inputs or units: exactly zero
    fc2 = grads["fc2.bias"].abs()
    assert float((fc2 / (fc2 + 1e-8)).min()) > 0.99  # the table's parameter is one of those with |g| ≫ ε


def test_eval_mode_batch_norm_of_the_trained_model_uses_running_statistics_close_to_a_test_batch(trained, mnist):
    """Lesson 11: eval mode uses the running statistics, so one image's output does not depend on its batch;
    on the trained model those statistics are close to a test batch's, so the output is near mean β, std |γ|."""
    bn = trained.batch1
    with torch.no_grad():
        x = trained.conv1(to_float(mnist.test_images[:64]))  # (64, 32, 24, 24), the page's default batch
        by_hand = (x - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
        by_hand = by_hand * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
        evaluator = copy.deepcopy(bn).eval()
        assert torch.allclose(evaluator(x), by_hand, atol=1e-5)
        assert float((evaluator(x[:1]) - evaluator(x)[:1]).abs().max()) == 0.0  # alone or in the batch: the same
        trainer = copy.deepcopy(bn).train()
        assert float((trainer(x[:1]) - trainer(x)[:1]).abs().max()) > 0.5  # measured 1.78
    batch_mean, batch_std = x.mean((0, 2, 3)), x.std((0, 2, 3), unbiased=False)
    assert float(((batch_mean - bn.running_mean).abs() / batch_std).max()) < 0.15  # measured 0.085
    out_mean, out_std = by_hand.mean((0, 2, 3)), by_hand.std((0, 2, 3), unbiased=False)
    assert float((out_mean - bn.bias).abs().max()) < 0.15  # measured 0.099
    ratio = out_std / bn.weight.abs()
    assert 0.85 < float(ratio.min()) and float(ratio.max()) < 1.15  # measured 0.90 to 1.06
