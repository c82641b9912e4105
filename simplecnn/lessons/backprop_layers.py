"""Backpropagation through SimpleCNN's first block on a real digit, by hand, checked against autograd.

The model runs in eval mode (batch norm on running statistics, no dropout) so the backward pass is a
fixed function. Autograd supplies ∂L/∂(max1 output); from there each layer's backward rule is written
out: max-pool routes a gradient only to the largest input of its window, ReLU passes it only where its
input was positive, eval-mode batch norm multiplies by γ/√(running var + ε), and the convolution's
weight gradient sums input patch × output gradient over every position the kernel visited.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerGradients:
    """Gradients of the loss at each stage of block 1, by hand and by autograd, for one image."""

    loss: float
    image: torch.Tensor  # (28, 28) float input
    relu_in: torch.Tensor  # (C, 24, 24) batch1 output (ReLU input)
    grad_max1: torch.Tensor  # (C, 12, 12) ∂L/∂(max1 output), from autograd: the starting point
    grad_relu_out: dict[str, torch.Tensor]  # "hand"/"autograd": (C, 24, 24) after max-pool backward
    grad_relu_in: dict[str, torch.Tensor]  # (C, 24, 24) after ReLU backward
    grad_conv_out: dict[str, torch.Tensor]  # (C, 24, 24) after batch-norm backward
    grad_weight: dict[str, torch.Tensor]  # (C, 1, 5, 5) ∂L/∂conv1.weight
    grad_bias: dict[str, torch.Tensor]  # (C,) ∂L/∂conv1.bias

    def differences(self) -> dict[str, float]:
        """Largest |hand − autograd| per stage."""
        pairs = {"max-pool backward": self.grad_relu_out, "ReLU backward": self.grad_relu_in,
                 "batch norm backward": self.grad_conv_out, "conv1 weight gradient": self.grad_weight,
                 "conv1 bias gradient": self.grad_bias}
        return {k: float((v["hand"] - v["autograd"]).abs().max()) for k, v in pairs.items()}

    def routed_fraction(self) -> float:
        """Share of relu1 positions that get a non-zero gradient from max-pool (at most 1/4)."""
        return float((self.grad_relu_out["hand"] != 0).double().mean())

    def routed_count(self) -> int:
        """How many relu1 positions (all channels) max-pool sends a non-zero gradient to."""
        return int((self.grad_relu_out["hand"] != 0).sum())

    def relu_blocked(self) -> int:
        """Positions where max-pool sent a gradient but ReLU stopped it (its input was ≤ 0)."""
        return int(((self.grad_relu_out["hand"] != 0) & (self.relu_in <= 0)).sum())


def max_pool_backward(x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """2×2, stride-2 max-pool backward: each window's gradient goes to its first largest input.

    x: (C, H, W); grad_out: (C, H/2, W/2). The first maximum in row-major order gets it, the rule
    torch's CPU kernel uses, so ties (e.g. a window of zeros) go to the top-left one.
    """
    c, h, w = x.shape
    windows = x.reshape(c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 2, 4).reshape(c, h // 2, w // 2, 4)
    first_max = windows.argmax(dim=-1)  # torch.argmax returns the first occurrence of the max
    routed = torch.zeros_like(windows)
    routed.scatter_(-1, first_max.unsqueeze(-1), grad_out.unsqueeze(-1))
    return routed.reshape(c, h // 2, w // 2, 2, 2).permute(0, 1, 3, 2, 4).reshape(c, h, w)


def conv_weight_gradient(image: torch.Tensor, grad_out: torch.Tensor, k: int) -> torch.Tensor:
    """∂L/∂W[c, 0, i, j] = Σ over positions (y, x) of grad_out[c, y, x] · image[y + i, x + j].

    One kernel is used at every position (weight sharing), so its gradient is the sum of one term per
    position: 24 × 24 = 576 terms for conv1 on a 28×28 image.
    """
    c, h, w = grad_out.shape
    grad = torch.zeros(c, 1, k, k, dtype=grad_out.dtype)
    for i in range(k):
        for j in range(k):
            grad[:, 0, i, j] = (grad_out * image[i:i + h, j:j + w]).sum(dim=(1, 2))
    return grad


def block1_gradients(model: nn.Module, image: torch.Tensor, label: int) -> LayerGradients:
    """Cross-entropy of one digit through a copy of the model, then block 1's backward by hand."""
    work = copy.deepcopy(model).float().cpu().eval()
    x = image.float().reshape(1, 1, 28, 28)
    x = x / 255.0 if image.dtype == torch.uint8 else x
    conv = work.conv1(x)
    conv.retain_grad()
    bn = work.batch1(conv)
    bn.retain_grad()
    relu = work.relu1(bn)
    relu.retain_grad()
    pooled = work.max1(relu)
    pooled.retain_grad()
    rest = work.dropout2(work.max2(work.relu2(work.batch2(work.conv2(work.dropout1(pooled))))))
    logits = work.fc2(work.relu3(work.fc1(work.flatten(rest))))
    loss = nn.functional.cross_entropy(logits, torch.tensor([int(label)]))
    loss.backward()

    g_pool = pooled.grad[0].detach()
    relu_in = bn[0].detach()
    g_relu_out = max_pool_backward(relu[0].detach(), g_pool)
    g_relu_in = g_relu_out * (relu_in > 0)
    if isinstance(work.batch1, nn.BatchNorm2d):
        b = work.batch1
        g_conv = g_relu_in * (b.weight / torch.sqrt(b.running_var + b.eps)).detach().view(-1, 1, 1)
    else:
        g_conv = g_relu_in
    g_w = conv_weight_gradient(x[0, 0], g_conv, work.conv1.kernel_size[0])
    return LayerGradients(
        loss.item(), x[0, 0].detach(), relu_in, g_pool,
        {"hand": g_relu_out, "autograd": relu.grad[0].detach()},
        {"hand": g_relu_in, "autograd": bn.grad[0].detach()},
        {"hand": g_conv, "autograd": conv.grad[0].detach()},
        {"hand": g_w, "autograd": work.conv1.weight.grad.detach()},
        {"hand": g_conv.sum(dim=(1, 2)), "autograd": work.conv1.bias.grad.detach()},
    )
