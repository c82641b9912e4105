"""The chain rule on the smallest useful graph: z = w·x + b, a = σ(z), L = (a − t)².

Each backward step multiplies the gradient arriving from above by one local derivative. The
hand-computed numbers are returned beside autograd's so a lesson (and the tests) can compare them.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..model import STAGES

GRAD_NAMES = ("L", "a", "z", "w", "b", "x")  # dL/d(name), in the order backprop reaches them


@dataclass(frozen=True)
class BackpropTrace:
    """Forward values, local derivatives and chained gradients of the tiny graph."""

    x: float
    w: float
    b: float
    t: float  # target
    z: float  # w·x + b
    a: float  # σ(z)
    loss: float  # (a − t)²
    local: dict[str, float]  # one derivative per edge, e.g. "da/dz"
    grads: dict[str, float]  # dL/d(name) by the chain rule, keys GRAD_NAMES
    autograd: dict[str, float]  # the same from torch autograd

    def max_difference(self) -> float:
        return max(abs(self.grads[k] - self.autograd[k]) for k in GRAD_NAMES)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def trace(x: float, w: float, b: float, t: float) -> BackpropTrace:
    """Forward, then backward by hand (float64), then the same graph through autograd."""
    z = w * x + b
    a = sigmoid(z)
    loss = (a - t) ** 2
    local = {"dL/da": 2 * (a - t), "da/dz": a * (1 - a), "dz/dw": x, "dz/db": 1.0, "dz/dx": w}
    grads = {"L": 1.0, "a": local["dL/da"]}
    grads["z"] = grads["a"] * local["da/dz"]
    grads["w"] = grads["z"] * local["dz/dw"]
    grads["b"] = grads["z"] * local["dz/db"]
    grads["x"] = grads["z"] * local["dz/dx"]
    return BackpropTrace(x, w, b, t, z, a, loss, local, grads, autograd_gradients(x, w, b, t))


def autograd_gradients(x: float, w: float, b: float, t: float) -> dict[str, float]:
    """dL/d(every node) from torch, keeping the intermediate nodes' gradients with retain_grad."""
    leaf = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in (("x", x), ("w", w), ("b", b))}
    z = leaf["w"] * leaf["x"] + leaf["b"]
    a = torch.sigmoid(z)
    loss = (a - t) ** 2
    for node in (z, a, loss):
        node.retain_grad()
    loss.backward()
    nodes = {"L": loss, "a": a, "z": z, **leaf}
    return {k: float(nodes[k].grad) for k in GRAD_NAMES}


def gradient_step(tr: BackpropTrace, lr: float) -> tuple[float, float, float]:
    """(new w, new b, new loss) after one gradient-descent step on w and b."""
    w, b = tr.w - lr * tr.grads["w"], tr.b - lr * tr.grads["b"]
    return w, b, (sigmoid(w * tr.x + b) - tr.t) ** 2


@dataclass(frozen=True)
class ModelGradients:
    """One backward pass through a real SimpleCNN (a copy, in eval mode so it is repeatable)."""

    loss: float
    fc2_bias_by_hand: list[float]  # mean over the batch of (softmax − one-hot target)
    fc2_bias_autograd: list[float]  # what loss.backward() put in fc2.bias.grad
    norms: dict[str, float]  # parameter name -> ‖∂L/∂parameter‖ (every layer gets a gradient)

    def max_difference(self) -> float:
        return max(abs(a - b) for a, b in zip(self.fc2_bias_by_hand, self.fc2_bias_autograd))


def model_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> ModelGradients:
    """Cross-entropy on a batch, backward through a copy of the model; the last link checked by hand.

    For softmax followed by cross-entropy, the chain rule collapses to ∂L/∂logits = (p − y)/N, and the
    bias of the last layer adds straight into the logits, so ∂L/∂b = mean over the batch of (p − y).
    """
    work = copy.deepcopy(model).float().cpu().eval()
    work.zero_grad(set_to_none=True)
    logits = work(images)  # (N, C)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    probs = logits.detach().softmax(dim=1)
    one_hot = nn.functional.one_hot(labels, probs.shape[1]).float()
    by_hand = (probs - one_hot).mean(dim=0)
    order = {stage: i for i, stage in enumerate(STAGES)}
    named = sorted(work.named_parameters(), key=lambda item: order.get(item[0].split(".")[0], len(order)))
    norms = {name: float(p.grad.norm()) for name, p in named if p.grad is not None}  # in forward order
    return ModelGradients(loss.item(), by_hand.tolist(), work.fc2.bias.grad.tolist(), norms)
