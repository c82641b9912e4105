"""What a one-pixel shift does before and after max pooling (lesson 4).

Max pooling keeps the largest value of each window; when a stroke moves by one pixel it often
stays inside the same window, so that window's maximum does not change. This module measures how
much of a map changes under a shift, before and after pooling, on real digits and feature maps.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SHIFTS: dict[str, tuple[int, int]] = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
SHIFT_ANSWERS: tuple[str, ...] = ("the input changes more", "the max-pooled map changes more",
                                  "both change by about the same share")
SAME_WITHIN = 0.02  # shares closer than this count as "about the same"


def shift(image, rows: int, cols: int) -> np.ndarray:
    """Move a 2-D map by (rows, cols) pixels, filling the uncovered edge with zeros (nothing wraps around)."""
    x = torch.as_tensor(np.asarray(image, dtype=np.float64))
    h, w = x.shape
    padded = F.pad(x, (abs(cols), abs(cols), abs(rows), abs(rows)))  # (h + 2|r|, w + 2|c|)
    top, left = abs(rows) - rows, abs(cols) - cols
    return padded[top:top + h, left:left + w].numpy()


def changed_share(before, after) -> float:
    """sum |after - before| / sum |before|: the share of the map's total that moved (0: identical)."""
    before, after = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    total = np.abs(before).sum()
    return float(np.abs(after - before).sum() / total) if total > 0 else 0.0


def max_pool(fmap, kernel: int = 2, stride: int = 2) -> np.ndarray:
    """F.max_pool2d on one or several 2-D maps ((H, W) or (C, H, W))."""
    x = torch.as_tensor(np.asarray(fmap, dtype=np.float64))
    return F.max_pool2d(x[None] if x.dim() == 3 else x[None, None], kernel, stride)[0 if x.dim() == 3 else (0, 0)].numpy()


def shift_comparison(fmap, direction: str, kernel: int = 2, stride: int = 2) -> dict:
    """Shift a map one pixel and compare how much changes before and after max pooling.

    Returns the shifted map, both pooled maps, the two changed shares, the share of non-empty pooled
    cells that kept exactly their value, and which SHIFT_ANSWERS is true for this map.
    """
    rows, cols = SHIFTS[direction]
    fmap = np.asarray(fmap, dtype=np.float64)
    moved = shift(fmap, rows, cols)
    pooled, pooled_moved = max_pool(fmap, kernel, stride), max_pool(moved, kernel, stride)
    before, after = changed_share(fmap, moved), changed_share(pooled, pooled_moved)
    if abs(before - after) < SAME_WITHIN:
        answer = SHIFT_ANSWERS[2]
    else:
        answer = SHIFT_ANSWERS[0] if before > after else SHIFT_ANSWERS[1]
    return {"shifted": moved, "pooled": pooled, "pooled_shifted": pooled_moved, "input_change": before,
            "pooled_change": after, "pooled_unchanged": _kept_share(pooled, pooled_moved),
            "answer": answer}


def _kept_share(pooled: np.ndarray, pooled_moved: np.ndarray) -> float:
    """Share of pooled cells holding something (before or after) whose value did not change at all."""
    inked = (pooled != 0) | (pooled_moved != 0)
    return float(np.isclose(pooled, pooled_moved)[inked].mean()) if inked.any() else 1.0
