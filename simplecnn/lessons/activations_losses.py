"""Activation functions, softmax with a temperature, and the guide's loss functions, with autograd gradients.

Derivatives are never typed in: every gradient here comes from `torch.autograd`, so a lesson
plots exactly what backpropagation would use. The tests compare them with the textbook formulas
and with torch's own loss functions.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

ACTIVATIONS: tuple[str, ...] = ("Sigmoid", "Tanh", "ReLU", "Leaky ReLU")
FC_ACTIVATIONS: tuple[str, ...] = ("Identity",) + ACTIVATIONS  # what the fully-connected lesson offers
REGRESSION_LOSSES: tuple[str, ...] = ("MSE", "MAE", "MBE")
CLASSIFICATION_LOSSES: tuple[str, ...] = ("Hinge", "Cross-Entropy")


def activation(name: str, x: torch.Tensor, slope: float = 0.01) -> torch.Tensor:
    """Apply an activation by name; `slope` is Leaky ReLU's gradient for x <= 0 (the guide uses 0.01)."""
    if name == "Sigmoid":
        return torch.sigmoid(x)
    if name == "Tanh":
        return torch.tanh(x)
    if name == "ReLU":
        return F.relu(x)
    if name == "Leaky ReLU":
        return F.leaky_relu(x, negative_slope=slope)
    if name == "Identity":
        return x
    raise ValueError(f"Unknown activation {name!r}; choose one of {', '.join(FC_ACTIVATIONS)}.")


def activation_and_derivative(name: str, x, slope: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(h(x), h'(x)) at every point of x; the derivative is autograd's, as backprop would use it.

    The activations act element by element, so d(sum h(x)) / dx_i = h'(x_i).
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64)).clone().requires_grad_(True)
    y = activation(name, xt, slope)
    (grad,) = torch.autograd.grad(y.sum(), xt)
    return y.detach().numpy(), grad.numpy()


def softmax_with_temperature(logits, temperature: float = 1.0) -> np.ndarray:
    """exp(z_i / T) / sum_j exp(z_j / T), written out; subtracting the max first keeps exp from overflowing.

    T = 1 is the ordinary softmax; T > 1 flattens the distribution, T < 1 sharpens it.
    """
    if temperature <= 0:
        raise ValueError("The temperature must be positive.")
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64)) / temperature
    e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
    return (e / e.sum(dim=-1, keepdim=True)).numpy()


# -- losses: predictions first, targets second; all return a scalar tensor (mean over the batch) ----
def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Squared Error: (1/N) sum (y_i - t_i)^2."""
    return ((pred - target) ** 2).mean()


def mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Absolute Error (L1): (1/N) sum |y_i - t_i|."""
    return (pred - target).abs().mean()


def mbe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Bias Error: (1/N) sum (y_i - t_i); signed, so over- and under-shoots cancel out."""
    return (pred - target).mean()


def hinge(scores: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Multi-class SVM hinge as the guide writes it: H_i = sum over j != y_i of max(0, s_j - s_{y_i} + 1).

    scores: (N, C) raw class scores, labels: (N,) class indices; "mean" averages H_i over the batch.
    torch's `F.multi_margin_loss` uses the same margins but divides each H_i by the number of
    classes C, so hinge(...) == C * F.multi_margin_loss(...).
    """
    scores = scores.reshape(-1, scores.shape[-1])  # (N, C)
    labels = torch.as_tensor(labels).reshape(-1).long()  # (N,)
    true_scores = scores.gather(1, labels[:, None])  # (N, 1)
    margins = (scores - true_scores + 1.0).clamp(min=0.0)  # (N, C)
    others = torch.ones_like(margins, dtype=torch.bool).scatter(1, labels[:, None], False)
    per_sample = (margins * others).sum(dim=1)  # (N,)
    return per_sample.mean() if reduction == "mean" else per_sample


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-(1/N) sum_i log softmax(z_i)[y_i]: the guide's -sum y log y_hat with a one-hot y and y_hat = softmax(z).

    logits: (N, C) raw scores (what SimpleCNN outputs), labels: (N,) class indices.
    log-softmax is z - logsumexp(z), which stays finite even for very confident logits.
    """
    logits = logits.reshape(-1, logits.shape[-1])  # (N, C)
    labels = torch.as_tensor(labels).reshape(-1).long()  # (N,)
    log_probs = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (N, C)
    one_hot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)  # (N, C)
    per_sample = -(one_hot * log_probs).sum(dim=1)  # (N,)
    return per_sample.mean() if reduction == "mean" else per_sample


LOSSES = {"MSE": mse, "MAE": mae, "MBE": mbe, "Hinge": hinge, "Cross-Entropy": cross_entropy}


def loss_and_gradient(name: str, predictions, targets) -> tuple[float, np.ndarray]:
    """(loss value, d loss / d predictions) by autograd.

    Regression losses take predictions and targets of the same shape. Hinge and Cross-Entropy take
    predictions as scores/logits (N, C) or (C,) and targets as class indices.
    """
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; choose one of {', '.join(LOSSES)}.")
    pred = torch.as_tensor(np.asarray(predictions, dtype=np.float64)).clone().requires_grad_(True)
    if name in CLASSIFICATION_LOSSES:
        target = torch.as_tensor(np.asarray(targets)).long()
    else:
        target = torch.as_tensor(np.asarray(targets, dtype=np.float64))
    value = LOSSES[name](pred, target)
    (grad,) = torch.autograd.grad(value, pred)
    return float(value.detach()), grad.numpy()


def true_class_probability_curves(probabilities, num_classes: int = 10) -> dict[str, np.ndarray]:
    """Cross-entropy and MSE (and their slopes) as the probability p of the true class goes from 0 to 1.

    The remaining 1 - p is spread evenly over the other classes. CE is computed on log-probabilities
    (softmax(log q) = q), MSE between the probability vector and the one-hot target; the slopes
    d loss / d p come from autograd.
    """
    p = torch.as_tensor(np.asarray(probabilities, dtype=np.float64)).clone().requires_grad_(True)  # (G,)
    rest = ((1.0 - p) / (num_classes - 1))[:, None].expand(-1, num_classes - 1)  # (G, C-1)
    probs = torch.cat([p[:, None], rest], dim=1)  # (G, C); class 0 is the true class
    labels = torch.zeros(len(p), dtype=torch.long)
    ce = cross_entropy(torch.log(probs), labels, reduction="none")  # (G,)
    one_hot = F.one_hot(labels, num_classes).to(probs.dtype)
    squared = ((probs - one_hot) ** 2).mean(dim=1)  # (G,) MSE over the C outputs
    (ce_slope,) = torch.autograd.grad(ce.sum(), p, retain_graph=True)
    (mse_slope,) = torch.autograd.grad(squared.sum(), p)
    return {"p": p.detach().numpy(), "ce": ce.detach().numpy(), "mse": squared.detach().numpy(),
            "ce_slope": ce_slope.numpy(), "mse_slope": mse_slope.numpy()}
