"""Lessons 8-14 core maths, each checked against torch's own implementation as the reference."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from simplecnn.data import load_dataset, to_float
from simplecnn.evaluation import predict_logits
from simplecnn.lessons import adam_table, backprop, dataset_stats, layer_walk, regularization
from simplecnn.model import FastDropout, SimpleCNN
from simplecnn.training import TrainConfig


@pytest.fixture(scope="module")
def ds():
    return load_dataset("mnist")


@pytest.fixture()
def model():
    """A random model with non-trivial BatchNorm statistics and affine terms (like a trained one)."""
    torch.manual_seed(0)
    m = SimpleCNN()
    with torch.no_grad():
        for bn in (m.batch1, m.batch2):
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.4, 2.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return m.eval()


# -- Adam ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lr,beta1,beta2,eps,k,theta0", [
    (0.1, 0.9, 0.999, 1e-8, 1.0, 0.0),
    (0.5, 0.0, 0.9, 1e-6, 100.0, -4.0),
    (0.01, 0.5, 0.99, 1e-1, 0.01, 10.0),
    (1.0, 0.99, 0.9999, 1.0, 10.0, 2.5),
])
def test_adam_table_equals_torch_adam_step_by_step(lr, beta1, beta2, eps, k, theta0):
    settings = adam_table.AdamSettings(lr, beta1, beta2, eps)
    bowl = adam_table.Bowl(k, 3.0)
    rows = adam_table.adam_by_hand(bowl, theta0, settings, steps=12)
    p = torch.tensor([theta0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
    for row in rows:
        assert row.theta == pytest.approx(float(p.detach()[0]), abs=1e-12)
        opt.zero_grad()
        bowl(p).sum().backward()
        assert row.grad == pytest.approx(float(p.grad[0]), abs=1e-12)
        opt.step()
        state = opt.state[p]
        assert row.m == pytest.approx(float(state["exp_avg"][0]), abs=1e-12)
        assert row.v == pytest.approx(float(state["exp_avg_sq"][0]), rel=1e-12, abs=1e-15)
        assert row.theta_next == pytest.approx(float(p.detach()[0]), abs=1e-12)
        assert row.m_hat == pytest.approx(row.m / (1 - beta1 ** row.t), rel=1e-12)
    check = adam_table.check_against_torch(rows, adam_table.torch_adam_thetas(bowl, theta0, settings, 12))
    assert check.matches and check.max_difference < 1e-9


def test_adam_first_step_is_about_lr_whatever_the_scale():
    settings = adam_table.AdamSettings(lr=0.05)
    sizes = adam_table.first_step_sizes((0.01, 1.0, 100.0), 0.0, settings)
    assert all(s == pytest.approx(0.05, rel=1e-5) for s in sizes.values())


@pytest.mark.parametrize("beta1,beta2,k", [(0.9, 0.999, 1.0), (0.5, 0.99, 100.0), (0.0, 0.9, 0.01)])
def test_adam_without_bias_correction_first_step_closed_form(beta1, beta2, k):
    """Step 1 without the correction is α·(1 − β₁)/√(1 − β₂) (|g| ≫ ε): m = (1 − β₁)g, v = (1 − β₂)g²."""
    settings = adam_table.AdamSettings(lr=0.2, beta1=beta1, beta2=beta2, eps=1e-12)
    closed_form = 0.2 * (1 - beta1) / (1 - beta2) ** 0.5
    cmp = adam_table.compare_bias_correction(adam_table.Bowl(k, 3.0), 0.0, settings, 6)
    assert cmp.without_correction[0] == pytest.approx(closed_form, rel=1e-9)
    assert cmp.with_correction[0] == pytest.approx(0.2, rel=1e-9)
    assert adam_table.uncorrected_first_step_ratio(settings) == pytest.approx(closed_form / 0.2)
    options = adam_table.bias_correction_options(settings)
    assert len({t for t, _ in options}) == len(options) >= 2
    assert adam_table.closest_option(options, closed_form / 0.2) == f"about {closed_form / 0.2:.3g}·α" \
        or closed_form == pytest.approx(0.2)


def test_adam_first_step_on_real_model_matches_torch(model, ds):
    before = copy.deepcopy(model.state_dict())
    settings = adam_table.AdamSettings(lr=1e-3)
    steps = adam_table.first_step_on_model(model, to_float(ds.train_images[:32]), ds.train_labels[:32], settings)
    assert len(steps) == 10
    for s in steps:
        assert s.update_by_hand == pytest.approx(s.update_by_torch, abs=2e-7)
        assert abs(s.update_by_torch) == pytest.approx(1e-3, rel=0.05)  # first step ~ α when |g| >> ε
        if abs(s.grad) > 1e-4:  # uncorrected: α·(1 − β₁)/√(1 − β₂)·sign(g) ≈ 3.16·α
            assert s.update_uncorrected == pytest.approx(np.sign(s.grad) * 1e-3 * 0.1 / 0.001 ** 0.5, rel=0.01)
    for name, t in model.state_dict().items():  # the model passed in is untouched
        assert torch.equal(t, before[name]), name


# -- backprop --------------------------------------------------------------------------------------
@pytest.mark.parametrize("x,w,b,t", [(1.5, 0.8, -0.2, 1.0), (-2.0, 3.0, 0.5, 0.0), (0.0, -1.0, 4.0, 0.3),
                                     (4.0, 2.0, -1.0, 0.99)])
def test_backprop_gradients_equal_autograd(x, w, b, t):
    tr = backprop.trace(x, w, b, t)
    xs = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ws = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bs = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    z = ws * xs + bs
    z.retain_grad()
    a = torch.sigmoid(z)
    a.retain_grad()
    loss = nn.functional.mse_loss(a, torch.tensor(t, dtype=torch.float64), reduction="sum")
    loss.backward()
    assert tr.loss == pytest.approx(loss.item(), abs=1e-15)
    for name, ref in (("x", xs), ("w", ws), ("b", bs), ("z", z), ("a", a)):
        assert tr.grads[name] == pytest.approx(float(ref.grad), abs=1e-14), name
    new_w, new_b, new_loss = backprop.gradient_step(tr, 0.1)
    assert new_w == pytest.approx(w - 0.1 * float(ws.grad)) and new_b == pytest.approx(b - 0.1 * float(bs.grad))


def test_fc2_bias_gradient_by_hand_equals_autograd(model, ds):
    g = backprop.model_gradients(model, to_float(ds.test_images[:50]), ds.test_labels[:50])
    with torch.no_grad():
        logits = model.eval()(to_float(ds.test_images[:50])).double().numpy()
    # closed form in NumPy, independent of the lesson's code: mean over the batch of softmax − one-hot
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    closed_form = (p - np.eye(10)[ds.test_labels[:50].numpy()]).mean(0)
    assert np.allclose(g.fc2_bias_autograd, closed_form, atol=1e-6)
    assert np.allclose(g.fc2_bias_by_hand, closed_form, atol=1e-6)
    assert set(g.norms) == {n for n, _ in model.named_parameters()}
    assert all(p.grad is None for p in model.parameters())  # the live model gets no gradients


# -- dropout ---------------------------------------------------------------------------------------
def _h(model, ds, index=0):
    with torch.no_grad():
        return model.max1(model.relu1(model.batch1(model.conv1(to_float(ds.test_images[index:index + 1])))))


@pytest.mark.parametrize("p,seed", [(0.45, 0), (0.2, 7), (0.8, 123)])
def test_dropout_view_equals_module_output_for_the_same_mask(model, ds, p, seed):
    h = _h(model, ds)  # (1, 32, 12, 12)
    view = regularization.dropout_view(model.dropout1, h, p, seed)
    reference = FastDropout(p).train()
    reference._rng = np.random.default_rng(seed)
    assert torch.equal(view.train_output, reference(h))
    assert torch.equal(view.train_output, h * view.scaled_mask)
    assert torch.equal(view.eval_output, h)
    kept = view.scaled_mask[view.keep]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)))
    assert view.kept_fraction == pytest.approx(1 - p, abs=0.05)
    assert regularization.dropout_view(model.dropout1, h, p, seed).scaled_mask.equal(view.scaled_mask)
    assert model.dropout1.p == 0.45 and "_rng" not in model.dropout1.__dict__  # live module untouched


def test_dropout_view_with_stock_nn_dropout(model, ds):
    h = _h(model, ds)
    view = regularization.dropout_view(nn.Dropout(0.3), h, 0.3, 5)
    assert torch.allclose(view.train_output, h * view.scaled_mask, atol=1e-6)
    values = view.scaled_mask.unique()
    assert len(values) == 2 and float(values[0]) == 0.0 and float(values[1]) == pytest.approx(1 / 0.7)


def test_monte_carlo_mean_converges_to_eval_output(model, ds):
    h = _h(model, ds)
    mc = regularization.monte_carlo_expectation(model.dropout1, h, 0.45, 0, counts=(1, 10, 100, 1000))
    assert mc.counts == [1, 10, 100, 1000]
    assert mc.mean_abs_error[-1] < mc.mean_abs_error[0] / 10
    assert torch.allclose(mc.average, h, atol=0.15 * float(h.abs().max()))
    mean_h = float(h.abs().double().mean())
    for k, measured, exact in zip(mc.counts, mc.mean_abs_error, mc.exact):
        # exact expected error from torch's own binomial distribution, not from the lesson's code
        binom = torch.distributions.Binomial(k, torch.tensor(0.55, dtype=torch.float64))
        s = torch.arange(k + 1, dtype=torch.float64)
        reference = mean_h * float((binom.log_prob(s).exp() * (s / (k * 0.55) - 1).abs()).sum())
        assert exact == pytest.approx(reference, rel=1e-9)
        assert measured == pytest.approx(reference, rel=0.1)
    assert regularization.values_seen_in_training(model.dropout1, 1.0, 0.45) == [0.0, pytest.approx(1 / 0.55, abs=1e-5)]


@pytest.mark.parametrize("p", [0.1, 0.35, 0.45])
def test_monte_carlo_approximation_is_only_asymptotic(p):
    """The 1/√K line is the normal approximation: off at K = 1 (exact 2p) for SimpleCNN's rates, right for large K."""
    assert regularization.exact_relative_error(p, 1) == pytest.approx(2 * p, rel=1e-12)
    approx = lambda k: (2 / np.pi) ** 0.5 * (p / (1 - p)) ** 0.5 / k ** 0.5  # noqa: E731
    assert abs(regularization.exact_relative_error(p, 1) / approx(1) - 1) > 0.1
    assert regularization.exact_relative_error(p, 1000) == pytest.approx(approx(1000), rel=0.03)
    assert regularization.exact_relative_error(0.0, 10) == 0.0


def test_two_dropout_conventions_differ_by_one_minus_p(model, ds):
    h = _h(model, ds)
    view = regularization.dropout_view(model.dropout1, h, 0.45, 3)
    conv = regularization.dropout_conventions(view)
    keep = (view.train_output != 0) | (h == 0)  # where h > 0, a kept unit is non-zero
    assert torch.allclose(conv.inverted_train, h * keep / 0.55, atol=1e-6)
    assert torch.allclose(conv.classic_train, h * keep, atol=1e-6)
    assert torch.equal(conv.inverted_eval, h)
    assert torch.allclose(conv.classic_eval, 0.55 * h)
    # each convention's expected training output is its inference output: average many masks
    masks = (torch.rand(4000, *h.shape[1:], generator=torch.Generator().manual_seed(0)) >= 0.45).float()
    classic_mean = (h * masks).mean(0)
    assert torch.allclose(classic_mean, conv.classic_eval[0], atol=0.05 * float(h.max()))


# -- batch norm ------------------------------------------------------------------------------------
def _reference_bn(bn, gamma, beta):
    ref = nn.BatchNorm2d(bn.num_features)
    ref.load_state_dict(bn.state_dict())
    with torch.no_grad():
        ref.weight.copy_(gamma)
        ref.bias.copy_(beta)
    return ref


def test_batch_norm_view_equals_nn_batchnorm_in_both_modes(model, ds):
    saved = {k: v.clone() for k, v in model.batch1.state_dict().items()}
    with torch.no_grad():
        x = model.conv1(to_float(ds.test_images[:40]))  # (40, 32, 24, 24)
    gamma = regularization.with_channel(model.batch1.weight, 3, 2.5)
    beta = regularization.with_channel(model.batch1.bias, 3, -1.25)
    for g, b in ((None, None), (gamma, beta)):
        view = regularization.batch_norm_view(model.batch1, x, gamma=g, beta=b)
        ref = _reference_bn(model.batch1, view.gamma, view.beta)
        with torch.no_grad():
            assert torch.allclose(view.y_eval, ref.eval()(x), atol=1e-5)
            assert torch.allclose(view.y_train, ref.train()(x), atol=1e-5)
        assert torch.allclose(view.running_mean_after, ref.running_mean, atol=1e-6)
        assert torch.allclose(view.running_var_after, ref.running_var, atol=1e-6)
        assert view.max_difference() < 1e-4
    # train mode: channel 3 has mean β and std |γ| (ε makes it a hair smaller)
    assert float(view.y_train[:, 3].mean()) == pytest.approx(-1.25, abs=1e-4)
    assert float(view.y_train[:, 3].std(unbiased=False)) == pytest.approx(2.5, rel=1e-3)
    assert float(view.gamma[3]) == 2.5 and float(view.gamma[2]) == pytest.approx(model.batch1.weight[2].item())
    for k, v in model.batch1.state_dict().items():  # the live module's statistics are unchanged
        assert torch.equal(v, saved[k]), k


def test_alone_vs_in_batch(model, ds):
    with torch.no_grad():
        x = model.conv1(to_float(ds.test_images[:16]))
    saved = model.batch1.running_mean.clone()
    dep = regularization.alone_vs_in_batch(model.batch1, x, 0)
    assert dep.eval_mode < 1e-5 < dep.train_mode
    assert torch.equal(model.batch1.running_mean, saved)


# -- overfitting -----------------------------------------------------------------------------------
def test_train_tiny_records_both_splits(ds):
    cfg = TrainConfig(subset=60, validation_split=0.5, epochs=2, batch_size=30, dropout1=0.0, dropout2=0.0,
                      batch_norm=False, log_every=1)
    seen = []
    run = regularization.train_tiny("plain", cfg, ds, lambda frac, text: seen.append(frac))
    assert run.epochs == [1, 2] and run.train_images == 30 and run.val_images == 30
    assert len(run.train_loss) == len(run.val_loss) == 2
    assert all(np.isfinite(run.train_loss + run.val_loss))
    assert run.gap == pytest.approx(run.val_loss[-1] - run.train_loss[-1])
    assert seen and seen[-1] == pytest.approx(1.0)
    assert set(regularization.overfitting_variants()) >= {"no dropout, no batch norm", "dropout + batch norm (SimpleCNN)"}


# -- dataset ---------------------------------------------------------------------------------------
def test_class_counts_sum_and_match_bincount(ds):
    counts = dataset_stats.class_counts(ds.train_labels)
    assert sum(counts) == 60000
    assert counts == torch.bincount(ds.train_labels, minlength=10).tolist()
    assert dataset_stats.class_counts(ds.test_labels) == torch.bincount(ds.test_labels, minlength=10).tolist()
    best, n = dataset_stats.most_common_class(ds.train_labels)
    assert best == int(torch.bincount(ds.train_labels).argmax()) and n == max(counts)


def test_mean_images_and_samples(ds):
    means = dataset_stats.mean_images(ds.train_images, ds.train_labels)
    assert means.shape == (10, 28, 28)
    for c in (0, 7):
        ref = ds.train_images[ds.train_labels == c].double().mean(0) / 255
        assert np.allclose(means[c], ref.numpy(), atol=1e-6)
    idx = dataset_stats.sample_indices(ds.train_labels, 5, seed=3)
    assert idx.shape == (10, 5)
    assert (ds.train_labels[torch.from_numpy(idx)] == torch.arange(10).view(-1, 1)).all()
    tiles = dataset_stats.mosaic(ds.train_images, idx)
    assert np.array_equal(tiles[30:58, 60:88], ds.train_images[int(idx[1, 2])].numpy())


def test_pixel_stats_equal_torch(ds):
    images = ds.train_images[:3000]
    stats = dataset_stats.pixel_stats(images, chunk=700)
    x = images.double() / 255
    assert stats.mean == pytest.approx(float(x.mean()), abs=1e-12)
    assert stats.std == pytest.approx(float(x.std(unbiased=False)), abs=1e-10)
    assert stats.zero_fraction == pytest.approx(float((images == 0).double().mean()))


# -- layer by layer --------------------------------------------------------------------------------
def test_layer_table_total_and_formulas(model):
    rows = layer_walk.layer_rows(model)
    assert sum(r.parameters for r in rows) == 582_218 == model.num_parameters()
    for name, module in model.named_children():
        text, count = layer_walk.parameter_formula(module)
        assert count == sum(p.numel() for p in module.parameters()), name
    assert layer_walk.parameter_formula(model.conv1)[0] == "32·1·5·5 + 32"
    shapes = {r.name: r.output_shape for r in rows}
    assert shapes["max1"] == "(1, 32, 12, 12)" and shapes["flatten"] == "(1, 1024)"
    no_bn = SimpleCNN(batch_norm=False)
    assert sum(r.parameters for r in layer_walk.layer_rows(no_bn)) == 582_026


def test_forward_walk_matches_model(model, ds):
    walk = layer_walk.forward_walk(model, ds.test_images[5])
    ref = predict_logits(model, ds.test_images[5:6]).softmax(1)[0]
    assert np.allclose(walk.probabilities, ref.numpy(), atol=1e-6)
    assert walk.predicted == int(ref.argmax())
    top = layer_walk.strongest_channels(walk.stages["conv1"], 4)
    strength = walk.stages["conv1"][0].abs().mean(dim=(1, 2))
    assert strength[top[0]] == strength.max() and len(set(top)) == 4


def test_mistake_options_have_distinct_counts_and_the_maximum_first():
    confusion = torch.tensor([[50, 4, 4, 0], [1, 60, 2, 4], [0, 3, 70, 1], [2, 0, 0, 40]])
    assert dataset_stats.confusion_pairs(confusion, 3) == [(0, 1, 4), (0, 2, 4), (1, 3, 4)]  # ties: row order
    assert dataset_stats.mistake_options(confusion, 4) == [(0, 1, 4), (2, 1, 3), (1, 2, 2), (1, 0, 1)]
