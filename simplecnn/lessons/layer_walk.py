"""SimpleCNN layer by layer: where each parameter count comes from, and one digit's trip through it."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..inspection import activations
from ..model import SimpleCNN

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
