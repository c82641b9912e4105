"""Mini-batch gradient noise on real MNIST: how far a batch's gradient points from the full one.

The model is a copy in eval mode (no dropout, batch norm on running statistics), so the only
randomness is which images are in the batch. The reference is the gradient over a large batch;
each mini-batch gradient is compared with it by cosine similarity and by relative error, whose
spread shrinks like 1/√B because a batch gradient is an average of B per-image gradients.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def flat_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """∂(mean cross-entropy)/∂(all parameters) as one long vector (float64)."""
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(images), labels).backward()
    return torch.cat([p.grad.flatten().double() for p in model.parameters() if p.grad is not None])


@dataclass(frozen=True)
class BatchNoise:
    """For one batch size: how the mini-batch gradients compare with the reference gradient."""

    batch_size: int
    cosines: list[float]  # cos(g_batch, g_reference), one per batch
    relative_errors: list[float]  # ‖g_batch − g_reference‖ / ‖g_reference‖
    seconds_per_batch: float  # time of one forward + backward at this size


def gradient_noise(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_sizes: tuple[int, ...],
                   batches: int = 10, reference_size: int = 2048, seed: int = 0) -> tuple[list[BatchNoise], int]:
    """Sample `batches` random mini-batches of each size (without replacement inside a batch).

    images/labels: float (N, 1, 28, 28) and (N,), N ≥ reference_size. Returns the per-size results
    and the reference batch size. The reference uses the first `reference_size` images; the
    mini-batches are drawn from all N.
    """
    work = copy.deepcopy(model).float().cpu().eval()
    reference = flat_gradient(work, images[:reference_size], labels[:reference_size])
    ref_norm = float(reference.norm())
    gen = torch.Generator().manual_seed(seed)
    results = []
    for size in batch_sizes:
        cosines, errors = [], []
        start = time.perf_counter()
        for _ in range(batches):
            idx = torch.randperm(len(labels), generator=gen)[:size]
            g = flat_gradient(work, images[idx], labels[idx])
            cosines.append(float(g @ reference / (g.norm() * ref_norm).clamp_min(1e-30)))
            errors.append(float((g - reference).norm() / max(ref_norm, 1e-30)))
        results.append(BatchNoise(size, cosines, errors, (time.perf_counter() - start) / batches))
    return results, reference_size


def noise_scaling(results: list[BatchNoise]) -> float:
    """Slope of log(mean relative error) against log(batch size): about −1/2 when noise dominates."""
    sizes = np.log([r.batch_size for r in results])
    errors = np.log([np.mean(r.relative_errors) for r in results])
    return float(np.polyfit(sizes, errors, 1)[0])


def loss_concentration(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, top: int = 10) -> float:
    """Share of the total cross-entropy carried by the `top` hardest images (eval mode).

    About top/N for an untrained model, where every image is equally wrong; close to 1 for a trained
    one, whose gradient then comes from a handful of images, which is what makes its batches disagree.
    """
    work = copy.deepcopy(model).float().cpu().eval()
    with torch.no_grad():
        losses = nn.functional.cross_entropy(work(images), labels, reduction="none")
    return float(losses.sort(descending=True).values[:top].sum() / losses.sum().clamp_min(1e-30))


# -- lesson 16's question: 16 times more images per batch, how much less error? ----------------------------
SHRINK_OPTIONS = (("about 16 times smaller", 16.0), ("about 4 times smaller", 4.0), ("about 2 times smaller", 2.0),
                  ("about the same", 1.0), ("it gets larger (about 2 times)", 0.5))


def error_shrink(results: list[BatchNoise], small: int = 16, large: int = 256) -> float:
    """Mean relative error at batch size `small` over that at `large` (4 for the 1/√B law and 16× more images)."""
    by_size = {r.batch_size: float(np.mean(r.relative_errors)) for r in results}
    return by_size[small] / max(by_size[large], 1e-30)


def closest_shrink_option(ratio: float) -> str:
    """The option of SHRINK_OPTIONS nearest to the measured ratio on a log scale."""
    return min(SHRINK_OPTIONS, key=lambda o: abs(np.log(o[1]) - np.log(max(ratio, 1e-30))))[0]
