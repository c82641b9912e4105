"""Adam by hand, one row per step, checked against `torch.optim.Adam` on the same problem.

The toy problem is a 1-D bowl L(θ) = k·(θ − c)², so every quantity in the table is one number.
The gradient comes from autograd; what the hand implementation spells out is Adam itself.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class AdamSettings:
    """The four numbers that define Adam (torch's defaults except the learning rate)."""

    lr: float = 0.1  # α
    beta1: float = 0.9  # β₁: decay of the gradient average
    beta2: float = 0.999  # β₂: decay of the squared-gradient average
    eps: float = 1e-8  # ε: keeps the division finite


@dataclass(frozen=True)
class Bowl:
    """L(θ) = k·(θ − c)²: the simplest loss with a minimum at θ = c."""

    k: float = 1.0  # steepness
    c: float = 3.0  # where the minimum is

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return self.k * (theta - self.c) ** 2

    def latex(self) -> str:
        return rf"L(\theta) = {self.k:g}\,(\theta - {self.c:g})^2"


@dataclass(frozen=True)
class AdamStep:
    """One row of the table: what Adam computes at step t."""

    t: int
    theta: float  # θ before the step
    grad: float  # gₜ
    m: float  # mₜ
    v: float  # vₜ
    m_hat: float  # m̂ₜ
    v_hat: float  # v̂ₜ
    update: float  # α·m̂ₜ/(√v̂ₜ + ε), subtracted from θ
    theta_next: float  # θ after the step
    loss_next: float  # L(θ after the step)


def _gradient(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta: float) -> float:
    p = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(loss_fn(p), p)
    return float(g)


def adam_by_hand(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta0: float,
                 settings: AdamSettings, steps: int = 10, bias_correction: bool = True) -> list[AdamStep]:
    """Adam's formulas written out in plain float64 arithmetic, one AdamStep per step.

    bias_correction=False skips the division by 1 − βᵗ (m̂ = m, v̂ = v), to show what it is for;
    torch.optim.Adam always corrects, so only the corrected run has a torch reference.
    """
    a, b1, b2, eps = settings.lr, settings.beta1, settings.beta2, settings.eps
    theta, m, v = float(theta0), 0.0, 0.0
    rows = []
    for t in range(1, steps + 1):
        g = _gradient(loss_fn, theta)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t) if bias_correction else m
        v_hat = v / (1 - b2 ** t) if bias_correction else v
        update = a * m_hat / (v_hat ** 0.5 + eps)
        new_theta = theta - update
        loss_next = float(loss_fn(torch.tensor(new_theta, dtype=torch.float64)))
        rows.append(AdamStep(t, theta, g, m, v, m_hat, v_hat, update, new_theta, loss_next))
        theta = new_theta
    return rows


def torch_adam_thetas(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta0: float,
                      settings: AdamSettings, steps: int = 10) -> list[float]:
    """θ after each step when torch.optim.Adam does the updating (float64, single tensor path)."""
    p = torch.tensor([float(theta0)], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=settings.lr, betas=(settings.beta1, settings.beta2),
                           eps=settings.eps, foreach=False)
    thetas = []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(p).sum().backward()
        opt.step()
        thetas.append(float(p.detach()[0]))
    return thetas


@dataclass(frozen=True)
class TorchCheck:
    matches: bool
    max_difference: float  # largest |θ_hand − θ_torch| over all steps


def check_against_torch(rows: list[AdamStep], torch_thetas: list[float], tolerance: float = 1e-9) -> TorchCheck:
    diff = max((abs(r.theta_next - q) for r, q in zip(rows, torch_thetas, strict=True)), default=0.0)
    return TorchCheck(diff <= tolerance * max(1.0, max(abs(q) for q in torch_thetas)), diff)


def first_step_sizes(ks: tuple[float, ...], theta0: float, settings: AdamSettings, c: float = 3.0) -> dict[float, float]:
    """|θ₁ − θ₀| under torch.optim.Adam for bowls of different steepness k (Adam's scale invariance)."""
    return {k: abs(torch_adam_thetas(Bowl(k, c), theta0, settings, 1)[0] - theta0) for k in ks}


@dataclass(frozen=True)
class ParameterStep:
    """Adam's first step on one entry of a real model parameter."""

    index: int
    grad: float
    m: float
    v: float
    update_by_hand: float  # θ₀ − θ₁ from the formulas
    update_by_torch: float  # θ₀ − θ₁ that torch.optim.Adam applied
    update_uncorrected: float = 0.0  # θ₀ − θ₁ by hand if m and v were not bias-corrected


def first_step_on_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        settings: AdamSettings, param_name: str = "fc2.bias",
                        seed: int = 0) -> list[ParameterStep]:
    """One real training step (cross-entropy on a batch) on a copy of `model`, read at one parameter.

    The copy runs in training mode with a fixed seed for dropout; the model passed in is not touched.
    """
    work = copy.deepcopy(model).float().cpu().train()
    for m in work.modules():  # FastDropout: draw masks from the seeded torch stream below
        m.__dict__.pop("_rng", None)
    param = dict(work.named_parameters())[param_name]
    before = param.detach().clone().flatten()
    opt = torch.optim.Adam(work.parameters(), lr=settings.lr, betas=(settings.beta1, settings.beta2),
                           eps=settings.eps, foreach=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        loss = nn.functional.cross_entropy(work(images), labels)
    opt.zero_grad()
    loss.backward()
    g = param.grad.detach().clone().flatten().double()
    opt.step()
    after = param.detach().flatten()
    b1, b2 = settings.beta1, settings.beta2
    m = (1 - b1) * g
    v = (1 - b2) * g * g
    by_hand = settings.lr * (m / (1 - b1)) / ((v / (1 - b2)).sqrt() + settings.eps)
    uncorrected = settings.lr * m / (v.sqrt() + settings.eps)
    return [ParameterStep(i, float(g[i]), float(m[i]), float(v[i]), float(by_hand[i]),
                          float(before[i] - after[i]), float(uncorrected[i])) for i in range(len(g))]


def uncorrected_first_step_ratio(settings: AdamSettings) -> float:
    """First step without bias correction, in units of α, when |g| ≫ ε: (1 − β₁)/√(1 − β₂).

    At t = 1, m = (1 − β₁)g and v = (1 − β₂)g², so m/√v = (1 − β₁)/√(1 − β₂)·sign(g): with torch's
    defaults the step is about 3.16 α instead of α, and the first steps overshoot.
    """
    return (1 - settings.beta1) / (1 - settings.beta2) ** 0.5


@dataclass(frozen=True)
class CorrectionComparison:
    """|step| at each t of the same Adam run with and without bias correction."""

    with_correction: list[float]
    without_correction: list[float]
    final_with: float  # θ after the last step
    final_without: float


def compare_bias_correction(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta0: float,
                            settings: AdamSettings, steps: int) -> CorrectionComparison:
    """Run Adam by hand twice, correcting and not, to show what the correction changes step by step."""
    on = adam_by_hand(loss_fn, theta0, settings, steps, bias_correction=True)
    off = adam_by_hand(loss_fn, theta0, settings, steps, bias_correction=False)
    return CorrectionComparison([abs(r.update) for r in on], [abs(r.update) for r in off],
                                on[-1].theta_next, off[-1].theta_next)


def bias_correction_options(settings: AdamSettings) -> list[tuple[str, float]]:
    """Answer choices for "how long is step 1 without bias correction?": (text, ratio to α), distinct.

    The candidates are the true ratio and the ratios a learner gets by forgetting one of the two
    averages: 1 (corrected), 1 − β₁ (only m too small), 1/√(1 − β₂) (only v too small).
    """
    b1, b2 = settings.beta1, settings.beta2
    ratios = [1.0, uncorrected_first_step_ratio(settings), 1 - b1, 1 / (1 - b2) ** 0.5]
    options: list[tuple[str, float]] = []
    for r in ratios:
        text = "about α, the same as with correction" if r == 1.0 else f"about {r:.3g}·α"
        if all(text != t for t, _ in options):
            options.append((text, r))
    return options


def closest_option(options: list[tuple[str, float]], ratio: float) -> str:
    """The option whose ratio is nearest to the measured one on a log scale."""
    import math

    return min(options, key=lambda o: abs(math.log(max(o[1], 1e-300)) - math.log(max(ratio, 1e-300))))[0]
