"""Adversarial attacks on a SimpleCNN: how small a change to the pixels changes its answer.

The attacks are Captum's (`captum.robust.FGSM` and `PGD`); this module fixes the choices that
matter for a teaching tool and reports what they did:

* **Pixel space.** SimpleCNN reads raw pixels in [0, 1] with no normalisation, so ε is a number of
  that scale: ε = 0.1 lets every pixel move by at most 0.1, i.e. 25.5 of 255 grey levels. Every
  perturbed image is clamped back into [0, 1], so it stays a picture one could really show.
* **Loss.** Cross-entropy of the logits, computed in float64. A confident model (p = 0.99999) has a
  float32 cross-entropy gradient that rounds towards zero; Captum also skips pixels whose gradient is
  below its `zero_thresh` (1e-6), which would leave a confidently read digit untouched. In float64
  with `zero_thresh = 0` every pixel with a non-zero gradient moves, which is the textbook FGSM
  x + ε·sign(∇x loss).
* **PGD** (Madry et al., 2018): `steps` FGSM steps of `step_size` (default 2.5·ε/steps), each
  projected back into the ε-ball around the original and into [0, 1]. No random start, so the same
  settings give the same picture.
* **Smallest targeted change.** "Make it a 7": a targeted PGD inside an ε-ball, with ε found by
  bisection: the smallest ε (to a given resolution) at which the attack still succeeds. It is the
  smallest change *this search* found, an upper bound on the true minimum; the reported L∞ and L2
  sizes are measured on the perturbation actually returned.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from captum.robust import FGSM, PGD
from torch import nn

from .common import PIXEL_MAX, PIXEL_MIN, Stopwatch, evaluating, image_batch, one_image, probabilities

PGD_STEPS = 20  # default number of PGD steps: converged for SimpleCNN at the ε that matter (< 0.3)
MAX_PGD_STEPS = 100  # the page's bound: 100 steps on one image take well under a second
SEARCH_ITERATIONS = 8  # bisection steps of the targeted search: resolution max_epsilon / 2**8
METHODS = ("FGSM", "PGD")

# Captum switches requires_grad on for the images it attacks and warns each time; that is intended here.
warnings.filterwarnings("ignore", message=r"Input Tensor \d+ did not already require gradients",
                        category=UserWarning)


def cross_entropy64(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-image cross-entropy (N,) computed in float64, so a confident answer keeps a usable gradient."""
    return F.cross_entropy(logits.double(), labels, reduction="none")


def _labels(labels, n: int, device: torch.device) -> torch.Tensor:
    labels = torch.as_tensor(labels, dtype=torch.long, device=device).reshape(-1)
    if labels.numel() == 1 and n > 1:
        labels = labels.expand(n)
    if labels.numel() != n:
        raise ValueError(f"{labels.numel()} labels for {n} images.")
    return labels


def _fgsm(model: nn.Module) -> FGSM:
    attack = FGSM(model, loss_func=cross_entropy64, lower_bound=PIXEL_MIN, upper_bound=PIXEL_MAX)
    attack.zero_thresh = 0.0  # documented knob: move every pixel whose gradient is not exactly 0
    return attack


def _pgd(model: nn.Module) -> PGD:
    attack = PGD(model, loss_func=cross_entropy64, lower_bound=PIXEL_MIN, upper_bound=PIXEL_MAX)
    attack.fgsm.zero_thresh = 0.0
    return attack


def _check_epsilon(epsilon: float) -> float:
    epsilon = float(epsilon)
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"ε is a pixel change in [0, 1]; got {epsilon}.")
    return epsilon


def fgsm_batch(model: nn.Module, x, labels, epsilon: float, targeted: bool = False) -> torch.Tensor:
    """Fast Gradient Sign Method on a batch: clamp(x ± ε·sign(∇x CE), 0, 1), (N, 1, 28, 28).

    Untargeted (`labels` = the classes to move away from) it climbs the loss; targeted (`labels` =
    the classes to reach) it descends the loss of the target.
    """
    batch = image_batch(x, model)
    epsilon = _check_epsilon(epsilon)
    labels = _labels(labels, batch.shape[0], batch.device)
    with evaluating(model):
        return _fgsm(model).perturb(batch, epsilon, labels, targeted=targeted).detach()


def pgd_batch(model: nn.Module, x, labels, epsilon: float, steps: int = PGD_STEPS,
              step_size: float | None = None, targeted: bool = False) -> torch.Tensor:
    """Projected gradient descent inside the L∞ ball of radius ε, in [0, 1]: (N, 1, 28, 28)."""
    batch = image_batch(x, model)
    epsilon = _check_epsilon(epsilon)
    steps = int(steps)
    if not 1 <= steps <= 10_000:
        raise ValueError(f"PGD needs 1 to 10,000 steps; got {steps}.")
    labels = _labels(labels, batch.shape[0], batch.device)
    if epsilon == 0.0:
        return batch.clone()
    step = 2.5 * epsilon / steps if step_size is None else float(step_size)
    with evaluating(model):
        return _pgd(model).perturb(batch, radius=epsilon, step_size=step, step_num=steps, target=labels,
                                   targeted=targeted, norm="Linf").detach()


@dataclass(frozen=True, eq=False)
class AttackResult:
    """One attacked image: before, after, and the sizes of the change."""

    method: str  # "FGSM", "PGD" or "targeted PGD"
    epsilon: float  # the L∞ budget (pixel units, [0, 1])
    label: int  # untargeted: the class attacked; targeted: the class aimed for
    targeted: bool
    original: torch.Tensor  # (1, 1, 28, 28) in [0, 1]
    perturbed: torch.Tensor  # (1, 1, 28, 28) in [0, 1]
    probs_before: np.ndarray  # (num_classes,)
    probs_after: np.ndarray  # (num_classes,)
    seconds: float
    steps: int = 1

    @property
    def delta(self) -> np.ndarray:
        """perturbed − original, (28, 28)."""
        return (self.perturbed - self.original)[0, 0].double().cpu().numpy()

    @property
    def linf(self) -> float:
        """The largest change of any pixel (pixel units)."""
        return float(np.abs(self.delta).max())

    @property
    def l2(self) -> float:
        """The Euclidean length of the change over all 784 pixels."""
        return float(np.sqrt((self.delta ** 2).sum()))

    @property
    def changed_pixels(self) -> int:
        return int(np.count_nonzero(self.delta))

    @property
    def before(self) -> int:
        return int(self.probs_before.argmax())

    @property
    def after(self) -> int:
        return int(self.probs_after.argmax())

    @property
    def success(self) -> bool:
        """Targeted: the model now says the target; untargeted: it no longer says `label`."""
        return self.after == self.label if self.targeted else self.after != self.label


def _result(model, method, epsilon, label, targeted, original, perturbed, seconds, steps=1) -> AttackResult:
    probs = probabilities(model, torch.cat([original, perturbed]))  # (2, C)
    return AttackResult(method, float(epsilon), int(label), targeted, original.cpu(), perturbed.cpu(),
                        probs[0], probs[1], seconds, steps)


def attack(model: nn.Module, x, label: int, epsilon: float, method: str = "FGSM",
           steps: int = PGD_STEPS) -> AttackResult:
    """Untargeted FGSM or PGD on one image, away from `label` (its true class, or the model's answer)."""
    original = one_image(x, model)
    with Stopwatch() as watch:
        if method == "FGSM":
            perturbed, steps = fgsm_batch(model, original, label, epsilon), 1
        elif method == "PGD":
            perturbed = pgd_batch(model, original, label, epsilon, steps=steps)
        else:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return _result(model, method, epsilon, label, False, original, perturbed, watch.seconds, steps)


@dataclass(frozen=True, eq=False)
class TargetedSearch:
    """The smallest targeted change the bisection found, and the ε values it tried."""

    target: int
    found: AttackResult | None  # None: not even max_epsilon reaches the target
    max_epsilon: float
    tried: list[tuple[float, bool]] = field(default_factory=list)  # (ε, reached the target?) in order
    seconds: float = 0.0

    @property
    def largest_failure(self) -> float:
        """The largest ε tried at which the attack did not reach the target (0 if none failed)."""
        return max((eps for eps, ok in self.tried if not ok), default=0.0)


def smallest_targeted_change(model: nn.Module, x, target: int, max_epsilon: float = 0.5,
                             steps: int = PGD_STEPS, iterations: int = SEARCH_ITERATIONS) -> TargetedSearch:
    """Bisect ε for the smallest L∞ ball in which targeted PGD makes the model answer `target`.

    Each try is a full targeted PGD (`steps` steps) at that ε; the result kept is the perturbation
    of the smallest successful ε. Cost: (iterations + 1) PGD runs on one image.
    """
    original = one_image(x, model)
    target = int(target)
    tried: list[tuple[float, bool]] = []
    best: tuple[float, torch.Tensor] | None = None
    with Stopwatch() as watch:
        if int(probabilities(model, original)[0].argmax()) == target:  # already there: no change needed
            best = (0.0, original.clone())
            tried.append((0.0, True))
        else:
            lo, hi = 0.0, float(max_epsilon)
            for i in range(iterations + 1):
                eps = hi if i == 0 else (lo + hi) / 2  # first check that the largest ball is enough
                perturbed = pgd_batch(model, original, target, eps, steps=steps, targeted=True)
                ok = int(probabilities(model, perturbed)[0].argmax()) == target
                tried.append((eps, ok))
                if ok:
                    best, hi = (eps, perturbed), eps
                elif i == 0:
                    break  # unreachable within max_epsilon
                else:
                    lo = eps
    found = None
    if best is not None:
        found = _result(model, "targeted PGD", best[0], target, True, original, best[1], watch.seconds, steps)
    return TargetedSearch(target, found, float(max_epsilon), tried, watch.seconds)


def accuracy_under_attack(model: nn.Module, images, labels, epsilons: Sequence[float], method: str = "FGSM",
                          steps: int = PGD_STEPS, progress=None) -> np.ndarray:
    """Accuracy (fraction in [0, 1]) on a batch of labelled images after attacking each at every ε.

    One batched attack per ε; `progress(done, total)` is called after each, so a page can show it.
    """
    batch = image_batch(images, model)
    labels = _labels(labels, batch.shape[0], batch.device)
    accuracy = []
    for i, eps in enumerate(epsilons):
        if method == "FGSM":
            adversarial = fgsm_batch(model, batch, labels, eps)
        elif method == "PGD":
            adversarial = pgd_batch(model, batch, labels, eps, steps=steps)
        else:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        predicted = torch.as_tensor(probabilities(model, adversarial).argmax(axis=1), device=labels.device)
        accuracy.append(float((predicted == labels).double().mean()))
        if progress is not None:
            progress(i + 1, len(epsilons))
    return np.asarray(accuracy)


def epsilon_at_accuracy(epsilons: Sequence[float], accuracy: Sequence[float], level: float = 0.5) -> float | None:
    """The ε where the accuracy curve first falls below `level`, linearly interpolated; None if never."""
    eps, acc = np.asarray(epsilons, dtype=float), np.asarray(accuracy, dtype=float)
    for i in range(len(acc)):
        if acc[i] < level:
            if i == 0:
                return float(eps[0])
            # between the last point at or above the level and this one
            return float(eps[i - 1] + (acc[i - 1] - level) / (acc[i - 1] - acc[i]) * (eps[i] - eps[i - 1]))
    return None
