"""What every Explain computation shares: one image batch, eval mode restored afterwards, timing.

Explanations are about how the model *predicts*, so every computation runs in eval mode (dropout
passes everything, BatchNorm uses its running statistics) and then puts the caller's mode back.
Only input gradients are taken (torch.autograd.grad), so no `.grad` is left on any parameter.
"""
from __future__ import annotations

import contextlib
import time
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ..inspection import as_batch

PIXEL_MIN, PIXEL_MAX = 0.0, 1.0  # SimpleCNN reads raw pixels in [0, 1] (data.to_float); no normalisation


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode for the block; its train/eval mode is restored on exit."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def image_batch(x, model: nn.Module) -> torch.Tensor:
    """Any accepted image layout -> detached float32 (N, 1, 28, 28) on the model's device."""
    return as_batch(x).detach().to(device_of(model), torch.float32)


def one_image(x, model: nn.Module) -> torch.Tensor:
    batch = image_batch(x, model)
    if batch.shape[0] != 1:
        raise ValueError(f"Expected one image, got a batch of {batch.shape[0]}.")
    return batch


@torch.no_grad()
def probabilities(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Softmax (N, num_classes) of a batch, as float64 numpy, in eval mode."""
    with evaluating(model):
        return model(x).double().softmax(dim=1).cpu().numpy()


class Stopwatch:
    """`with Stopwatch() as t: ...; t.seconds`: wall time of a block."""

    def __enter__(self) -> "Stopwatch":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
