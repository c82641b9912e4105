"""Adam with a bias-correction switch, trained on real MNIST batches (lesson 8).

`torch.optim.Adam` always divides m and v by 1 − βᵗ, so it cannot show what that division is for.
`HandAdam` is Adam written out with the correction as an option; with it on it equals torch's
optimizer (tested weight for weight on SimpleCNN). `train_adam_run` trains a fresh SimpleCNN for a
few dozen steps and records each step's loss and mean |Δw| / α; the lesson queues it through the
worker processes (simplecnn.comparison), never on a page thread.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn

from ..data import Dataset, split_indices, to_float
from ..model import SimpleCNN
from ..training import TrainConfig

# The two runs the lesson compares, by the label the comparison queue carries.
ADAM_VARIANTS = {"with bias correction": True, "without bias correction": False}
MAX_ADAM_STEPS = 100  # bound on the steps one run may take (the page offers at most 60)


class HandAdam(torch.optim.Optimizer):
    """Adam's update rule, line by line, with `bias_correction` as a switch.

    m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,  w ← w − α·m̂/(√v̂ + ε),
    where m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ) with the correction and m̂ = m, v̂ = v without it.
    """

    def __init__(self, params: Iterable[nn.Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, bias_correction: bool = True) -> None:
        if not lr > 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1 or not eps >= 0:
            raise ValueError(f"Adam needs lr > 0, 0 ≤ β < 1, ε ≥ 0 (got {lr}, {betas}, {eps})")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, bias_correction=bias_correction))

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"], state["m"], state["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                state["step"] += 1
                t, g = state["step"], p.grad
                m = state["m"].mul_(b1).add_(g, alpha=1 - b1)  # smoothed gradient
                v = state["v"].mul_(b2).addcmul_(g, g, value=1 - b2)  # smoothed squared gradient
                if group["bias_correction"]:
                    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
                else:
                    m_hat, v_hat = m, v
                p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))
        return loss


def constant_gradient_ratio(t: int, beta1: float = 0.9, beta2: float = 0.999) -> float:
    """|uncorrected step| / |corrected step| at step t when the gradient never changes (and |g| ≫ ε).

    Then m = (1 − β₁ᵗ)g and v = (1 − β₂ᵗ)g², so m/√v = (1 − β₁ᵗ)/√(1 − β₂ᵗ)·sign(g) while the
    corrected step is exactly sign(g): at t = 1 that is (1 − β₁)/√(1 − β₂) (3.16 at torch's defaults).
    """
    return (1 - beta1 ** t) / (1 - beta2 ** t) ** 0.5


@dataclass
class AdamRun:
    """One short training of a fresh SimpleCNN with HandAdam: what each step did."""

    label: str
    bias_correction: bool
    lr: float
    beta1: float
    beta2: float
    batch_size: int
    losses: list[float] = field(default_factory=list)  # cross-entropy of each batch, before its step
    update_ratios: list[float] = field(default_factory=list)  # mean |Δw| / α over all weights, per step
    seconds: float = 0.0


def adam_config(steps: int, lr: float, batch_size: int = 64, seed: int = 0) -> TrainConfig:
    """The TrainConfig the comparison queue carries: `steps` batches of fresh training images, no validation."""
    if not 1 <= steps <= MAX_ADAM_STEPS:
        raise ValueError(f"steps must be from 1 to {MAX_ADAM_STEPS} (got {steps})")
    return TrainConfig(learning_rate=lr, epochs=1, batch_size=batch_size, validation_split=0.0,
                       subset=steps * batch_size, seed=seed, log_every=1).validate()


def mnist_batches(dataset: Dataset, config: TrainConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The run's batches, in order: a seeded sample of `subset` training images cut into batches."""
    order, _ = split_indices(len(dataset.train_labels), 0.0, config.seed, config.subset)
    steps = len(order) // config.batch_size
    return [(to_float(dataset.train_images[idx]), dataset.train_labels[idx])  # (B, 1, 28, 28), (B,)
            for idx in order[:steps * config.batch_size].view(steps, config.batch_size)]


def train_steps(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], optimizer: torch.optim.Optimizer,
                lr: float, on_step: Callable[[int, float, float], None] | None = None
                ) -> tuple[list[float], list[float]]:
    """zero_grad → forward → loss → backward → step for each batch; (losses, mean |Δw| / α per step)."""
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    losses, ratios = [], []
    model.train()
    for i, (x, y) in enumerate(batches):
        before = [p.detach().clone() for p in params]
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        moved = sum(float((p.detach() - b).abs().double().sum()) for p, b in zip(params, before))
        losses.append(loss.item())
        ratios.append(moved / n / lr)
        if on_step is not None:
            on_step(i + 1, losses[-1], ratios[-1])
    return losses, ratios


def train_adam_run(label: str, config: TrainConfig, dataset: Dataset,
                   on_progress: Callable[[float, str], None] | None = None) -> AdamRun:
    """Train a fresh SimpleCNN (seeded: both variants start from the same weights and dropout masks)."""
    bias_correction = ADAM_VARIANTS[label]
    batches = mnist_batches(dataset, config)
    if not 1 <= len(batches) <= MAX_ADAM_STEPS:
        raise ValueError(f"An Adam run takes 1 to {MAX_ADAM_STEPS} steps (got {len(batches)})")
    torch.manual_seed(config.seed)  # the same weights and the same dropout stream for every variant
    model = SimpleCNN(dropout1=config.dropout1, dropout2=config.dropout2, batch_norm=config.batch_norm)
    b1, b2 = 0.9, 0.999  # torch's defaults
    optimizer = HandAdam(model.parameters(), lr=config.learning_rate, betas=(b1, b2), bias_correction=bias_correction)
    run = AdamRun(label, bias_correction, config.learning_rate, b1, b2, config.batch_size)

    def progress(step: int, loss: float, ratio: float) -> None:
        if on_progress is not None:
            on_progress(step / len(batches), f"{label}: step {step}/{len(batches)}, loss {loss:.3f}")

    start = time.perf_counter()
    run.losses, run.update_ratios = train_steps(model, batches, optimizer, config.learning_rate, progress)
    run.seconds = time.perf_counter() - start
    return run
