"""Lesson 14's channel trail, receptive fields and flatten indices, against independent computations."""
import copy

import pytest
import torch
from torch import nn

from simplecnn.lessons import layer_walk as lw
from simplecnn.model import SimpleCNN


def _avg_pool_copy(model: SimpleCNN) -> SimpleCNN:
    """The same geometry with positive weights and average pooling: every pixel in a unit's receptive
    field then has a non-zero gradient and every pixel outside has none (max-pool would hide some)."""
    work = copy.deepcopy(model).eval()
    work.max1, work.max2 = nn.AvgPool2d(2, 2), nn.AvgPool2d(2, 2)
    with torch.no_grad():
        for conv in (work.conv1, work.conv2):
            conv.weight.fill_(0.01)
            conv.bias.fill_(0.1)
    return work


@pytest.mark.parametrize("stage,row,col", [("conv1", 3, 7), ("max1", 0, 0), ("max1", 5, 11), ("relu2", 2, 6),
                                           ("max2", 3, 3), ("max2", 1, 2)])
def test_receptive_field_equals_the_gradient_support(stage, row, col):
    model = SimpleCNN(batch_norm=False)
    work = _avg_pool_copy(model)
    x = torch.rand(1, 1, 28, 28, requires_grad=True)
    out = {}
    hooks = [getattr(work, s).register_forward_hook(lambda _m, _i, o, s=s: out.__setitem__(s, o))
             for s in ("conv1", "max1", "relu2", "max2")]
    work(x)
    for h in hooks:
        h.remove()
    out[stage][0, 0, row, col].backward()
    rows, cols = (x.grad[0, 0] != 0).nonzero(as_tuple=True)
    support = (int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max()))
    assert lw.receptive_field(model, stage, row, col) == support
    top, left, bottom, right = support
    assert int((x.grad[0, 0] != 0).sum()) == (bottom - top + 1) * (right - left + 1)  # the whole box


@pytest.mark.parametrize("c,r,s", [(0, 0, 0), (0, 2, 3), (5, 2, 3), (63, 3, 3), (17, 1, 0)])
def test_flatten_index_is_row_major(c, r, s):
    model = SimpleCNN()
    block = torch.randn(1, 64, 4, 4)
    index = lw.flatten_index(model, c, r, s)
    assert index == c * 16 + r * 4 + s  # closed form
    assert float(block.reshape(1, -1)[0, index]) == float(block[0, c, r, s])
    assert lw.flatten_position(index) == (c, r, s)
    options = lw.flatten_options(c, r, s)
    assert index in options and len(options) == len(set(options))


def test_flatten_question_always_has_wrong_choices():
    """The page asks about (channel, 2, 3) for every channel: there is always more than one choice."""
    assert all(len(lw.flatten_options(c, 2, 3)) >= 3 for c in range(64))


def test_strongest_listener_and_position():
    torch.manual_seed(3)
    model = SimpleCNN()
    norms = torch.stack([model.conv2.weight[d, 4].detach().pow(2).sum().sqrt() for d in range(64)])
    assert lw.strongest_listener(model, 4) == int(norms.argmax())
    t = torch.zeros(1, 3, 5, 6)
    t[0, 1, 2, 4] = 7.0
    assert lw.strongest_position(t, 1) == (2, 4)
