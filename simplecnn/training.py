"""Training: a config, a trainer that reports through callbacks, and a JSON-friendly history.

The trainer never prints. It calls back with `BatchEvent`s every few batches and an `EpochEvent`
at each epoch end; a callback (or another thread, via `request_stop`) can stop it between batches,
after which the model, optimizer and history are consistent and `fit()` resumes where it stopped.
"""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from .accel import ComputePath, choose_compute_path
from .data import Dataset, iterate_batches, load_dataset, split_indices
from .model import SimpleCNN

OPTIMIZERS = ("adam", "sgd", "momentum", "rmsprop", "adagrad")
LR_SCHEDULES = ("constant", "onecycle", "cosine")


def _sentence(problems: list[str]) -> str:
    text = "; ".join(problems)
    return text[:1].upper() + text[1:] + "."


@dataclass
class TrainConfig:
    """Everything that decides a training run; plain values so it serialises to JSON."""

    learning_rate: float = 1e-3  # step size of the optimizer
    epochs: int = 10  # full passes over the training split
    batch_size: int = 64  # images per optimizer step
    validation_split: float = 0.2  # fraction of the training images held out for validation
    dropout1: float = 0.45  # dropout after the first conv block
    dropout2: float = 0.35  # dropout after the second conv block
    batch_norm: bool = True  # BatchNorm2d after each convolution
    optimizer: str = "adam"  # one of OPTIMIZERS
    weight_decay: float = 0.0  # L2 penalty passed to the optimizer
    subset: int | None = None  # use only this many training images (train + validation); None = all
    seed: int = 0  # seeds the split, the initial weights, shuffling and dropout
    device: str = "auto"  # "auto", "cpu" or "cuda"
    dataset: str = "mnist"  # "mnist" or "fashion-mnist"
    lr_schedule: str = "constant"  # "constant", "onecycle" (warm-up then anneal) or "cosine"
    augment: bool = False  # random +-2 px shifts of training images
    fast: bool = True  # channels_last / mixed precision where the hardware supports it
    log_every: int = 10  # batches between BatchEvents

    def validate(self) -> "TrainConfig":
        """Raise ValueError with a human message for settings that cannot train (or of the wrong type)."""
        problems = self._type_problems()
        if problems:  # the value checks below assume the right types
            raise ValueError(_sentence(problems))
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            problems.append(f"learning rate must be a positive number (got {self.learning_rate})")
        if not isinstance(self.epochs, int) or not 1 <= self.epochs <= 1000:
            problems.append(f"epochs must be a whole number from 1 to 1000 (got {self.epochs})")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 65536:
            problems.append(f"batch size must be from 1 to 65536 (got {self.batch_size})")
        if not 0.0 <= self.validation_split < 1.0:
            problems.append(f"validation split must be in [0, 1) (got {self.validation_split})")
        for name in ("dropout1", "dropout2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1) (got {getattr(self, name)})")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
        if self.weight_decay < 0:
            problems.append("weight decay cannot be negative")
        if self.subset is not None and self.subset < 10:
            problems.append(f"training subset must be at least 10 images (got {self.subset})")
        if problems:
            raise ValueError(_sentence(problems))
        return self

    def _type_problems(self) -> list[str]:
        """Settings from a file or a link can be anything: name each value of the wrong type."""
        numbers = ("learning_rate", "validation_split", "dropout1", "dropout2", "weight_decay")
        whole = ("epochs", "batch_size", "seed", "log_every")
        flags = ("batch_norm", "augment", "fast")
        words = ("optimizer", "device", "dataset", "lr_schedule")
        problems = []
        for name in numbers:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{name} must be a finite number (got {value!r:.40})")
        for name in whole:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{name} must be a whole number (got {value!r:.40})")
        for name in flags:
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false (got {getattr(self, name)!r:.40})")
        for name in words:
            if not isinstance(getattr(self, name), str):
                problems.append(f"{name} must be text (got {getattr(self, name)!r:.40})")
        if self.subset is not None and (isinstance(self.subset, bool) or not isinstance(self.subset, int)):
            problems.append(f"subset must be a whole number or empty (got {self.subset!r:.40})")
        if isinstance(self.log_every, int) and not isinstance(self.log_every, bool) and self.log_every < 1:
            problems.append("log_every must be at least 1")
        return problems

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def label(self) -> str:
        """Short description for legends: the settings a learner usually changes."""
        parts = [f"{self.optimizer} lr={self.learning_rate:g}", f"bs={self.batch_size}",
                 f"drop={self.dropout1:g}/{self.dropout2:g}"]
        if not self.batch_norm:
            parts.append("no BN")
        if self.subset:
            parts.append(f"n={self.subset}")
        return ", ".join(parts)


@dataclass
class BatchEvent:
    """Progress inside an epoch, sent every `log_every` batches."""

    epoch: int  # 1-based epoch being trained
    epochs: int  # total epochs planned
    step: int  # optimizer steps taken so far in the run
    batch: int  # batches done in this epoch
    batches_per_epoch: int
    loss: float  # loss of the latest batch
    smoothed_loss: float  # exponential moving average of the batch loss
    running_accuracy: float  # % correct on this epoch's training batches so far
    images_per_second: float  # throughput over the last interval
    epoch_progress: float  # 0..1 within this epoch
    progress: float  # 0..1 over the whole run
    eta_seconds: float  # estimated time to the end of the run
    learning_rate: float


@dataclass
class EpochEvent:
    """Summary of one finished epoch."""

    epoch: int
    train_loss: float
    train_accuracy: float  # % on the training batches as trained (dropout on)
    val_loss: float | None  # None when validation_split is 0
    val_accuracy: float | None
    seconds: float
    learning_rate: float


@dataclass
class History:
    """What happened in a run, as plain data (JSON round-trips through to_dict/from_dict)."""

    steps: list[int] = field(default_factory=list)  # optimizer step of each logged batch
    batch_losses: list[float] = field(default_factory=list)  # loss at those steps
    smoothed_losses: list[float] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)  # asdict(EpochEvent) per finished epoch
    status: str = "new"  # new, running, stopped, finished, diverged, failed
    message: str = ""  # why it ended, for humans
    warning: str = ""  # e.g. "stuck at chance level", shown beside the curves
    seconds: float = 0.0  # training time so far
    images_seen: int = 0
    compute_path: str = ""
    batches_per_epoch: int = 0  # lets plots place epoch points on the step axis

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def copy(self) -> "History":
        """A copy safe to read while the original grows: new lists, shared (never mutated) epoch dicts.

        Cheap enough to take every second: a JSON round trip of a long run's history took ~200 ms."""
        return replace(self, steps=list(self.steps), batch_losses=list(self.batch_losses),
                       smoothed_losses=list(self.smoothed_losses), epochs=list(self.epochs))

    @property
    def last_epoch(self) -> dict | None:
        return self.epochs[-1] if self.epochs else None


class StopTraining(Exception):
    """Raised by a callback to stop training between batches (the run can be resumed)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


Callback = Callable[[object], None]  # receives BatchEvent or EpochEvent


def build_optimizer(name: str, params: Iterable[nn.Parameter], lr: float,
                    weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The guide's optimizer variants by name ("momentum" is SGD with momentum 0.9)."""
    params = list(params)
    if name == "adam":
        try:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError):  # fused kernel unavailable for this device/dtype
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to +-max_shift pixels (zero fill): cheap augmentation for digits."""
    n = x.shape[0]
    padded = nn.functional.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    h, w = x.shape[-2:]
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (N, H)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (N, W)
    idx_n = torch.arange(n)[:, None, None]
    return padded[idx_n, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


class Trainer:
    """Trains a SimpleCNN on an in-memory dataset; resumable, stoppable, reporting via callbacks."""

    def __init__(self, config: TrainConfig, dataset: Dataset | None = None,
                 model: SimpleCNN | None = None, callbacks: Iterable[Callback] = ()) -> None:
        self.config = config.validate()
        self.dataset = dataset if dataset is not None else load_dataset(config.dataset)
        self.path: ComputePath = choose_compute_path(config.device, fast=config.fast)
        torch.manual_seed(config.seed)
        if model is None:
            model = SimpleCNN(self.dataset.num_classes, config.dropout1, config.dropout2, config.batch_norm)
        self.model = model.to(self.path.device)
        if self.path.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(config.optimizer, self.model.parameters(),
                                         config.learning_rate, config.weight_decay)
        self.loss_fn = nn.CrossEntropyLoss()
        # Cross-entropy starts near ln(C) (2.30 for 10 classes); 50x that means the weights blew up.
        self.divergence_threshold = 50 * math.log(self.dataset.num_classes)
        self.callbacks = list(callbacks)
        self.train_idx, self.val_idx = split_indices(
            len(self.dataset.train_labels), config.validation_split, config.seed, config.subset)
        if len(self.train_idx) == 0:
            raise ValueError("The training split is empty: use a larger subset or a smaller validation split.")
        self.batches_per_epoch = math.ceil(len(self.train_idx) / config.batch_size)
        self.total_steps = self.batches_per_epoch * config.epochs
        self.scheduler = self._build_scheduler()
        self.history = History(compute_path=self.path.name, batches_per_epoch=self.batches_per_epoch)
        self._stop = threading.Event()
        self._shuffle = torch.Generator().manual_seed(config.seed + 1)
        # Position, so that fit() after a stop resumes mid-epoch.
        self.epoch = 0  # finished epochs
        self._order: torch.Tensor | None = None  # this epoch's shuffled indices
        self._batch = 0  # batches done in the current epoch
        self._sums = [0.0, 0, 0]  # loss*n, correct, seen in the current epoch
        self._epoch_seconds = 0.0

    # -- control --------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the trainer to stop after the current batch (safe from any thread)."""
        self._stop.set()

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.epochs or self.history.status in ("diverged", "failed")

    @property
    def step(self) -> int:
        return self.epoch * self.batches_per_epoch + self._batch

    def _build_scheduler(self):
        if self.config.lr_schedule == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=self.config.learning_rate, total_steps=self.total_steps,
                pct_start=0.25)
        if self.config.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_steps)
        return None

    def _emit(self, event: object) -> None:
        for cb in self.callbacks:
            cb(event)

    # -- state, for resuming in another process -----------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly where it is, as tensors and plain data.

        Loadable with `torch.load(..., weights_only=True)`; a new Trainer built from the same
        config and given this state trains the same batches with the same randomness.
        """
        dropout_rngs = {name: m._rng.bit_generator.state for name, m in self.model.named_modules()
                        if getattr(m, "_rng", None) is not None}
        return {
            "model": {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "epoch": self.epoch, "batch": self._batch, "order": self._order,
            "sums": [float(self._sums[0]), int(self._sums[1]), int(self._sums[2])],
            "epoch_seconds": self._epoch_seconds, "shuffle": self._shuffle.get_state(),
            "torch_rng": torch.get_rng_state(), "dropout_rngs": dropout_rngs,
            "history": self.history.to_dict(),
        }

    def load_state_dict(self, state: dict, restore_global_rng: bool = True) -> None:
        """Continue from `state_dict()` of a Trainer with the same config.

        The run's randomness includes torch's global generator; a process that only keeps the state
        (and trains elsewhere) passes restore_global_rng=False to leave its own generator alone.
        """
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self._batch, self._order = state["epoch"], state["batch"], state["order"]
        self._sums = list(state["sums"])
        self._epoch_seconds = state["epoch_seconds"]
        self._shuffle.set_state(state["shuffle"])
        if restore_global_rng:
            torch.set_rng_state(state["torch_rng"])
        modules = dict(self.model.named_modules())
        for name, rng_state in state["dropout_rngs"].items():
            rng = modules[name]._rng = np.random.default_rng()
            rng.bit_generator.state = rng_state
        self.history = History.from_dict(state["history"])

    # -- the loop -------------------------------------------------------------------------------
    def fit(self) -> History:
        """Train until the planned epochs are done or a stop is requested; returns the history."""
        if self.finished:
            return self.history
        self._stop.clear()
        self.history.status, self.history.message = "running", ""
        try:
            while self.epoch < self.config.epochs:
                self._run_epoch()
            self.history.status = "finished"
            self.history.message = f"Finished {self.config.epochs} epoch{'s' if self.config.epochs != 1 else ''}."
        except StopTraining as stop:
            if self.epoch >= self.config.epochs:  # the stop arrived with the last epoch's report
                self.history.status = "finished"
                self.history.message = f"Finished {self.config.epochs} epoch{'s' if self.config.epochs != 1 else ''}."
                return self.history
            self.history.status = "stopped"
            self.history.message = str(stop) or (f"Stopped at step {self.step} "
                                                 f"(epoch {self.epoch + 1}, batch {self._batch}).")
        except TrainingDiverged as exc:
            self.history.status, self.history.message = "diverged", str(exc)
        finally:
            self.model.eval()
        return self.history

    def _run_epoch(self) -> None:
        cfg, ds = self.config, self.dataset
        if self._order is None:
            perm = torch.randperm(len(self.train_idx), generator=self._shuffle)
            self._order = self.train_idx[perm]
            self._batch, self._sums, self._epoch_seconds = 0, [0.0, 0, 0], 0.0
        self.model.train()
        t_interval, n_interval = time.perf_counter(), 0
        t_epoch = time.perf_counter()
        smoothed = self.history.smoothed_losses[-1] if self.history.smoothed_losses else None
        batches = iterate_batches(ds.train_images, ds.train_labels, cfg.batch_size,
                                  self._order, start=self._batch, device=self.path.device)
        for x, y in batches:
            if self._stop.is_set():
                self._stop.clear()
                raise StopTraining()
            if cfg.augment:
                x = random_shift(x, 2, self._shuffle)
            x = self.path.prepare_input(x)
            self.optimizer.zero_grad(set_to_none=True)
            with self.path.autocast():
                logits = self.model(x)
                loss = self.loss_fn(logits.float(), y)
            loss_value = loss.detach().item()
            if not math.isfinite(loss_value) or loss_value > self.divergence_threshold:
                self._order = None  # this epoch cannot continue
                raise TrainingDiverged(
                    f"Training diverged at step {self.step + 1} (loss = {loss_value:.3g}, where an untrained "
                    f"network starts near {math.log(self.dataset.num_classes):.2f}): lower the learning rate "
                    f"(now {cfg.learning_rate:g}), e.g. to {cfg.learning_rate / 10:g}.")
            loss.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            n = y.shape[0]
            self._batch += 1
            self._sums[0] += loss_value * n
            self._sums[1] += int((logits.argmax(1) == y).sum())
            self._sums[2] += n
            self.history.images_seen += n
            n_interval += n
            smoothed = loss_value if smoothed is None else 0.9 * smoothed + 0.1 * loss_value
            if self._batch % cfg.log_every == 0 or self._batch == self.batches_per_epoch:
                now = time.perf_counter()
                self._epoch_seconds += now - t_epoch
                self.history.seconds += now - t_epoch
                t_epoch = now
                self._log_batch(loss_value, smoothed, n_interval / max(now - t_interval, 1e-9))
                t_interval, n_interval = now, 0
        now = time.perf_counter()
        self._epoch_seconds += now - t_epoch
        self.history.seconds += now - t_epoch
        self._finish_epoch()

    def _log_batch(self, loss: float, smoothed: float, ips: float) -> None:
        h = self.history
        h.steps.append(self.step)
        h.batch_losses.append(loss)
        h.smoothed_losses.append(smoothed)
        done = self.step / self.total_steps
        remaining_images = (self.total_steps - self.step) * self.config.batch_size
        self._emit(BatchEvent(
            epoch=self.epoch + 1, epochs=self.config.epochs, step=self.step, batch=self._batch,
            batches_per_epoch=self.batches_per_epoch, loss=loss, smoothed_loss=smoothed,
            running_accuracy=100.0 * self._sums[1] / max(self._sums[2], 1), images_per_second=ips,
            epoch_progress=self._batch / self.batches_per_epoch, progress=done,
            eta_seconds=remaining_images / max(ips, 1e-9), learning_rate=self.current_lr))

    @property
    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _finish_epoch(self) -> None:
        from .evaluation import evaluate_loss_accuracy  # local: evaluation imports training types

        loss_sum, correct, seen = self._sums
        val_loss = val_acc = None
        if len(self.val_idx):
            val_loss, val_acc = evaluate_loss_accuracy(
                self.model, self.dataset.train_images[self.val_idx],
                self.dataset.train_labels[self.val_idx], path=self.path)
            self.model.train()
        event = EpochEvent(epoch=self.epoch + 1, train_loss=loss_sum / max(seen, 1),
                           train_accuracy=100.0 * correct / max(seen, 1), val_loss=val_loss,
                           val_accuracy=val_acc, seconds=self._epoch_seconds, learning_rate=self.current_lr)
        self.history.epochs.append(asdict(event))
        chance = 100.0 / self.dataset.num_classes
        if event.train_accuracy < chance + 5 and (val_acc is None or val_acc < chance + 5):
            self.history.warning = (f"Epoch {event.epoch} is still at chance level ({event.train_accuracy:.1f}% "
                                    "correct): the network is not learning. A too-high learning rate often "
                                    "kills the ReLUs; try a lower one.")
        else:
            self.history.warning = ""
        self.epoch += 1
        self._order, self._batch = None, 0  # between epochs: the position is "epoch done, no batch yet"
        self._emit(event)


def train(config: TrainConfig, dataset: Dataset | None = None,
          callbacks: Iterable[Callback] = ()) -> tuple[SimpleCNN, History]:
    """One-call training for notebooks: returns (model in eval mode, history)."""
    trainer = Trainer(config, dataset=dataset, callbacks=callbacks)
    history = trainer.fit()
    return trainer.model, history
