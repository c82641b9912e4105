"""Lessons 1-7 core: every hand-computed number is checked against torch's own implementation."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simplecnn.data import load_dataset
from simplecnn.lessons import activations_losses as al
from simplecnn.lessons import convolution as cv
from simplecnn.lessons import optim_paths as op
from simplecnn.lessons import tensors_fc as tf
from simplecnn.model import SimpleCNN


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("mnist")


@pytest.fixture(scope="module")
def digit_float(dataset):
    image, _ = tf.digit(dataset, 7)
    return tf.model_view(image)[0, 0].double()  # (28, 28) in [0, 1]


# -- lesson 1: tensors -----------------------------------------------------------------------------
def test_model_view_is_bytes_over_255(dataset):
    image, label = tf.digit(dataset, 3, split="train")
    assert image.dtype == torch.uint8 and label == int(dataset.train_labels[3])
    x = tf.model_view(image)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0], image.float() / 255.0)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_first_batch_and_shapes_conv1_accepts(dataset):
    images, labels = tf.first_batch(dataset, 16)
    assert images.shape == (16, 1, 28, 28) and labels.shape == (16,)
    assert torch.equal(labels, dataset.train_labels[:16])
    results = tf.try_shapes(SimpleCNN().conv1, [(16, 1, 28, 28), (16, 28, 28), (16, 784)])
    assert results[0][1] == (16, 32, 24, 24)
    assert results[1][1] is None and results[2][1] is None  # 16 "channels" / a flat vector are refused
    assert results[1][2]


# -- lesson 2: one neuron ------------------------------------------------------------------------
@pytest.mark.parametrize("name", al.FC_ACTIVATIONS)
def test_neuron_steps_equal_nn_linear(name):
    rng = np.random.default_rng(1)
    for _ in range(5):
        x, w, b = rng.normal(size=4), rng.normal(size=4), float(rng.normal())
        steps = tf.neuron_steps(x, w, b, name, slope=0.1)
        assert steps.running_sums[-1] == pytest.approx(float(np.dot(w, x)))
        assert steps.pre_activation == pytest.approx(float(np.dot(w, x)) + b)
        assert steps.output == pytest.approx(tf.neuron_with_linear(x, w, b, name, slope=0.1), abs=1e-12)


def test_linear_layers_read_from_model():
    rows = {r["layer"]: r for r in tf.linear_layers(SimpleCNN())}
    assert rows["fc1"]["weight shape"] == (512, 1024) and rows["fc1"]["parameters"] == 1024 * 512 + 512
    assert rows["fc2"]["weight shape"] == (10, 512) and rows["fc2"]["parameters"] == 512 * 10 + 10


def test_logit_as_neuron_matches_model(dataset):
    torch.manual_seed(0)
    model = SimpleCNN().eval()
    image, _ = tf.digit(dataset, 0)
    for cls in (0, 4, 9):
        result = tf.logit_as_neuron(model, image, cls)
        assert result.steps.pre_activation == pytest.approx(result.model_logit, abs=1e-4)


# -- lesson 3: convolution -----------------------------------------------------------------------
def test_conv_step_equals_conv2d_single_channel(digit_float):
    gen = torch.Generator().manual_seed(0)
    for trial in range(4):
        kernel = torch.randn(5, 5, generator=gen, dtype=torch.float64)
        bias = float(torch.randn(1, generator=gen))
        ref = F.conv2d(digit_float[None, None], kernel[None, None], torch.tensor([bias], dtype=torch.float64))[0, 0]
        assert cv.conv_output_map(digit_float, kernel, bias) == pytest.approx(ref.numpy(), abs=1e-5)
        for row, col in [(0, 0), (23, 23), (5, 17), (12, 12), (trial, 20 - trial)]:
            step = cv.conv_step(digit_float, kernel, bias, row, col)
            assert step.patch.shape == (1, 5, 5)
            assert np.array_equal(step.patch[0], digit_float[row:row + 5, col:col + 5].numpy())
            assert step.output == pytest.approx(float(ref[row, col]), abs=1e-10)


def test_conv_step_multichannel_stride_padding_dilation():
    gen = torch.Generator().manual_seed(1)
    image = torch.randn(3, 11, 13, generator=gen, dtype=torch.float64)
    kernel = torch.randn(3, 3, 3, generator=gen, dtype=torch.float64)
    for stride, padding, dilation in [(1, 0, 1), (2, 1, 1), (1, 2, 2), (3, 1, 2)]:
        ref = F.conv2d(image[None], kernel[None], torch.tensor([0.5], dtype=torch.float64),
                       stride=stride, padding=padding, dilation=dilation)[0, 0]
        for row, col in itertools.product(range(ref.shape[0]), range(ref.shape[1])):
            step = cv.conv_step(image, kernel, 0.5, row, col, stride, padding, dilation)
            assert step.output == pytest.approx(float(ref[row, col]), abs=1e-10)
        # the per-channel sums are three single-channel convolutions
        per_channel = [F.conv2d(image[c][None, None], kernel[c][None, None], stride=stride, padding=padding,
                                dilation=dilation)[0, 0, 0, 0] for c in range(3)]
        step = cv.conv_step(image, kernel, 0.5, 0, 0, stride, padding, dilation)
        assert step.channel_sums == pytest.approx([float(v) for v in per_channel], abs=1e-10)
    with pytest.raises(ValueError):
        cv.conv_step(image, kernel, 0.0, 9, 0)  # 11 - 3 + 1 = 9 rows: row 9 does not exist


def test_conv_step_on_real_conv2_of_model(dataset):
    torch.manual_seed(2)
    model = SimpleCNN().eval()
    image, _ = tf.digit(dataset, 5)
    maps = cv.live_feature_maps(model, image)
    kernel, bias = cv.layer_kernel(model, "conv2", 11)  # (32, 5, 5)
    for row, col in [(0, 0), (3, 6), (7, 7)]:
        step = cv.conv_step(maps["dropout1"], kernel, bias, row, col)
        assert len(step.channel_sums) == 32
        assert step.output == pytest.approx(float(maps["conv2"][11, row, col]), abs=1e-4)


def test_output_size_matches_torch_for_many_settings():
    def zeros(n):  # float64: same shapes, and it skips oneDNN's slow per-shape setup
        return torch.zeros(1, 1, n, n, dtype=torch.float64)

    checked = 0
    for size, kernel, padding, stride, dilation in itertools.product(
            (5, 12, 24, 28, 31), (1, 2, 3, 5, 7), (0, 1, 2, 3), (1, 2, 3), (1, 2)):
        formula = cv.output_size(size, kernel, padding, stride, dilation)
        conv = F.conv2d(zeros(size), zeros(kernel), stride=stride,
                        padding=padding, dilation=dilation) if formula >= 1 else None
        if conv is None:
            with pytest.raises(RuntimeError):
                F.conv2d(zeros(size), zeros(kernel), stride=stride, padding=padding, dilation=dilation)
            assert cv.torch_output_size(size, kernel, padding, stride, dilation)[0] is None
            continue
        assert conv.shape[-2:] == (formula, formula)
        assert cv.torch_output_size(size, kernel, padding, stride, dilation) == (formula, "")
        if 2 * padding <= kernel:  # torch's pooling rule: padding at most half the kernel
            pooled = F.max_pool2d(zeros(size), kernel, stride, padding, dilation)
            assert pooled.shape[-1] == formula
            assert cv.torch_output_size(size, kernel, padding, stride, dilation, op="max") == (formula, "")
            if dilation == 1:
                assert F.avg_pool2d(zeros(size), kernel, stride, padding).shape[-1] == formula
        checked += 1
    assert checked > 500


def test_guide_formula_is_the_dilation_one_case():
    for size, kernel, padding, stride in itertools.product(range(5, 30, 3), (2, 3, 5), (0, 1, 2), (1, 2, 3)):
        assert cv.output_size(size, kernel, padding, stride) == (size - kernel + 2 * padding) // stride + 1
    assert cv.output_size(28, 5) == 24 and cv.output_size(24, 2, 0, 2) == 12  # SimpleCNN's conv1, max1


def test_preset_kernels_act_as_named(digit_float):
    presets = cv.preset_kernels()
    assert set(presets) >= {"Edge (horizontal)", "Edge (vertical)", "Blur (Gaussian)", "Sharpen", "Identity"}
    identity = cv.conv_output_map(digit_float, presets["Identity"])
    assert identity == pytest.approx(digit_float[2:-2, 2:-2].numpy(), abs=1e-6)
    assert presets["Blur (Gaussian)"].sum() == pytest.approx(1.0)
    assert presets["Edge (horizontal)"].sum() == pytest.approx(0.0, abs=1e-12)
    assert np.allclose(presets["Edge (vertical)"], presets["Edge (horizontal)"].T)


# -- lesson 4: pooling ----------------------------------------------------------------------------
def test_pool2d_equals_torch():
    gen = torch.Generator().manual_seed(3)
    fmap = torch.randn(4, 24, 24, generator=gen, dtype=torch.float64)
    for kernel, stride in itertools.product((1, 2, 3, 4, 5), (1, 2, 3)):
        assert cv.pool2d(fmap, kernel, stride, "max") == pytest.approx(
            F.max_pool2d(fmap[None], kernel, stride)[0].numpy())
        assert cv.pool2d(fmap[1], kernel, stride, "avg") == pytest.approx(
            F.avg_pool2d(fmap[1][None, None], kernel, stride)[0, 0].numpy())
        window = cv.pool_window(fmap[2], kernel, stride, 1, 2)
        assert window.maximum == pytest.approx(float(F.max_pool2d(fmap[2][None, None], kernel, stride)[0, 0, 1, 2]))
        assert window.average == pytest.approx(float(F.avg_pool2d(fmap[2][None, None], kernel, stride)[0, 0, 1, 2]))


def test_pool2d_reproduces_simplecnn_max1(dataset):
    torch.manual_seed(4)
    model = SimpleCNN().eval()
    maps = cv.live_feature_maps(model, tf.digit(dataset, 9)[0])
    assert cv.pool2d(maps["relu1"], 2, 2, "max") == pytest.approx(maps["max1"], abs=1e-7)


# -- lesson 5: activations and softmax -------------------------------------------------------------
def test_activation_derivatives_match_formulas():
    x = np.linspace(-4, 4, 81)
    x = x[np.abs(x) > 1e-9]  # ReLU-type kinks at 0 have no formula
    s, ds = al.activation_and_derivative("Sigmoid", x)
    assert s == pytest.approx(1 / (1 + np.exp(-x))) and ds == pytest.approx(s * (1 - s))
    t, dt = al.activation_and_derivative("Tanh", x)
    assert t == pytest.approx(np.tanh(x)) and dt == pytest.approx(1 - np.tanh(x) ** 2)
    r, dr = al.activation_and_derivative("ReLU", x)
    assert r == pytest.approx(np.maximum(0, x)) and dr == pytest.approx((x > 0).astype(float))
    lr, dlr = al.activation_and_derivative("Leaky ReLU", x, slope=0.2)
    assert lr == pytest.approx(np.where(x > 0, x, 0.2 * x)) and dlr == pytest.approx(np.where(x > 0, 1.0, 0.2))


@pytest.mark.parametrize("temperature", [0.25, 1.0, 3.0])
def test_softmax_with_temperature_equals_torch(temperature):
    logits = torch.tensor([[2.0, -1.0, 0.5, 7.0], [100.0, 99.0, -50.0, 0.0]], dtype=torch.float64)
    ours = al.softmax_with_temperature(logits.numpy(), temperature)
    assert ours == pytest.approx(torch.softmax(logits / temperature, dim=-1).numpy(), abs=1e-12)
    assert ours.sum(axis=-1) == pytest.approx([1.0, 1.0])


# -- lesson 6: losses ---------------------------------------------------------------------------------
def _autograd(fn, pred):
    p = pred.clone().requires_grad_(True)
    value = fn(p)
    value.backward()
    return float(value.detach()), p.grad.numpy()


def test_regression_losses_equal_torch():
    gen = torch.Generator().manual_seed(5)
    pred = torch.randn(7, generator=gen, dtype=torch.float64)
    target = torch.randn(7, generator=gen, dtype=torch.float64)
    for name, reference in [("MSE", lambda p: F.mse_loss(p, target)), ("MAE", lambda p: F.l1_loss(p, target)),
                            ("MBE", lambda p: (p - target).sum() / len(target))]:
        value, grad = al.loss_and_gradient(name, pred.numpy(), target.numpy())
        ref_value, ref_grad = _autograd(reference, pred)
        assert value == pytest.approx(ref_value) and grad == pytest.approx(ref_grad)
    # the analytic gradients, too
    _, grad = al.loss_and_gradient("MSE", pred.numpy(), target.numpy())
    assert grad == pytest.approx((2 * (pred - target) / 7).numpy())
    _, grad = al.loss_and_gradient("MBE", pred.numpy(), target.numpy())
    assert grad == pytest.approx(np.full(7, 1 / 7))


def test_hinge_is_num_classes_times_multi_margin_loss():
    gen = torch.Generator().manual_seed(6)
    scores = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 3, 1, 1, 2])
    value, grad = al.loss_and_gradient("Hinge", scores.numpy(), labels.numpy())
    ref_value, ref_grad = _autograd(lambda s: 4 * F.multi_margin_loss(s, labels), scores)
    assert value == pytest.approx(ref_value) and grad == pytest.approx(ref_grad)
    # and by hand for one sample: sum over j != y of max(0, s_j - s_y + 1)
    s, y = scores[1].numpy(), 3
    by_hand = sum(max(0.0, s[j] - s[y] + 1) for j in range(4) if j != y)
    assert float(al.hinge(scores[1:2], labels[1:2])) == pytest.approx(by_hand)


def test_cross_entropy_equals_torch():
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(6, 10, generator=gen, dtype=torch.float64) * 5
    labels = torch.randint(0, 10, (6,), generator=gen)
    value, grad = al.loss_and_gradient("Cross-Entropy", logits.numpy(), labels.numpy())
    ref_value, ref_grad = _autograd(lambda z: F.cross_entropy(z, labels), logits)
    assert value == pytest.approx(ref_value) and grad == pytest.approx(ref_grad)
    # gradient of CE w.r.t. logits is (softmax - one_hot) / N
    expected = (torch.softmax(logits, 1) - F.one_hot(labels, 10)) / 6
    assert grad == pytest.approx(expected.numpy())


# -- lesson 7: optimizer paths ---------------------------------------------------------------------------
def _grad(surface, point):
    p = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    surface(p).backward()
    return p.grad.numpy()


@pytest.mark.parametrize("surface", list(op.SURFACES))
def test_first_steps_match_hand_written_updates(surface):
    s = op.SURFACES[surface]
    start, lr, b1, b2 = np.array(s.start), 0.01, 0.8, 0.99
    g0 = _grad(s, start)
    gd = op.optimizer_path("Batch GD", s, start, lr, steps=2)
    assert gd[1] == pytest.approx(start - lr * g0)
    assert gd[2] == pytest.approx(gd[1] - lr * _grad(s, gd[1]))
    mom = op.optimizer_path("Momentum", s, start, lr, beta1=b1, steps=2)
    v1 = g0
    assert mom[1] == pytest.approx(start - lr * v1)
    v2 = b1 * v1 + _grad(s, mom[1])  # torch's heavy-ball form: v = beta v + g
    assert mom[2] == pytest.approx(mom[1] - lr * v2)
    adam = op.optimizer_path("Adam", s, start, lr, b1, b2, steps=2)
    m, v, theta = np.zeros(2), np.zeros(2), start.copy()
    for t in (1, 2):
        g = _grad(s, theta)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        theta = theta - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + 1e-8)
        assert adam[t] == pytest.approx(theta)


def _hand_written_path(name, s, start, lr, b1, b2, steps, momentum):
    """Each optimizer's update rule as the lesson writes it, in numpy (torch only for the surface's gradient)."""
    w, state, path = np.array(start, dtype=np.float64), {}, [np.array(start, dtype=np.float64)]
    for t in range(1, steps + 1):
        g = _grad(s, w)
        if name in ("Batch GD", "SGD"):
            w = w - lr * g
        elif name == "Momentum":
            state["v"] = momentum * state.get("v", 0.0) + g
            w = w - lr * state["v"]
        elif name == "Adagrad":
            state["G"] = state.get("G", 0.0) + g ** 2
            w = w - lr * g / (np.sqrt(state["G"]) + 1e-10)
        elif name == "RMSProp":
            state["s"] = b2 * state.get("s", 0.0) + (1 - b2) * g ** 2
            w = w - lr * g / (np.sqrt(state["s"]) + 1e-8)
        elif name == "Adam":
            state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
            state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g ** 2
            w = w - lr * (state["m"] / (1 - b1 ** t)) / (np.sqrt(state["v"] / (1 - b2 ** t)) + 1e-8)
        path.append(w)
    return np.array(path)


@pytest.mark.parametrize("name", op.OPTIMIZERS)
def test_paths_follow_the_update_rules_the_page_shows(name):
    s = op.SURFACES["Narrow ravine"]
    path = op.optimizer_path(name, s, s.start, 0.05, 0.85, 0.98, steps=25, momentum=0.7)
    assert path == pytest.approx(_hand_written_path(name, s, s.start, 0.05, 0.85, 0.98, 25, 0.7), rel=1e-9, abs=1e-12)


def test_noisy_sgd_is_seeded_and_differs_from_batch_gd():
    s = op.SURFACES["Bowl"]
    a = op.optimizer_path("SGD", s, s.start, 0.1, steps=30, noise=1.0, seed=3)
    b = op.optimizer_path("SGD", s, s.start, 0.1, steps=30, noise=1.0, seed=3)
    c = op.optimizer_path("SGD", s, s.start, 0.1, steps=30, noise=1.0, seed=4)
    gd = op.optimizer_path("Batch GD", s, s.start, 0.1, steps=30)
    assert np.array_equal(a, b) and not np.allclose(a, c) and not np.allclose(a, gd)


def test_divergence_is_reported():
    s = op.SURFACES["Rosenbrock banana"]
    paths = op.all_paths(s, s.start, lr=0.05, beta1=0.9, beta2=0.999, steps=50, noise=0.0)
    rows = {r["optimizer"]: r for r in op.final_losses(s, paths)}
    assert rows["Batch GD"]["status"].startswith("diverged") and np.isnan(rows["Batch GD"]["final loss"])
    assert rows["Adam"]["status"] == "ok"
    x, y = paths["Adam"][-1]
    assert rows["Adam"]["final loss"] == pytest.approx((1 - x) ** 2 + 100 * (y - x ** 2) ** 2)  # Rosenbrock, by hand


def test_surface_grid_matches_surface():
    s = op.SURFACES["Saddle"]
    xs, ys, z = op.surface_grid(s, 15)
    assert z.shape == (15, 15)
    assert z[4, 9] == pytest.approx(float(s(torch.tensor([xs[9], ys[4]], dtype=torch.float64))))
