"""Images as tensors, and one fully-connected neuron computed step by step.

Lesson 1 shows a real MNIST digit as the bytes on disk and as the floats SimpleCNN reads;
lesson 2 adds up w_i * x_i + w_0 by hand and checks the result against `nn.Linear`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data import Dataset, iterate_batches, to_float
from ..inspection import activations
from .activations_losses import activation

NCHW = (("N", "images in the batch"), ("C", "channels per image (1: grey levels)"),
        ("H", "rows of pixels"), ("W", "columns of pixels"))


def digit(dataset: Dataset, index: int, split: str = "test") -> tuple[torch.Tensor, int]:
    """(uint8 image (28, 28), label) of one stored image."""
    images, labels = ((dataset.test_images, dataset.test_labels) if split == "test"
                      else (dataset.train_images, dataset.train_labels))
    if not 0 <= index < len(labels):
        raise IndexError(f"Index {index} is outside the {split} split (0..{len(labels) - 1}).")
    return images[index], int(labels[index])


def model_view(image_u8: torch.Tensor) -> torch.Tensor:
    """What the model reads for this image: float32 (1, 1, 28, 28), every byte divided by 255."""
    return to_float(image_u8)


def first_batch(dataset: Dataset, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first training batch exactly as the trainer builds it: images (N, 1, 28, 28), labels (N,)."""
    return next(iterate_batches(dataset.train_images, dataset.train_labels, batch_size))


def try_shapes(conv: nn.Conv2d, shapes: list[tuple[int, ...]]) -> list[tuple[tuple[int, ...], tuple[int, ...] | None, str]]:
    """Feed zeros of each shape to a Conv2d: (shape, output shape or None, torch's error message)."""
    results = []
    with torch.no_grad():
        for shape in shapes:
            try:
                out = conv(torch.zeros(shape, device=conv.weight.device))
                results.append((shape, tuple(out.shape), ""))
            except RuntimeError as exc:
                results.append((shape, None, str(exc).splitlines()[0]))
    return results


@dataclass(frozen=True)
class NeuronSteps:
    """y = h(sum_i w_i x_i + w_0), with every intermediate value kept for display."""

    inputs: np.ndarray  # (n,)
    weights: np.ndarray  # (n,)
    products: np.ndarray  # (n,) w_i * x_i
    running_sums: np.ndarray  # (n,) partial sums w_1 x_1 + ... + w_i x_i
    bias: float  # w_0
    pre_activation: float  # z = sum + w_0
    output: float  # y = h(z)
    activation: str


def neuron_steps(inputs, weights, bias: float, activation_name: str = "Identity",
                 slope: float = 0.01) -> NeuronSteps:
    """One neuron, added up term by term (float64)."""
    x = np.asarray(inputs, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if x.shape != w.shape or x.ndim != 1:
        raise ValueError(f"inputs and weights must be two vectors of the same length, got {x.shape} and {w.shape}.")
    products = w * x
    running = np.cumsum(products)
    z = float(running[-1] + bias) if len(running) else float(bias)
    y = float(activation(activation_name, torch.tensor(z, dtype=torch.float64), slope))
    return NeuronSteps(x, w, products, running, float(bias), z, y, activation_name)


def neuron_with_linear(inputs, weights, bias: float, activation_name: str = "Identity",
                       slope: float = 0.01) -> float:
    """The same neuron as torch builds it: nn.Linear(n, 1) holding these weights, then the activation."""
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    layer = nn.Linear(len(w), 1).double()
    with torch.no_grad():
        layer.weight.copy_(w[None])  # (1, n)
        layer.bias.fill_(float(bias))
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float64))[None]  # (1, n)
        return float(activation(activation_name, layer(x), slope)[0, 0])


def linear_layers(model: nn.Module) -> list[dict]:
    """Shape and parameter count of every nn.Linear in the model, read from its weight tensors."""
    rows = []
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            rows.append({
                "layer": name,
                "inputs": module.in_features,
                "outputs": module.out_features,
                "weight shape": tuple(module.weight.shape),
                "bias shape": tuple(module.bias.shape) if module.bias is not None else (),
                "weights": module.weight.numel(),
                "biases": module.bias.numel() if module.bias is not None else 0,
                "parameters": sum(p.numel() for p in module.parameters()),
            })
    return rows


@dataclass(frozen=True)
class LogitAsNeuron:
    """One output neuron of fc2 for a real digit: its 512 inputs, the hand sum, and the model's own logit."""

    steps: NeuronSteps
    model_logit: float
    label: int


def logit_as_neuron(model: nn.Module, image_u8: torch.Tensor, class_index: int) -> LogitAsNeuron:
    """Recompute one logit of SimpleCNN as sum_i w_i x_i + w_0 over fc2's inputs (the 512 ReLU outputs)."""
    acts = activations(model, image_u8)
    x = acts["relu3"][0].double().numpy()  # (512,) fc2's input
    w = model.fc2.weight.detach().double().cpu()[class_index].numpy()  # (512,)
    b = float(model.fc2.bias.detach()[class_index])
    steps = neuron_steps(x, w, b)
    return LogitAsNeuron(steps, float(acts["logits"][0, class_index]), class_index)
