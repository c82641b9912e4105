"""Convolution and pooling one window at a time, so a lesson can show every product behind an output pixel.

The stepped versions here are written out by hand (pad, slice, multiply, sum) and the tests check
them against `F.conv2d`, `F.max_pool2d` and `F.avg_pool2d`; the full output maps the lessons draw
come from torch itself.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..inspection import activations

KERNEL_SIZE = 5  # SimpleCNN's conv1 and conv2 both use 5x5 kernels


class ConvStep(NamedTuple):
    """Everything that goes into one output pixel of a convolution."""

    patch: np.ndarray  # (C, k, k) input values under the kernel (zeros where it hangs over the padding)
    products: np.ndarray  # (C, k, k) patch * kernel, element by element
    channel_sums: np.ndarray  # (C,) sum of the products of each input channel
    weighted_sum: float  # all products added up (before the bias)
    bias: float
    output: float  # weighted_sum + bias: the output pixel
    top_left: tuple[int, int]  # where the window starts in the (padded) input


class PoolWindow(NamedTuple):
    """One pooling window and what max and average pooling make of it."""

    values: np.ndarray  # (k, k)
    top_left: tuple[int, int]
    maximum: float
    average: float


def _as_chw(image) -> torch.Tensor:
    """(H, W) or (C, H, W) array-like -> float64 (C, H, W)."""
    t = torch.as_tensor(np.asarray(image), dtype=torch.float64)
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3:
        raise ValueError(f"Expected an image shaped (H, W) or (C, H, W), got {tuple(t.shape)}.")
    return t


def conv_step(image, kernel, bias: float, row: int, col: int, stride: int = 1, padding: int = 0,
              dilation: int = 1) -> ConvStep:
    """The output pixel (row, col) of a cross-correlation, computed by hand: patch * kernel, summed, + bias.

    `image` is (H, W) or (C, H, W); `kernel` is (k, k) or (C, k, k) with the same C. This is what
    `nn.Conv2d` computes for one filter at one position (deep-learning "convolution" does not flip
    the kernel).
    """
    x = _as_chw(image)  # (C, H, W)
    w = _as_chw(kernel)  # (C, kh, kw)
    if w.shape[0] != x.shape[0]:
        raise ValueError(f"The kernel has {w.shape[0]} channels but the input has {x.shape[0]}.")
    kh, kw = w.shape[1:]
    h_out = output_size(x.shape[1], kh, padding, stride, dilation)
    w_out = output_size(x.shape[2], kw, padding, stride, dilation)
    if not (0 <= row < h_out and 0 <= col < w_out):
        raise ValueError(f"Position ({row}, {col}) is outside the {h_out}x{w_out} output.")
    padded = F.pad(x, (padding, padding, padding, padding))  # (C, H+2p, W+2p), zeros around
    top, left = row * stride, col * stride
    patch = padded[:, top: top + dilation * (kh - 1) + 1: dilation,
                   left: left + dilation * (kw - 1) + 1: dilation]  # (C, kh, kw)
    products = patch * w
    channel_sums = products.sum(dim=(1, 2))
    weighted_sum = float(channel_sums.sum())
    return ConvStep(patch.numpy().copy(), products.numpy().copy(), channel_sums.numpy().copy(),
                    weighted_sum, float(bias), weighted_sum + float(bias), (top, left))


def conv_output_map(image, kernel, bias: float = 0.0, stride: int = 1, padding: int = 0,
                    dilation: int = 1) -> np.ndarray:
    """The whole output map of one filter, from torch's F.conv2d: (H_out, W_out)."""
    x = _as_chw(image).float()[None]  # (1, C, H, W)
    w = _as_chw(kernel).float()[None]  # (1, C, k, k)
    out = F.conv2d(x, w, torch.tensor([float(bias)]), stride=stride, padding=padding, dilation=dilation)
    return out[0, 0].numpy()


def output_size(size: int, kernel: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    """floor((H + 2p - d(k-1) - 1) / s) + 1; with d = 1 this is the guide's floor((H - k + 2p) / s) + 1.

    A result below 1 means the (dilated) kernel does not fit in the padded input.
    """
    if stride < 1 or dilation < 1 or kernel < 1 or padding < 0:
        raise ValueError("kernel, stride and dilation must be at least 1 and padding at least 0.")
    span = dilation * (kernel - 1) + 1  # how many input pixels the dilated kernel covers
    return (size + 2 * padding - span) // stride + 1


def torch_output_size(size: int, kernel: int, padding: int = 0, stride: int = 1, dilation: int = 1,
                      op: str = "conv") -> tuple[int | None, str]:
    """(H_out, "") measured by running torch on zeros of that size, or (None, torch's error message).

    op: "conv" (F.conv2d), "max" (F.max_pool2d) or "avg" (F.avg_pool2d, which has no dilation).
    """
    x = torch.zeros(1, 1, size, size, dtype=torch.float64)  # float64 skips oneDNN's per-shape setup
    try:
        if op == "conv":
            out = F.conv2d(x, torch.zeros(1, 1, kernel, kernel, dtype=x.dtype), stride=stride, padding=padding, dilation=dilation)
        elif op == "max":
            out = F.max_pool2d(x, kernel, stride=stride, padding=padding, dilation=dilation)
        elif op == "avg":
            if dilation != 1:
                return None, "average pooling has no dilation"
            out = F.avg_pool2d(x, kernel, stride=stride, padding=padding)
        else:
            raise ValueError(f"Unknown op {op!r}; use 'conv', 'max' or 'avg'.")
    except RuntimeError as exc:
        return None, str(exc).splitlines()[0]
    return int(out.shape[-2]), ""


def preset_kernels(size: int = KERNEL_SIZE) -> dict[str, np.ndarray]:
    """Hand-designed size x size filters (odd size): what a trained conv1 filter might learn to be.

    Built from the binomial smoothing row [1, 4, 6, 4, 1] and a centred difference row, the
    5x5 cousins of the Sobel and Gaussian filters.
    """
    if size % 2 == 0 or size < 3:
        raise ValueError("Preset kernels need an odd size of at least 3.")
    smooth = _binomial_row(size)  # [1, 4, 6, 4, 1]
    half = size // 2
    diff = np.arange(size, dtype=np.float64) - half  # [-2, -1, 0, 1, 2]
    identity = np.zeros((size, size))
    identity[half, half] = 1.0
    gaussian = np.outer(smooth, smooth) / smooth.sum() ** 2
    horizontal = np.outer(diff, smooth)  # rows differ: bright below dark -> positive (horizontal edges)
    vertical = horizontal.T.copy()  # columns differ (vertical edges)
    horizontal /= horizontal[horizontal > 0].sum()
    vertical /= vertical[vertical > 0].sum()
    return {
        "Edge (horizontal)": horizontal,
        "Edge (vertical)": vertical,
        "Blur (Gaussian)": gaussian,
        "Blur (box)": np.full((size, size), 1.0 / size ** 2),
        "Sharpen": 2.0 * identity - gaussian,
        "Identity": identity,
    }


def _binomial_row(size: int) -> np.ndarray:
    """Row `size - 1` of Pascal's triangle, e.g. [1, 4, 6, 4, 1]."""
    row = np.array([1.0])
    for _ in range(size - 1):
        row = np.convolve(row, [1.0, 1.0])
    return row


def pool2d(feature_map, kernel: int, stride: int, mode: str = "max") -> np.ndarray:
    """Max or average pooling written out: cut (k x k) windows every `stride` pixels, reduce each one.

    `feature_map` is (H, W) or (C, H, W); no padding, floor rounding (PyTorch's defaults).
    """
    x = _as_chw(feature_map)  # (C, H, W)
    if output_size(x.shape[1], kernel, 0, stride) < 1 or output_size(x.shape[2], kernel, 0, stride) < 1:
        raise ValueError(f"A {kernel}x{kernel} window does not fit in a {x.shape[1]}x{x.shape[2]} map.")
    windows = x.unfold(1, kernel, stride).unfold(2, kernel, stride)  # (C, H_out, W_out, k, k)
    if mode == "max":
        out = windows.amax(dim=(-2, -1))
    elif mode == "avg":
        out = windows.mean(dim=(-2, -1))
    else:
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    out = out.numpy()
    return out[0] if np.ndim(feature_map) == 2 else out


def pool_window(feature_map, kernel: int, stride: int, row: int, col: int) -> PoolWindow:
    """The window behind output pixel (row, col) of a pooling layer on an (H, W) map."""
    x = np.asarray(feature_map, dtype=np.float64)
    top, left = row * stride, col * stride
    values = x[top: top + kernel, left: left + kernel]
    if values.shape != (kernel, kernel):
        raise ValueError(f"Position ({row}, {col}) is outside the pooled output.")
    return PoolWindow(values.copy(), (top, left), float(values.max()), float(values.mean()))


def live_feature_maps(model: nn.Module, image) -> dict[str, np.ndarray]:
    """SimpleCNN's real maps for one digit (eval mode): conv1 (32,24,24), relu1, max1 (32,12,12), conv2 (64,8,8)."""
    acts = activations(model, image)
    return {name: acts[name][0].numpy() for name in ("input", "conv1", "relu1", "max1", "dropout1", "conv2")}


def layer_kernel(model: nn.Module, layer: str, out_channel: int) -> tuple[np.ndarray, float]:
    """One filter of a model's Conv2d: weights (in_channels, k, k) and its bias."""
    conv = getattr(model, layer)
    weight = conv.weight.detach().double().cpu()[out_channel].numpy().copy()  # (C_in, k, k)
    bias = float(conv.bias.detach()[out_channel]) if conv.bias is not None else 0.0
    return weight, bias
