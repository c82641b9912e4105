"""Lesson 9's backward rules through conv / batch norm / ReLU / max-pool, checked against torch autograd."""
import copy

import pytest
import torch
from torch import nn

from simplecnn.data import to_float
from simplecnn.lessons import backprop_layers as bl
from simplecnn.model import SimpleCNN


def test_max_pool_backward_equals_autograd_including_ties():
    torch.manual_seed(0)
    x = torch.relu(torch.randn(3, 8, 8))  # many windows of zeros: ties go to the first maximum
    x[0, :2, :2] = 0.0
    xr = x.clone().requires_grad_(True)
    out = nn.functional.max_pool2d(xr.unsqueeze(0), 2, 2)[0]
    g = torch.randn_like(out)
    out.backward(g)
    hand = bl.max_pool_backward(x, g)
    assert torch.equal(hand, xr.grad)
    assert int((hand != 0).sum()) <= x.numel() // 4  # one input per window


def test_conv_weight_gradient_is_a_sum_over_positions():
    torch.manual_seed(1)
    image, g = torch.rand(28, 28, dtype=torch.float64), torch.randn(4, 24, 24, dtype=torch.float64)
    ref = torch.nn.grad.conv2d_weight(image.view(1, 1, 28, 28), (4, 1, 5, 5), g.unsqueeze(0))
    assert torch.allclose(bl.conv_weight_gradient(image, g, 5), ref, atol=1e-10)


@pytest.mark.parametrize("target", [None, 3])
def test_block1_gradients_equal_an_independent_autograd_pass(mnist, target):
    torch.manual_seed(2)
    model = SimpleCNN().eval()
    with torch.no_grad():
        model.batch1.running_var.uniform_(0.5, 2.0)
        model.batch1.weight.uniform_(0.5, 1.5)
    label = int(mnist.test_labels[4]) if target is None else target
    lg = bl.block1_gradients(model, mnist.test_images[4], label)
    work = copy.deepcopy(model)
    loss = nn.functional.cross_entropy(work(to_float(mnist.test_images[4:5])), torch.tensor([label]))
    loss.backward()
    assert lg.loss == pytest.approx(loss.item(), rel=1e-6)
    assert torch.allclose(lg.grad_weight["hand"], work.conv1.weight.grad, rtol=1e-4, atol=1e-7)
    assert torch.allclose(lg.grad_bias["hand"], work.conv1.bias.grad, rtol=1e-4, atol=1e-7)
    assert lg.routed_fraction() <= 0.25 and lg.relu_blocked() > 0
    assert all(p.grad is None for p in model.parameters())  # the model passed in is untouched


def test_block1_gradients_on_the_trained_model(bundled_path, mnist):
    """On the trained model, the hand rules still equal autograd, and the background sends nothing back."""
    from simplecnn.checkpoints import load_checkpoint

    trained = load_checkpoint(bundled_path)[0].eval()
    lg = bl.block1_gradients(trained, mnist.test_images[0], 3)  # a wrong class: a large loss
    diffs = lg.differences()
    assert lg.loss > 1.0
    assert all(diffs[k] <= 1e-4 * float(v["autograd"].abs().max()) + 1e-12 for k, v in (
        ("max-pool backward", lg.grad_relu_out), ("ReLU backward", lg.grad_relu_in),
        ("batch norm backward", lg.grad_conv_out), ("conv1 weight gradient", lg.grad_weight)))
    assert (lg.grad_relu_in["hand"][lg.relu_in <= 0] == 0).all()
