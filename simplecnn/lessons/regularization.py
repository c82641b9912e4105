"""Dropout and batch normalisation taken apart on real activations, plus a tiny overfitting experiment.

Everything works on copies: the model's own dropout random stream and BatchNorm running statistics
are never touched, so a lesson can poke at the live model safely.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..evaluation import evaluate_loss_accuracy
from ..model import FastDropout
from ..training import BatchEvent, EpochEvent, TrainConfig, Trainer


# -- dropout ---------------------------------------------------------------------------------------
def seeded_dropout(module: nn.Dropout, p: float, seed: int) -> nn.Dropout:
    """A training-mode copy of `module` with rate p whose masks repeat for the same seed."""
    drop = copy.deepcopy(module)
    drop.p = float(p)
    drop.train()
    if isinstance(drop, FastDropout):
        drop._rng = np.random.default_rng(seed)  # FastDropout draws from its own NumPy stream
    else:
        drop._lesson_seed = seed  # stock nn.Dropout draws from torch's stream: see _run_dropout
    return drop


def _run_dropout(drop: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    seed = getattr(drop, "_lesson_seed", None)
    if seed is None:
        return drop(x)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return drop(x)


@dataclass(frozen=True)
class DropoutView:
    """One dropout mask laid over real activations h, with what training and inference output."""

    p: float
    seed: int
    activations: torch.Tensor  # h, as it enters the dropout layer
    scaled_mask: torch.Tensor  # 0 where dropped, 1/(1−p) where kept (the module's own mask)
    train_output: torch.Tensor  # the module's output in training mode for this mask
    eval_output: torch.Tensor  # the module's output in eval mode (h unchanged)

    @property
    def keep(self) -> torch.Tensor:
        return self.scaled_mask != 0

    @property
    def scale(self) -> float:
        return 1.0 / (1.0 - self.p)

    @property
    def kept_fraction(self) -> float:
        return float(self.keep.float().mean())


def dropout_view(module: nn.Dropout, h: torch.Tensor, p: float, seed: int) -> DropoutView:
    """Read the mask that `module` (at rate p, seed) would draw for h, and its outputs.

    The mask is the module's output for an all-ones input with the same seed: exactly the
    multiplier the module applies to h (0 or 1/(1−p)).
    """
    h = h.detach().float().contiguous()
    scaled_mask = _run_dropout(seeded_dropout(module, p, seed), torch.ones_like(h))
    train_output = _run_dropout(seeded_dropout(module, p, seed), h)
    evaluator = copy.deepcopy(module).eval()
    with torch.no_grad():
        eval_output = evaluator(h)
    return DropoutView(float(p), seed, h, scaled_mask, train_output, eval_output.clone())


@dataclass(frozen=True)
class MonteCarloResult:
    """Averages of many training-mode outputs against the eval output."""

    counts: list[int]  # number of masks averaged
    mean_abs_error: list[float]  # mean |average − eval output| over all units, per count
    theory: list[float]  # large-K approximation of that error: √(2/π)·√(p/(1−p))·mean|h| / √count
    average: torch.Tensor  # the average over the largest count
    exact: list[float] = field(default_factory=list)  # its exact expected value (binomial), per count


def monte_carlo_expectation(module: nn.Dropout, h: torch.Tensor, p: float, seed: int,
                            counts: tuple[int, ...] = (1, 3, 10, 30, 100, 300, 1000),
                            chunk: int = 256) -> MonteCarloResult:
    """Average the module's training output over more and more masks; the average tends to h."""
    h = h.detach().float().contiguous()
    drop = seeded_dropout(module, p, seed)
    eval_output = copy.deepcopy(module).eval()(h)
    total = torch.zeros_like(h, dtype=torch.float64)
    drawn, errors = 0, []
    for target in sorted(counts):
        while drawn < target:
            k = min(chunk, target - drawn)
            batch = h.expand(k, *h.shape[1:]).contiguous() if h.shape[0] == 1 else \
                torch.cat([h] * k).contiguous()
            out = _run_dropout(drop, batch)  # k independent masks at once
            total += out.double().reshape(k, *h.shape).sum(0)
            drawn += k
        errors.append(float((total / drawn - eval_output.double()).abs().mean()))
    spread = math.sqrt(2 / math.pi) * math.sqrt(p / (1 - p)) * float(h.abs().double().mean()) if p > 0 else 0.0
    counts_sorted = sorted(counts)
    mean_abs_h = float(h.abs().double().mean())
    return MonteCarloResult(counts_sorted, errors, [spread / math.sqrt(c) for c in counts_sorted],
                            (total / drawn).float(), [mean_abs_h * exact_relative_error(p, c) for c in counts_sorted])


def exact_relative_error(p: float, k: int) -> float:
    """E|S/(k(1−p)) − 1| for S ~ Binomial(k, 1−p): the exact expected error of a k-mask average, per unit of |h|.

    Averaging k masks multiplies h by S/(k(1−p)), S being how many masks kept the unit. The normal
    approximation √(2/π)·√(p/(1−p))/√k is only right for large k (at k = 1 the exact value is 2p).
    """
    if p <= 0.0:
        return 0.0
    q = 1.0 - p
    if q <= 0.0:
        return 1.0
    total = 0.0
    for s in range(k + 1):
        log_pmf = (math.lgamma(k + 1) - math.lgamma(s + 1) - math.lgamma(k - s + 1)
                   + s * math.log(q) + (k - s) * math.log(p))
        total += math.exp(log_pmf) * abs(s / (k * q) - 1.0)
    return total


def values_seen_in_training(module: nn.Dropout, value: float, p: float, seed: int = 0,
                            n: int = 10_000) -> list[float]:
    """The distinct outputs the module produces in training mode for an input that is always `value`."""
    out = _run_dropout(seeded_dropout(module, p, seed), torch.full((1, n), float(value)))
    return sorted({round(float(v), 6) for v in out.unique()})


@dataclass(frozen=True)
class Wobble:
    """Class probabilities of one image over repeated forward passes, in three modes of the same model."""

    eval_probs: np.ndarray  # (C,) eval mode: deterministic
    dropout_probs: np.ndarray  # (passes, C) only the dropout layers training, batch norm on running statistics
    train_probs: np.ndarray  # (passes, C) full train mode: batch norm also uses this one image's statistics

    @property
    def predicted(self) -> int:
        return int(self.eval_probs.argmax())

    def largest_change(self, which: str) -> float:
        """max over passes of |p(predicted class) − its eval value| for 'dropout' or 'train'."""
        probs = self.dropout_probs if which == "dropout" else self.train_probs
        return float(np.abs(probs[:, self.predicted] - self.eval_probs[self.predicted]).max())

    def flips(self, which: str) -> int:
        """How many passes changed the predicted class."""
        probs = self.dropout_probs if which == "dropout" else self.train_probs
        return int((probs.argmax(1) != self.predicted).sum())


def dropout_wobble(model: nn.Module, image: torch.Tensor, passes: int = 20) -> Wobble:
    """Run one image `passes` times with dropout alone and in full train mode (seeds 0..passes−1).

    Separating the two matters: in full train mode batch norm normalises the single image with its
    own per-channel mean and variance instead of the running statistics, which changes the
    prediction far more than dropout does. The model's state is restored by `activations`.
    """
    from ..inspection import activations

    image = image.unsqueeze(0) if image.dim() == 2 else image
    ev = activations(model, image, mode="eval")["softmax"][0].numpy()
    runs = {mode: np.stack([activations(model, image, mode=mode, seed=s)["softmax"][0].numpy()
                            for s in range(passes)]) for mode in ("dropout", "train")}
    return Wobble(ev, runs["dropout"], runs["train"])


@dataclass(frozen=True)
class SingleImageNorm:
    """batch1 on one image: the statistics train mode would use against the running ones, per channel."""

    own_mean: torch.Tensor  # (C,) mean of this image's conv1 map (24×24 values) per channel
    own_var: torch.Tensor  # (C,) its biased variance
    running_mean: torch.Tensor  # (C,) what eval mode uses
    running_var: torch.Tensor  # (C,)

    def mean_shift(self) -> torch.Tensor:
        """|own mean − running mean| in running standard deviations, per channel."""
        return (self.own_mean - self.running_mean).abs() / self.running_var.sqrt()

    def scale_ratio(self) -> torch.Tensor:
        """√(running var / own var): how much more train mode stretches each channel than eval mode."""
        return (self.running_var / (self.own_var + 1e-12)).sqrt()


def single_image_norm(model: nn.Module, image: torch.Tensor) -> SingleImageNorm | None:
    """The per-channel statistics batch1 would normalise one image with in train mode (None without BN)."""
    bn = getattr(model, "batch1", None)
    if not isinstance(bn, nn.BatchNorm2d):
        return None
    x = image.float().reshape(1, 1, *image.shape[-2:])
    x = x / 255.0 if image.dtype == torch.uint8 else x
    with torch.no_grad():
        out = model.conv1(x)  # (1, C, 24, 24)
    return SingleImageNorm(out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3), unbiased=False),
                           bn.running_mean.detach().clone(), bn.running_var.detach().clone())


@dataclass(frozen=True)
class Conventions:
    """The two ways of keeping dropout's expected output right, on the same mask and activations h."""

    inverted_train: torch.Tensor  # h·keep/(1−p): scale while training (torch, SimpleCNN)
    inverted_eval: torch.Tensor  # h: nothing to do at inference
    classic_train: torch.Tensor  # h·keep: drop without scaling while training
    classic_eval: torch.Tensor  # (1−p)·h: scale everything down at inference instead


def dropout_conventions(view: DropoutView) -> Conventions:
    """Both conventions for the mask in `view`: they differ only by the constant factor 1−p everywhere.

    The classic network's next layer sees activations (1−p) times smaller in both modes, which its
    weights absorb; the inverted form keeps inference untouched, which is why frameworks use it.
    """
    keep = view.keep.float()
    h = view.activations
    return Conventions(view.train_output, view.eval_output, h * keep, (1.0 - view.p) * h)


# -- batch normalisation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchNormView:
    """What BatchNorm2d does to a batch (N, C, H, W), by hand and by the module, in both modes."""

    inputs: torch.Tensor  # (N, C, H, W)
    eps: float
    momentum: float
    gamma: torch.Tensor  # (C,) γ used
    beta: torch.Tensor  # (C,) β used
    batch_mean: torch.Tensor  # (C,) mean over N, H, W
    batch_var: torch.Tensor  # (C,) biased variance: what training-mode normalisation divides by
    running_mean: torch.Tensor  # (C,) the module's buffer (not changed)
    running_var: torch.Tensor  # (C,)
    x_hat_train: torch.Tensor  # (x − batch mean) / √(batch var + ε)
    y_train: torch.Tensor  # γ·x̂ + β with batch statistics
    x_hat_eval: torch.Tensor  # (x − running mean) / √(running var + ε)
    y_eval: torch.Tensor  # γ·x̂ + β with running statistics
    module_train: torch.Tensor  # nn.BatchNorm2d's own output in training mode
    module_eval: torch.Tensor  # nn.BatchNorm2d's own output in eval mode
    running_mean_after: torch.Tensor  # where one training forward would move the running mean
    running_var_after: torch.Tensor  # ... and the running variance (unbiased batch variance)

    def max_difference(self) -> float:
        return max(float((self.y_train - self.module_train).abs().max()),
                   float((self.y_eval - self.module_eval).abs().max()))


def _per_channel(t: torch.Tensor) -> torch.Tensor:
    return t.view(1, -1, 1, 1)


def batch_norm_view(bn: nn.BatchNorm2d, x: torch.Tensor, gamma: torch.Tensor | None = None,
                    beta: torch.Tensor | None = None) -> BatchNormView:
    """Normalise x by the formulas and by a copy of `bn` (γ, β optionally replaced); `bn` is untouched."""
    x = x.detach().float()
    g = (bn.weight if gamma is None else torch.as_tensor(gamma)).detach().float().clone()
    bt = (bn.bias if beta is None else torch.as_tensor(beta)).detach().float().clone()
    eps, momentum = float(bn.eps), float(bn.momentum)
    running_mean = bn.running_mean.detach().float().clone()
    running_var = bn.running_var.detach().float().clone()
    mean = x.mean(dim=(0, 2, 3))  # (C,)
    var = x.var(dim=(0, 2, 3), unbiased=False)  # (C,)
    x_hat_train = (x - _per_channel(mean)) / torch.sqrt(_per_channel(var) + eps)
    x_hat_eval = (x - _per_channel(running_mean)) / torch.sqrt(_per_channel(running_var) + eps)
    y_train = _per_channel(g) * x_hat_train + _per_channel(bt)
    y_eval = _per_channel(g) * x_hat_eval + _per_channel(bt)

    work = copy.deepcopy(bn)
    with torch.no_grad():
        work.weight.copy_(g)
        work.bias.copy_(bt)
        module_eval = work.eval()(x).clone()
        module_train = work.train()(x).clone()  # updates only the copy's running statistics
    return BatchNormView(x, eps, momentum, g, bt, mean, var, running_mean, running_var,
                         x_hat_train, y_train, x_hat_eval, y_eval, module_train, module_eval,
                         work.running_mean.detach().clone(), work.running_var.detach().clone())


def with_channel(values: torch.Tensor, channel: int, value: float) -> torch.Tensor:
    """A copy of a per-channel vector with one entry replaced (for a γ or β slider)."""
    out = values.detach().float().clone()
    out[channel] = float(value)
    return out


@dataclass(frozen=True)
class BatchDependence:
    """How much one image's BatchNorm output moves when it is normalised alone vs inside a batch."""

    train_mode: float  # max |difference| with batch statistics
    eval_mode: float  # max |difference| with running statistics


def alone_vs_in_batch(bn: nn.BatchNorm2d, x: torch.Tensor, index: int = 0) -> BatchDependence:
    """Run image `index` through a copy of bn alone and as part of x, in both modes."""
    work = copy.deepcopy(bn)
    x = x.detach().float()
    with torch.no_grad():
        diffs = []
        for training in (True, False):
            work.train(training)
            in_batch = work(x)[index]
            alone = work(x[index:index + 1])[0]
            diffs.append(float((in_batch - alone).abs().max()))
    return BatchDependence(*diffs)


# -- overfitting -----------------------------------------------------------------------------------
@dataclass
class TinyRun:
    """Curves of one short training run, with the training split also measured in eval mode."""

    label: str
    config: dict
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # eval mode, on the training split
    val_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)  # eval mode, %
    val_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    train_images: int = 0
    val_images: int = 0

    @property
    def gap(self) -> float:
        """Validation loss minus training loss at the last epoch: how much was memorised."""
        return self.val_loss[-1] - self.train_loss[-1]


def overfitting_variants() -> dict[str, dict]:
    """Regularisation switches to compare, using SimpleCNN's default dropout rates."""
    d = TrainConfig()
    return {
        "no dropout, no batch norm": dict(dropout1=0.0, dropout2=0.0, batch_norm=False),
        "dropout only": dict(dropout1=d.dropout1, dropout2=d.dropout2, batch_norm=False),
        "batch norm only": dict(dropout1=0.0, dropout2=0.0, batch_norm=True),
        "dropout + batch norm (SimpleCNN)": dict(dropout1=d.dropout1, dropout2=d.dropout2, batch_norm=True),
    }


def train_tiny(label: str, config: TrainConfig, dataset: Dataset,
               on_progress: Callable[[float, str], None] | None = None) -> TinyRun:
    """Train with the core Trainer; after each epoch also score the training split in eval mode.

    The trainer's own training loss is averaged over the epoch with dropout on, which is not
    comparable with the validation loss; scoring both splits the same way shows the real gap.
    """
    run = TinyRun(label, config.to_dict())
    trainer: Trainer | None = None

    def callback(event: object) -> None:
        if isinstance(event, BatchEvent) and on_progress is not None:
            on_progress(event.progress, f"{label}: epoch {event.epoch}/{event.epochs}, "
                                        f"batch {event.batch}/{event.batches_per_epoch}")
        elif isinstance(event, EpochEvent):
            idx = trainer.train_idx
            loss, acc = evaluate_loss_accuracy(trainer.model, dataset.train_images[idx],
                                               dataset.train_labels[idx], path=trainer.path)
            run.epochs.append(event.epoch)
            run.train_loss.append(loss)
            run.train_accuracy.append(acc)
            run.val_loss.append(event.val_loss)
            run.val_accuracy.append(event.val_accuracy)

    start = time.perf_counter()
    trainer = Trainer(config, dataset=dataset, callbacks=[callback])
    run.train_images, run.val_images = len(trainer.train_idx), len(trainer.val_idx)
    trainer.fit()
    run.seconds = time.perf_counter() - start
    return run
