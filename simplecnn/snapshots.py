"""Training replayed: the weights of a run at a few moments, kept on disk, and what a replay shows of each.

conv1's filters change most in a run's first few hundred steps: they go from random noise to
strokes and edges long before the first epoch ends. So besides the weights after each epoch (which
`jobs.RunSaver` keeps in `epochs/`), the training process keeps the weights before any training
(step 0) and after steps 1, 3, 10, 30, 100, 300, ... of the first epoch, in the run's `snapshots/`
folder. Each is a normal checkpoint written atomically; at most MAX_STEP_SNAPSHOTS files and
MAX_SNAPSHOT_BYTES per run. A resumed run only takes the steps it has not passed yet, so no step
is ever recorded twice.

The recorder catches the exact step with an optimizer step hook (BatchEvents come only every
`log_every` batches, too coarse for steps 1 and 3). The reader lists a run's snapshots, both kinds,
in step order; the functions at the end compute what the replay draws for one of them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoints import load_checkpoint, save_checkpoint
from .evaluation import predict_logits
from .files import atomic_write_json, read_json
from .inspection import activations, first_layer_filters
from .runstore import RunDir, dir_bytes

MAX_STEP_SNAPSHOTS = 8  # step 0 and up to 7 steps inside the first epoch (1, 3, 10, 30, 100, 300, 1000)
MAX_SNAPSHOT_BYTES = 24 * 1024 * 1024  # snapshots/ of one run; a SimpleCNN checkpoint is ~2.3 MB
CHECKPOINT_BYTES_ESTIMATE = 2_400_000  # what one more snapshot will take, checked before writing it
INDEX_NAME = "index.json"  # batches and images per epoch, so epoch files can be placed on the step axis
STEP_FILE = re.compile(r"^step-(\d{7})\.pt$")
REPLAY_PER_CLASS = 100  # test images per class behind the replay's confusion matrix (1,000 for MNIST)


def first_epoch_steps(batches_per_epoch: int, limit: int = MAX_STEP_SNAPSHOTS) -> list[int]:
    """0, 1, 3, 10, 30, 100, ... below `batches_per_epoch` (its end is the epoch-1 file), at most `limit`."""
    steps = [0]
    base = 1
    while len(steps) < limit:
        for step in (base, 3 * base):
            if step >= batches_per_epoch or len(steps) >= limit:
                return steps
            steps.append(step)
        base *= 10
    return steps


def _write_index(run: RunDir, trainer) -> None:
    atomic_write_json(run.snapshots_path / INDEX_NAME, {
        "version": 1, "batches_per_epoch": trainer.batches_per_epoch,
        "images_per_epoch": len(trainer.train_idx), "batch_size": trainer.config.batch_size})


class SnapshotRecorder:
    """In the training process: writes the weights at the scheduled steps of the first epoch."""

    def __init__(self, trainer, run: RunDir) -> None:
        self.run = run
        self.trainer = trainer
        self.config = trainer.config.to_dict()
        fresh = trainer.step == 0 and trainer.history.images_seen == 0
        # Steps already passed were recorded by the process that trained them (or missed for good).
        self.pending = [s for s in first_epoch_steps(trainer.batches_per_epoch) if s > trainer.step]
        self.written: list[int] = []
        self.error: str | None = None  # why recording stopped early (a full disk): training goes on
        self._hook = None
        if fresh:
            self._take(0)
        if self.pending:
            self._hook = trainer.optimizer.register_step_post_hook(self._after_step)

    def _after_step(self, _optimizer, _args, _kwargs) -> None:
        """Called by the optimizer right after it changed the weights, before the trainer counts the batch."""
        # Never removes its own hook here: torch is iterating over the optimizer's hooks, and removing
        # one while another follows it raises "OrderedDict mutated during iteration". An empty
        # `pending` makes the hook a no-op; on_event / close remove it.
        trainer = self.trainer
        if trainer.epoch > 0 or not self.pending:
            self.pending = []
            return
        step = trainer.step + 1  # the step just taken
        while self.pending and self.pending[0] < step:
            self.pending.pop(0)
        if self.pending and self.pending[0] == step:
            self.pending.pop(0)
            self._take(step)

    def _take(self, step: int) -> None:
        folder = self.run.snapshots_path
        taken = [p for p in folder.glob("step-*.pt") if STEP_FILE.fullmatch(p.name)] if folder.is_dir() else []
        path = self.run.snapshot_path(step)
        if path not in taken:  # bounds first: a new file must fit in count and bytes
            if len(taken) >= MAX_STEP_SNAPSHOTS:
                return
            if (dir_bytes(folder) if folder.is_dir() else 0) + CHECKPOINT_BYTES_ESTIMATE > MAX_SNAPSHOT_BYTES:
                return
        images = step * self.trainer.config.batch_size  # every batch before the epoch's last one is full
        try:
            save_checkpoint(path, self.trainer.model, config=self.config,
                            metrics={"step": step, "images_seen": images})
        except OSError as exc:  # the replay loses its remaining steps; the run itself must not fail
            self.error = f"Replay snapshots stopped at step {step}: {exc.strerror or exc}."
            self.pending = []  # the hook is removed at the next event (see _after_step)
            return
        self.written.append(step)

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def on_event(self, trainer, event: object) -> None:
        if trainer.epoch > 0 or not self.pending:  # first epoch over (epoch weights take it from here) or done
            self._remove_hook()

    def close(self, trainer) -> None:
        self._remove_hook()


def recorder_for(trainer, run: RunDir) -> SnapshotRecorder | None:
    """The recorder factory registered in simplecnn.recorders; None once the first epoch is done."""
    _write_index(run, trainer)
    if trainer.epoch > 0:
        return None
    return SnapshotRecorder(trainer, run)


# -- reading ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """One set of weights of a run on disk, placed in the run's time."""

    step: int  # optimizer steps behind these weights
    epoch: float  # the same in epochs (step / batches per epoch)
    images_seen: int  # training images the network had learned from
    path: Path
    kind: str  # "step" (inside the first epoch) or "epoch" (after a whole epoch)

    def label(self) -> str:
        if self.step == 0:
            return "step 0 · before training"
        when = f"end of epoch {int(self.epoch)}" if self.kind == "epoch" else f"epoch {self.epoch:.2f}"
        return f"step {self.step:,} · {when} · {self.images_seen:,} images"


def _run_layout(run: RunDir) -> tuple[int, int, int]:
    """(batches per epoch, images per epoch, batch size) from the recorder's index, else from run.json."""
    try:
        index = read_json(run.snapshots_path / INDEX_NAME)
        return int(index["batches_per_epoch"]), int(index["images_per_epoch"]), int(index["batch_size"])
    except (ValueError, KeyError, TypeError):
        pass
    from .classroom import split_sizes  # the same split arithmetic the classroom budgets with
    from .training import TrainConfig

    config = TrainConfig.from_dict(run.read_meta().get("config", {}))
    n_train, _ = split_sizes(config)
    return max(1, math.ceil(n_train / config.batch_size)), n_train, config.batch_size


def list_snapshots(run: RunDir) -> list[Snapshot]:
    """Every kept snapshot of a run, in step order: within-epoch ones and the epoch weights."""
    try:
        per_epoch, images_per_epoch, batch_size = _run_layout(run)
    except (ValueError, OSError):  # no run.json and no index: nothing can be placed
        return []
    found: dict[int, Snapshot] = {}
    if run.snapshots_path.is_dir():
        for path in run.snapshots_path.iterdir():
            m = STEP_FILE.fullmatch(path.name)
            if m and int(m.group(1)) < per_epoch:
                step = int(m.group(1))
                found[step] = Snapshot(step, step / per_epoch, step * batch_size, path, "step")
    for epoch in run.saved_epochs():
        step = epoch * per_epoch
        found[step] = Snapshot(step, float(epoch), epoch * images_per_epoch, run.epoch_path(epoch), "epoch")
    return [found[s] for s in sorted(found)]


# -- what the replay shows -------------------------------------------------------------------------
def replay_indices(labels: torch.Tensor, per_class: int = REPLAY_PER_CLASS) -> torch.Tensor:
    """A fixed, balanced set of test images: the first `per_class` of each class, in index order."""
    picked = [(labels == c).nonzero().flatten()[:per_class] for c in range(int(labels.max()) + 1)]
    return torch.cat(picked).sort().values


def load_snapshot(snapshot: Snapshot) -> nn.Module:
    """The snapshot's weights in an eval-mode SimpleCNN (torch.load with weights_only=True)."""
    return load_checkpoint(snapshot.path)[0]


def confusion_counts(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     num_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = true class, columns = predicted class, in eval mode."""
    predicted = predict_logits(model, images).argmax(1)  # (N,)
    return torch.bincount(labels * num_classes + predicted,
                          minlength=num_classes * num_classes).reshape(num_classes, num_classes).numpy()


@dataclass
class SnapshotView:
    """What the replay shows of one snapshot that does not depend on the input image."""

    filters: np.ndarray  # (32, 5, 5) conv1 weights
    confusion: np.ndarray  # (C, C) on the replay's fixed test images

    @property
    def accuracy(self) -> float:
        return 100.0 * float(np.trace(self.confusion)) / max(int(self.confusion.sum()), 1)


def snapshot_view(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> SnapshotView:
    return SnapshotView(first_layer_filters(model), confusion_counts(model, images, labels, num_classes))


def relative_change(weights: np.ndarray, start: np.ndarray) -> float:
    """||W - W0|| / ||W0||: how far weights moved from where training started, as a share of their size."""
    return float(np.linalg.norm(weights - start) / max(float(np.linalg.norm(start)), 1e-12))


def neighbour_correlation(filters: np.ndarray) -> float:
    """Pearson correlation of each weight with its right and its lower neighbour in the same (k, k) filter,
    over all filters (N, k, k): about 0 for random noise, high for smooth strokes, edges and blobs."""
    a = np.concatenate([filters[:, :, :-1].ravel(), filters[:, :-1, :].ravel()]).astype(np.float64)
    b = np.concatenate([filters[:, :, 1:].ravel(), filters[:, 1:, :].ravel()]).astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def snapshot_reading(model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(conv1's feature maps (32, 24, 24), probabilities (C,)) for one (1, 1, 28, 28) input, eval mode."""
    acts = activations(model, x, mode="eval")
    return acts["conv1"][0].numpy(), acts["softmax"][0].numpy()
