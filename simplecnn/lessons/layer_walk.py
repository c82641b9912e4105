"""SimpleCNN layer by layer: where each parameter count comes from, and one digit's trip through it."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..inspection import activations
from ..model import STAGES, SimpleCNN

# Stages whose output is a stack of 2-D feature maps worth drawing.
MAP_STAGES = ("conv1", "batch1", "relu1", "max1", "conv2", "batch2", "relu2", "max2")


def parameter_formula(module: nn.Module) -> tuple[str, int]:
    """('32·1·5·5 + 32', 832): how a layer's parameter count follows from its shape."""
    if isinstance(module, nn.Conv2d):
        k0, k1 = module.kernel_size
        count = module.out_channels * module.in_channels * k0 * k1
        text = f"{module.out_channels}·{module.in_channels}·{k0}·{k1}"
        if module.bias is not None:
            count += module.out_channels
            text += f" + {module.out_channels}"
        return text, count
    if isinstance(module, nn.Linear):
        count = module.out_features * module.in_features
        text = f"{module.out_features}·{module.in_features}"
        if module.bias is not None:
            count += module.out_features
            text += f" + {module.out_features}"
        return text, count
    if isinstance(module, nn.BatchNorm2d) and module.affine:
        return f"2·{module.num_features}  (γ and β)", 2 * module.num_features
    return "—", 0


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: str  # "(1, 32, 24, 24)"
    values_out: int  # numbers in the output for one image
    parameters: int  # counted by the module itself
    formula: str  # how that count follows from the layer's shape


def layer_rows(model: SimpleCNN) -> list[LayerRow]:
    """model.layer_table() joined with the parameter formula of each layer."""
    rows = []
    for info in model.layer_table():
        formula = parameter_formula(getattr(model, info.name))[0] if info.name != "input" else "—"
        values = 1
        for d in info.output_shape[1:]:
            values *= d
        rows.append(LayerRow(info.name, info.kind, str(info.output_shape), values, info.parameters, formula))
    return rows


@dataclass(frozen=True)
class ForwardWalk:
    """Every stage's output for one image (eval mode) and the final class probabilities."""

    stages: dict[str, torch.Tensor]  # stage -> (1, ...) tensor, as returned by inspection.activations
    probabilities: list[float]
    predicted: int


def forward_walk(model: SimpleCNN, image: torch.Tensor) -> ForwardWalk:
    """Run one image (uint8 28x28 or float) through the model in eval mode, keeping every stage."""
    acts = activations(model, image, mode="eval")
    probs = acts["softmax"][0]
    return ForwardWalk(acts, [float(p) for p in probs], int(probs.argmax()))


def strongest_channels(stage_output: torch.Tensor, k: int) -> list[int]:
    """The k channels of a (1, C, H, W) output with the largest mean absolute activation."""
    strength = stage_output[0].abs().mean(dim=(1, 2))  # (C,)
    return [int(i) for i in strength.argsort(descending=True)[:k]]


# -- following one channel -------------------------------------------------------------------------
def receptive_field(model: SimpleCNN, stage: str, row: int, col: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), inclusive, of the input pixels that can affect one unit of `stage`.

    Walking back through the stages: a k×k convolution with stride s widens a span [a, b] of rows to
    [s·a − padding, s·b − padding + k − 1]; a pooling window does the same with its own k and s;
    batch norm, ReLU and dropout act on one position at a time and keep the span.
    """
    names = list(STAGES[:STAGES.index(stage) + 1])
    top, bottom, left, right = row, row, col, col
    for name in reversed(names):
        module = getattr(model, name)
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            k = _pair(module.kernel_size)
            s = _pair(module.stride)
            p = _pair(module.padding)
            top, bottom = s[0] * top - p[0], s[0] * bottom - p[0] + k[0] - 1
            left, right = s[1] * left - p[1], s[1] * right - p[1] + k[1] - 1
    return top, left, bottom, right


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def strongest_listener(model: SimpleCNN, channel: int) -> int:
    """The conv2 output channel whose 5×5 kernel on conv1 channel `channel` is largest (L2 norm).

    conv2 mixes all 32 channels, so "following" a channel means following the conv2 channel that
    gives it the most weight.
    """
    weights = model.conv2.weight.detach()[:, channel]  # (64, 5, 5)
    return int(weights.flatten(1).norm(dim=1).argmax())


def strongest_position(stage_output: torch.Tensor, channel: int) -> tuple[int, int]:
    """(row, col) of the largest value of one channel of a (1, C, H, W) output."""
    plane = stage_output[0, channel]
    flat = int(plane.argmax())
    return flat // plane.shape[1], flat % plane.shape[1]


def flatten_index(model: SimpleCNN, channel: int, row: int, col: int) -> int:
    """Where max2's value (channel, row, col) lands in fc1's input, read off the model's own Flatten.

    A one-hot (1, 64, 4, 4) tensor goes through `model.flatten`; the position of the 1 is the answer
    (row-major: channel · 16 + row · 4 + col).
    """
    c, h, w = model.fc1.in_features // 16, 4, 4
    one_hot = torch.zeros(1, c, h, w)
    one_hot[0, channel, row, col] = 1.0
    return int(model.flatten(one_hot)[0].argmax())


def flatten_position(index: int, shape: tuple[int, int, int] = (64, 4, 4)) -> tuple[int, int, int]:
    """The inverse: (channel, row, col) of fc1 input `index`, for a (C, H, W) block flattened row-major."""
    _, h, w = shape
    return index // (h * w), (index // w) % h, index % w


def flatten_options(channel: int, row: int, col: int, shape: tuple[int, int, int] = (64, 4, 4)) -> list[int]:
    """Candidate indices for a question: row-major plus the orders a learner might guess, distinct, sorted."""
    c, h, w = shape
    candidates = {channel * h * w + row * w + col,  # (C, H, W) row-major: what torch does
                  (row * w + col) * c + channel,  # channels last
                  channel * h * w + col * h + row,  # rows and columns swapped
                  channel + c * (row + h * col)}  # column-major over the whole block
    return sorted(candidates)
