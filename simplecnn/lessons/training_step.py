"""One real training step, spelled out: zero_grad → forward → loss → backward → step.

Everything runs on a copy of the model, so the learner's model (or the bundled one) keeps its weights.
The copy trains in train mode (dropout on, batch norm on batch statistics) with a fixed seed, the way
the trainer does; the loss before and after is measured on the same batch in eval mode. Between the
two, the weights moved and batch norm's running statistics took one momentum step towards this
batch's statistics, exactly as in the trainer.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..model import SimpleCNN


@dataclass(frozen=True)
class ParameterMove:
    """How one parameter tensor changed in the step."""

    name: str
    numel: int
    grad_norm: float  # ‖∂L/∂W‖ after backward
    max_change: float  # largest |ΔW| over its entries
    relative_change: float  # ‖ΔW‖ / ‖W before‖
    top_index: tuple[int, ...]  # entry that moved most
    top_before: float
    top_after: float


@dataclass(frozen=True)
class TrainingStep:
    """What each line of a training step did on one batch."""

    grads_before_zero_grad: bool  # were there gradients left over before zero_grad()?
    train_loss: float  # the loss backward() differentiated (train mode)
    eval_loss_before: float  # the batch's loss in eval mode before the step
    eval_loss_after: float  # ... and after
    correct_before: int  # eval-mode correct predictions on the batch
    correct_after: int
    moves: list[ParameterMove]  # one per parameter tensor, largest max_change first
    updates: dict[str, torch.Tensor]  # name -> ΔW
    grads: dict[str, torch.Tensor]  # name -> ∂L/∂W (what step() used)


def _eval_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    model.eval()
    with torch.no_grad():
        logits = model(images)
    return float(nn.functional.cross_entropy(logits, labels)), int((logits.argmax(1) == labels).sum())


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """The two optimizers the Train page offers (torch defaults apart from the learning rate)."""
    if name == "SGD":
        return torch.optim.SGD(params, lr=lr)
    if name == "Adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


def training_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                  optimizer: str = "SGD", seed: int = 0) -> TrainingStep:
    """Run one step on a copy of `model`, keeping every intermediate number a lesson wants to show.

    A stale gradient is put on the copy first (as if an earlier backward had run) so zero_grad() has
    something to clear: without it, backward() would add the new gradient to the old one.
    """
    work = copy.deepcopy(model).float().cpu()
    for m in work.modules():  # FastDropout: draw the masks from the seeded torch stream below
        m.__dict__.pop("_rng", None)
    params = dict(work.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    loss_before, correct_before = _eval_loss(work, images, labels)
    for p in params.values():
        p.grad = torch.ones_like(p)  # a leftover gradient from "the previous batch"
    opt = make_optimizer(optimizer, work.parameters(), lr)

    opt.zero_grad()  # 1. forget the previous batch's gradients
    stale = any(p.grad is not None and bool(p.grad.abs().sum()) for p in params.values())
    work.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        logits = work(images)  # 2. forward (train mode: dropout on, batch norm on batch statistics)
    loss = nn.functional.cross_entropy(logits, labels)  # 3. loss
    loss.backward()  # 4. backward: ∂L/∂W for every parameter
    grads = {n: p.grad.detach().clone() for n, p in params.items()}
    opt.step()  # 5. step: W ← W − lr · ∂L/∂W (SGD) or Adam's rule

    loss_after, correct_after = _eval_loss(work, images, labels)
    updates = {n: p.detach() - before[n] for n, p in params.items()}
    moves = []
    for n, delta in updates.items():
        flat = int(delta.abs().argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), delta.shape))
        moves.append(ParameterMove(n, delta.numel(), float(grads[n].norm()), float(delta.abs().max()),
                                   float(delta.norm() / before[n].norm().clamp_min(1e-12)), index,
                                   float(before[n][index]), float(params[n].detach()[index])))
    moves.sort(key=lambda m: -m.max_change)
    return TrainingStep(stale, loss.item(), loss_before, loss_after, correct_before, correct_after,
                        moves, updates, grads)


def fresh_model(seed: int = 0) -> SimpleCNN:
    """An untrained SimpleCNN with fixed random weights, for a step whose effect is easy to see."""
    torch.manual_seed(seed)
    return SimpleCNN().eval()


# -- lesson 15's question: how far does a bias that feeds batch norm move? ----------------------------------
BIAS_MOVE_OPTIONS = ("further than conv1.weight's largest change",
                     "less far, but more than a thousandth of conv1.weight's largest change",
                     "practically not at all: under a thousandth of conv1.weight's largest change")


def bias_move_ratio(step: TrainingStep, bias: str = "conv1.bias", weight: str = "conv1.weight") -> float:
    """Largest |Δ| of the bias over the largest |Δ| of its layer's weights in this step."""
    return float(step.updates[bias].abs().max()) / max(float(step.updates[weight].abs().max()), 1e-30)


def bias_move_option(ratio: float) -> str:
    """The option of BIAS_MOVE_OPTIONS that the measured ratio falls in (they split [0, ∞) at 1e-3 and 1)."""
    return BIAS_MOVE_OPTIONS[0] if ratio >= 1 else BIAS_MOVE_OPTIONS[1] if ratio >= 1e-3 else BIAS_MOVE_OPTIONS[2]
