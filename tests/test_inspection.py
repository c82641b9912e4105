"""Inspection: stage outputs checked against torch's own ops, and proof that inspecting changes nothing."""
import copy
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simplecnn.data import load_dataset, to_float
from simplecnn.inspection import (ALL_KEYS, activations, capture_activations, conv_filters,
                                  first_layer_filters, saliency)
from simplecnn.model import STAGES, FastDropout, SimpleCNN


@pytest.fixture(scope="module")
def images():
    ds = load_dataset("mnist")
    return to_float(ds.test_images[:64])  # (64, 1, 28, 28)


@pytest.fixture()
def model():
    """A randomly initialised model whose BatchNorm layers hold non-trivial statistics and affine terms."""
    torch.manual_seed(0)
    m = SimpleCNN()
    with torch.no_grad():
        for bn in (m.batch1, m.batch2):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.num_batches_tracked.fill_(7)
    return m.eval()


EXPECTED_SHAPES = {
    "input": (1, 1, 28, 28), "conv1": (1, 32, 24, 24), "batch1": (1, 32, 24, 24),
    "relu1": (1, 32, 24, 24), "max1": (1, 32, 12, 12), "dropout1": (1, 32, 12, 12),
    "conv2": (1, 64, 8, 8), "batch2": (1, 64, 8, 8), "relu2": (1, 64, 8, 8),
    "max2": (1, 64, 4, 4), "dropout2": (1, 64, 4, 4), "flatten": (1, 1024),
    "fc1": (1, 512), "relu3": (1, 512), "fc2": (1, 10), "logits": (1, 10), "softmax": (1, 10),
}


def test_shapes_of_every_stage_for_one_image(model, images):
    acts = activations(model, images[:1])
    assert tuple(acts) == ALL_KEYS
    assert {k: tuple(v.shape) for k, v in acts.items()} == EXPECTED_SHAPES
    assert all(v.device.type == "cpu" and not v.requires_grad for v in acts.values())


def test_outputs_match_torch_reference(model, images):
    x = images[:8]
    acts = activations(model, x)
    with torch.no_grad():
        ref_conv1 = F.conv2d(x, model.conv1.weight, model.conv1.bias)
        ref_bn = F.batch_norm(ref_conv1, model.batch1.running_mean, model.batch1.running_var,
                              model.batch1.weight, model.batch1.bias, training=False,
                              eps=model.batch1.eps)
        ref_logits = model(x)
    torch.testing.assert_close(acts["conv1"], ref_conv1)
    torch.testing.assert_close(acts["batch1"], ref_bn)
    torch.testing.assert_close(acts["relu1"], ref_bn.clamp_min(0))
    torch.testing.assert_close(acts["max1"], F.max_pool2d(acts["relu1"], 2))
    torch.testing.assert_close(acts["flatten"], acts["dropout2"].reshape(8, -1))
    torch.testing.assert_close(acts["logits"], ref_logits)
    torch.testing.assert_close(acts["fc2"], ref_logits)
    torch.testing.assert_close(acts["softmax"].sum(1), torch.ones(8))
    torch.testing.assert_close(acts["softmax"], ref_logits.softmax(1))


def test_eval_mode_dropout_passes_input_through(model, images):
    acts = activations(model, images[:4], mode="eval")
    assert torch.equal(acts["dropout1"], acts["max1"])
    assert torch.equal(acts["dropout2"], acts["max2"])


def test_fast_dropout_drops_fraction_p_and_rescales_the_rest():
    torch.manual_seed(1)
    p = 0.45
    layer = FastDropout(p=p).train()
    x = torch.rand(1_000_000) + 0.5  # strictly positive, so a zero means "dropped"
    y = layer(x)
    dropped = y == 0
    assert abs(dropped.float().mean().item() - p) < 0.005
    torch.testing.assert_close(y[~dropped], x[~dropped] / (1 - p))


def test_train_mode_inspection_shows_dropout_and_batch_statistics(model, images):
    acts = activations(model, images, mode="train", seed=3)
    before, after = acts["max1"], acts["dropout1"]  # (64, 32, 12, 12)
    live = before > 0
    dropped = (after == 0) & live
    assert abs(dropped.sum().item() / live.sum().item() - model.dropout1.p) < 0.01
    kept = live & ~dropped
    torch.testing.assert_close(after[kept], before[kept] / (1 - model.dropout1.p))
    # BatchNorm normalised with this batch's own statistics: per-channel mean = bias, std = weight
    bn = acts["batch1"]
    torch.testing.assert_close(bn.mean(dim=(0, 2, 3)), model.batch1.bias.detach(), atol=1e-4, rtol=0)
    torch.testing.assert_close(bn.std(dim=(0, 2, 3), unbiased=False), model.batch1.weight.detach(),
                               atol=1e-3, rtol=1e-3)


def test_train_mode_on_a_single_image_is_defined(model, images):
    acts = activations(model, images[:1], mode="train", seed=0)
    assert all(torch.isfinite(v).all() for v in acts.values())
    torch.testing.assert_close(acts["softmax"].sum(), torch.tensor(1.0))


def test_seed_makes_dropout_masks_repeatable(model, images):
    a = activations(model, images[:2], mode="train", seed=5)
    b = activations(model, images[:2], mode="train", seed=5)
    c = activations(model, images[:2], mode="train", seed=6)
    assert torch.equal(a["dropout1"], b["dropout1"])
    assert not torch.equal(a["dropout1"], c["dropout1"])


def test_batchnorm_running_statistics_untouched(model, images):
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    activations(model, images, mode="train", seed=0)
    activations(model, images[:1], mode="eval")
    saliency(model, images[:1])
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_training_random_stream_is_not_advanced(model, images):
    """Inspecting between two training steps must not change the masks training would draw next."""
    model.train()
    model(images[:2])  # creates the dropout layers' private generators
    twin = copy.deepcopy(model)
    torch_state = torch.get_rng_state()
    activations(model, images[:2], mode="train", seed=11)
    activations(model, images[:2], mode="train")
    assert torch.equal(torch.get_rng_state(), torch_state)
    torch.testing.assert_close(model(images[:4]), twin(images[:4]), rtol=0, atol=0)


@pytest.mark.parametrize("start_training", [True, False])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_mode_restored(model, images, start_training, mode):
    model.train(start_training)
    activations(model, images[:1], mode=mode, seed=0)
    assert all(m.training == start_training for m in model.modules())
    saliency(model, images[:1])
    assert all(m.training == start_training for m in model.modules())


def test_hooks_removed_even_when_forward_raises(model):
    with pytest.raises(RuntimeError):
        with capture_activations(model) as captured:
            model(torch.zeros(1, 3, 28, 28))  # wrong channel count: conv1 raises
    assert captured == {}
    for name in STAGES:
        assert len(getattr(model, name)._forward_hooks) == 0, name


def test_hooks_removed_after_normal_use(model, images):
    with capture_activations(model, stages=("conv1", "fc1")) as captured:
        model(images[:1])
    assert set(captured) == {"conv1", "fc1"}
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_capture_ignores_forwards_on_other_threads(model, images):
    with capture_activations(model) as captured:
        worker = threading.Thread(target=lambda: model(images[:2]))
        worker.start()
        worker.join()
        assert captured == {}
        model(images[:1])
    assert captured["conv1"].shape == (1, 32, 24, 24)


def test_accepts_uint8_and_channels_last_models(model):
    raw = load_dataset("mnist").test_images[0]  # (28, 28) uint8
    reference = activations(model, to_float(raw))
    from_uint8 = activations(copy.deepcopy(model).to(memory_format=torch.channels_last), raw)
    for key in ALL_KEYS:
        torch.testing.assert_close(from_uint8[key], reference[key])
        assert from_uint8[key].is_contiguous()


def test_model_without_batch_norm():
    torch.manual_seed(0)
    m = SimpleCNN(batch_norm=False).eval()
    acts = activations(m, torch.rand(1, 1, 28, 28))
    assert torch.equal(acts["batch1"], acts["conv1"])


def test_conv_filters(model):
    w1 = conv_filters(model)
    assert w1.shape == (32, 1, 5, 5) and w1.dtype == np.float32
    np.testing.assert_array_equal(w1, model.conv1.weight.detach().numpy())
    assert conv_filters(model, "conv2").shape == (64, 32, 5, 5)
    np.testing.assert_array_equal(first_layer_filters(model), w1[:, 0])
    w1[:] = 0  # a copy: editing it cannot touch the model
    assert model.conv1.weight.abs().sum() > 0
    with pytest.raises(ValueError):
        conv_filters(model, "fc1")


def test_saliency_matches_manual_autograd(model, images):
    x = images[3:4]
    for p in model.parameters():
        p.grad = None
    sal = saliency(model, x)
    assert sal.shape == (28, 28)
    assert not x.requires_grad and x.grad is None  # the caller's tensor is left alone
    pixels = x.clone().requires_grad_(True)
    logits = model.eval()(pixels)
    predicted = int(logits.argmax())
    (grad,) = torch.autograd.grad(logits[0, predicted], pixels)
    np.testing.assert_allclose(sal, grad[0, 0].abs().numpy(), rtol=1e-5, atol=1e-8)
    assert all(p.grad is None for p in model.parameters())
    # an explicit target differs from the predicted class's map
    other = (predicted + 1) % 10
    (grad_other,) = torch.autograd.grad(model(pixels)[0, other], pixels)
    np.testing.assert_allclose(saliency(model, x, target=other), grad_other[0, 0].abs().numpy(),
                               rtol=1e-5, atol=1e-8)


def test_saliency_works_inside_no_grad(model, images):
    with torch.no_grad():
        sal = saliency(model, images[0])
    assert sal.shape == (28, 28) and sal.max() > 0


def test_dropout_mode_changes_only_dropout():
    import torch as _torch
    from simplecnn.inspection import activations as _activations
    from simplecnn.model import SimpleCNN as _SimpleCNN
    _torch.manual_seed(0)
    model = _SimpleCNN().eval()
    x = _torch.rand(1, 1, 28, 28)
    eval_acts = _activations(model, x, mode="eval")
    drop_acts = _activations(model, x, mode="dropout", seed=3)
    for stage in ("conv1", "batch1", "relu1", "max1"):
        assert _torch.equal(eval_acts[stage], drop_acts[stage])  # batch norm kept its running statistics
    kept = drop_acts["dropout1"] != 0
    _torch.testing.assert_close(drop_acts["dropout1"][kept], eval_acts["max1"][kept] / (1 - model.dropout1.p))
    assert (drop_acts["dropout1"] == 0).float().mean() > 0.3
    assert not model.training
