"""Facts about an image dataset computed from its tensors: class balance, mean digits, pixel statistics."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def class_counts(labels: torch.Tensor, num_classes: int = 10) -> list[int]:
    """How many images each class has (a one-hot sum, so the tests can compare it with bincount)."""
    one_hot = labels.view(-1, 1) == torch.arange(num_classes).view(1, -1)  # (N, C)
    return [int(c) for c in one_hot.sum(dim=0)]


def mean_images(images: torch.Tensor, labels: torch.Tensor, num_classes: int = 10,
                chunk: int = 10_000) -> np.ndarray:
    """Average image per class, (C, 28, 28) floats in [0, 1]: the 'typical' way each digit is written."""
    sums = torch.zeros(num_classes, images[0].numel(), dtype=torch.float64)
    classes = torch.arange(num_classes).view(-1, 1)
    for start in range(0, len(images), chunk):
        pixels = images[start:start + chunk].reshape(-1, images[0].numel()).float()  # (n, 784)
        one_hot = (labels[start:start + chunk].view(1, -1) == classes).float()  # (C, n)
        sums += (one_hot @ pixels).double()  # integer sums below 2**24 are exact in float32
    counts = torch.tensor(class_counts(labels, num_classes), dtype=torch.float64).clamp(min=1)
    return (sums / counts.view(-1, 1) / 255.0).reshape(num_classes, *images.shape[1:]).float().numpy()


def sample_indices(labels: torch.Tensor, per_class: int, seed: int = 0, num_classes: int = 10) -> np.ndarray:
    """(C, per_class) indices of randomly chosen images of each class, repeatable from a seed."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for c in range(num_classes):
        idx = (labels == c).nonzero().flatten()
        rows.append(idx[torch.randperm(len(idx), generator=g)[:per_class]].numpy())
    return np.stack(rows)


def mosaic(images: torch.Tensor, indices: np.ndarray, gap: int = 2) -> np.ndarray:
    """Tile images[indices] (rows x cols of 28x28) into one uint8 picture with white gaps."""
    rows, cols = indices.shape
    h, w = images.shape[1:]
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), 255, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = \
                images[int(indices[r, c])].numpy()
    return out


@dataclass(frozen=True)
class PixelStats:
    """Statistics of all pixel values (as floats in [0, 1]) of a split."""

    mean: float
    std: float
    zero_fraction: float  # share of pixels that are exactly 0 (pure background)


def pixel_stats(images: torch.Tensor, chunk: int = 10_000) -> PixelStats:
    """Exact mean/std from a 256-bin histogram of the uint8 values, built chunk by chunk."""
    hist = torch.zeros(256, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        hist += torch.bincount(images[start:start + chunk].flatten().long(), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255.0
    n = hist.sum()
    mean = float((hist * values).sum() / n)
    var = float((hist * (values - mean) ** 2).sum() / n)
    return PixelStats(mean, var ** 0.5, float(hist[0] / n))


def most_common_class(labels: torch.Tensor, num_classes: int = 10) -> tuple[int, int]:
    """(class, count) of the largest class."""
    counts = class_counts(labels, num_classes)
    best = int(np.argmax(counts))
    return best, counts[best]


def confusion_pairs(confusion: torch.Tensor, k: int = 4) -> list[tuple[int, int, int]]:
    """The k most frequent mistakes as (true class, predicted class, count), most frequent first.

    Off-diagonal cells of a confusion matrix (rows = true, columns = predicted); ties keep the
    lower (true, predicted) pair first so the order is reproducible.
    """
    c = confusion.clone().long()
    c.fill_diagonal_(-1)
    flat = c.flatten()
    order = sorted(range(len(flat)), key=lambda i: (-int(flat[i]), i))[:k]
    n = confusion.shape[1]
    return [(i // n, i % n, int(flat[i])) for i in order if int(flat[i]) >= 0]


def mistake_options(confusion: torch.Tensor, k: int = 4) -> list[tuple[int, int, int]]:
    """k mistakes (true, predicted, count) with distinct counts, the most frequent one among them.

    A trained model makes few mistakes, so several pairs often tie; taking the first pair of each
    of the k highest distinct counts gives a question with exactly one right answer.
    """
    options: list[tuple[int, int, int]] = []
    for pair in confusion_pairs(confusion, k=confusion.numel()):
        if not options or pair[2] < options[-1][2]:
            options.append(pair)
        if len(options) == k:
            break
    return options
