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


def logit_gradient_curves(probabilities, num_classes: int = 10) -> dict[str, np.ndarray]:
    """Cross-entropy and MSE-on-softmax, and their gradients with respect to the true class's logit.

    Training moves logits, not probabilities, so dL/dz_y is the push a confidently wrong model gets.
    The true class gets probability p and the other classes share 1 - p evenly; the logits are
    log q (softmax(log q) = q). CE's logit gradient is p - 1 (bounded by 1 in size); MSE's passes
    through softmax's slope p(1 - p), which vanishes as p -> 0. Gradients come from autograd.
    """
    p = torch.as_tensor(np.asarray(probabilities, dtype=np.float64))  # (G,)
    rest = ((1.0 - p) / (num_classes - 1))[:, None].expand(-1, num_classes - 1)  # (G, C-1)
    logits = torch.log(torch.cat([p[:, None], rest], dim=1)).requires_grad_(True)  # (G, C); class 0 is true
    labels = torch.zeros(len(p), dtype=torch.long)
    ce = cross_entropy(logits, labels, reduction="none")  # (G,)
    one_hot = F.one_hot(labels, num_classes).to(logits.dtype)
    squared = ((torch.softmax(logits, dim=1) - one_hot) ** 2).mean(dim=1)  # (G,) MSE over the C outputs
    (ce_grad,) = torch.autograd.grad(ce.sum(), logits, retain_graph=True)
    (mse_grad,) = torch.autograd.grad(squared.sum(), logits)
    return {"p": p.numpy(), "ce": ce.detach().numpy(), "mse": squared.detach().numpy(),
            "ce_grad": ce_grad[:, 0].numpy(), "mse_grad": mse_grad[:, 0].numpy()}


def hinge_terms(scores, true_class: int) -> list[dict[str, str]]:
    """One row per class for the hinge table, every cell already text.

    The true class has no hinge term; a missing number would be shown as "None" by the browser's
    table, so the row says in words why it is empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    probs = softmax_with_temperature(scores)
    rows = []
    for j, s in enumerate(scores):
        margin = s - scores[true_class] + 1.0
        rows.append({"class j": str(j), "s_j - s_y + 1": f"{margin:+.4f}",
                     "hinge term max(0, ·)": "— (j = y, not counted)" if j == true_class else f"{max(0.0, margin):.4f}",
                     "softmax probability": f"{probs[j]:.4f}"})
    return rows


def log_softmax_then_nll(logits, label: int) -> dict[str, np.ndarray | float]:
    """Cross-entropy taken apart: log-softmax (z - logsumexp z), then NLL (minus the true class's entry).

    torch's F.cross_entropy is exactly F.nll_loss(F.log_softmax(z)); writing the two halves out shows
    that the loss is one picked number of a vector the network could have output itself.
    """
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))  # (C,)
    log_sum_exp = float(torch.logsumexp(z, dim=0))
    log_probs = z - log_sum_exp  # (C,)
    return {"logits": z.numpy(), "logsumexp": log_sum_exp, "log_softmax": log_probs.numpy(),
            "nll": float(-log_probs[int(label)])}


def largest_losses(logits: torch.Tensor, labels: torch.Tensor, count: int = 8) -> dict[str, np.ndarray]:
    """The `count` images with the largest cross-entropy, largest first, with what the model said.

    logits: (N, C), labels: (N,). Returns indices, labels, predictions, p(true class) and losses.
    """
    logits = logits.double()
    losses = cross_entropy(logits, labels, reduction="none")  # (N,)
    order = torch.argsort(losses, descending=True)[:count]
    probs = torch.softmax(logits, dim=1)
    return {"index": order.numpy(), "label": labels[order].numpy(), "predicted": logits[order].argmax(1).numpy(),
            "p_true": probs[order].gather(1, labels[order, None])[:, 0].numpy(), "loss": losses[order].numpy(),
            "share": float(losses[order].sum() / losses.sum()), "mean_loss": float(losses.mean()),
            "mistakes_in_set": int((logits.argmax(1) != labels).sum())}


def describe_largest_losses(worst: dict[str, np.ndarray]) -> str:
    """A sentence about the listed images that is true for exactly those images.

    A well-trained model may make no mistake at all in a small sample; then its largest losses are
    correct but unsure answers, and saying "confident mistakes" would be false.
    """
    wrong = worst["predicted"] != worst["label"]
    shown, n_wrong = len(wrong), int(wrong.sum())
    parts = []
    if n_wrong:
        pw = worst["p_true"][wrong]
        parts.append(f"{n_wrong} of these {shown} are mistakes (the predicted digit is not the label), with "
                     f"p(true class) between {pw.min():.3f} and {pw.max():.3f}")
    if n_wrong < shown:
        pr = worst["p_true"][~wrong]
        parts.append(f"{shown - n_wrong} {'is' if shown - n_wrong == 1 else 'are'} classified correctly but "
                     f"without confidence (p(true class) between {pr.min():.3f} and {pr.max():.3f})")
    return "; ".join(parts) + "."


def logit_gradient_length(p_true: float, classes: int = 2) -> float:
    """|dL/dz| of cross-entropy for an image whose true class gets probability p_true, by autograd.

    The rest of the probability is spread evenly over the other classes. Cross-entropy's gradient
    with respect to the logits is softmax - onehot, so its length stays below sqrt(2) however
    small p_true is: a confident mistake is pushed harder than a good answer, but not 1/p harder.
    """
    rest = (1.0 - p_true) / (classes - 1)
    probs = torch.tensor([p_true] + [rest] * (classes - 1), dtype=torch.float64)
    logits = torch.log(probs).requires_grad_(True)  # softmax(log p) = p
    F.cross_entropy(logits[None], torch.tensor([0])).backward()
    return float(logits.grad.norm())

