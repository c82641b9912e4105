"""Teach the model your handwriting: labelled drawings on disk, a fine-tune run mixed with MNIST, before/after.

When the network reads a learner's drawing wrong, the learner says which digit it is. The prepared
28x28 image, the right label and what the model said are kept in a small per-learner store (one file
per drawing, written atomically, at most MAX_DRAWINGS). A fine-tune is an ordinary training run
queued like every other (never on a page thread): its folder holds the starting weights (`init.pt`)
and the extra examples (`examples.pt`); `simplecnn.jobs.train_in_child` puts the weights in the model
and mixes the drawings, repeated a few times, into a few thousand MNIST training images, so the
network learns the new shapes without forgetting the old ones. Before/after compares the starting
weights with the fine-tuned ones on the learner's drawings and on a fixed part of the MNIST test set.

Plain torch, usable from a notebook::

    store = DrawingStore("my-drawings")
    store.add(preprocess_drawing(canvas), label=7, predicted=1)
    examples = fine_tune_examples(store.drawings())
    trainer = Trainer(fine_tune_config(model, examples), dataset=mixed_dataset(load_dataset(), examples),
                      model=copy.deepcopy(model))
    trainer.fit()
    print(compare(model, trainer.model, examples, load_dataset()))
"""
from __future__ import annotations

import io
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import Dataset
from .evaluation import predict_logits
from .files import atomic_write_bytes
from .model import SimpleCNN
from .training import TrainConfig

MAX_DRAWINGS = 200  # labelled drawings one learner keeps (about 3.5 kB each)
MAX_DRAWING_FILE_BYTES = 64 * 1024  # one stored drawing is ~3.5 kB; anything larger is not ours
MIN_DRAWINGS = 1  # a fine-tune needs at least this many
MNIST_MIX = 2000  # MNIST training images mixed in, so the network does not forget what it knew
TARGET_COPIES = 400  # the learner's drawings, repeated, make up about this many of the mixed images
MAX_REPEAT = 20  # ... but no drawing is repeated more often than this
TEST_SUBSET = 2000  # "the test set" of before/after: the first 2,000 MNIST test images
MIX_SEED = 0  # which MNIST training images are mixed in
FINE_TUNE_LR = 2e-4  # Adam step: a tenth of a fresh run's, so the weights move a little, not start over
FINE_TUNE_EPOCHS = 2
FINE_TUNE_BATCH = 64
DRAWING_ID_PREFIX = "d"


class HandwritingError(ValueError):
    """A drawing or a fine-tune the store cannot take; the message says what to do."""


@dataclass(frozen=True)
class LabelledDrawing:
    """One of the learner's drawings with the digit it really is."""

    id: str
    image: torch.Tensor  # (28, 28) float32 in [0, 1], prepared like an MNIST digit
    label: int  # the digit the learner says it is
    predicted: int  # what the model said when it was labelled
    model: str  # which model said it
    created: float  # unix time


def _check_image(image: torch.Tensor) -> torch.Tensor:
    """(28, 28) float32 in [0, 1] from any (…, 28, 28) tensor of one image; HandwritingError otherwise."""
    x = torch.as_tensor(image)
    if not x.is_floating_point() or x.numel() != 28 * 28:
        raise HandwritingError(f"A drawing must be one prepared 28×28 image (got shape {tuple(x.shape)}).")
    x = x.detach().to("cpu", torch.float32).reshape(28, 28).contiguous()  # (28, 28)
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise HandwritingError("A drawing's pixels must be numbers from 0 to 1.")
    return x


def _check_label(value: int, name: str, num_classes: int = 10) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_classes:
        raise HandwritingError(f"{name} must be a digit from 0 to {num_classes - 1} (got {value!r:.20}).")
    return int(value)


class DrawingStore:
    """One learner's labelled drawings in a folder: `d-<time>-<random>.pt`, one atomic file each.

    One file per drawing means two tabs adding at once never overwrite each other, and a damaged file
    costs one drawing, not all of them (it is listed in `damaged` and can be deleted)."""

    def __init__(self, folder: str | os.PathLike, limit: int = MAX_DRAWINGS) -> None:
        self.folder = Path(folder)
        self.limit = limit
        self.damaged: list[str] = []  # ids of files that could not be read at the last drawings()

    def _paths(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir()
                      if p.suffix == ".pt" and p.name.startswith(DRAWING_ID_PREFIX + "-"))

    def count(self) -> int:
        return len(self._paths())

    def add(self, image: torch.Tensor, label: int, predicted: int, model: str = "") -> LabelledDrawing:
        """Keep a labelled drawing; HandwritingError when the store is full or the input is not a drawing."""
        image = _check_image(image)
        label = _check_label(label, "The label")
        predicted = _check_label(predicted, "The model's answer")
        if self.count() >= self.limit:  # checked before anything is written
            raise HandwritingError(f"You already keep {self.limit} labelled drawings, the most this server "
                                   "keeps: delete some on the Your handwriting page first.")
        created = time.time()
        drawing_id = f"{DRAWING_ID_PREFIX}-{time.time_ns():020d}-{secrets.token_hex(3)}"
        record = {"image": image, "label": label, "predicted": predicted, "model": str(model)[:200],
                  "created": created}
        buffer = io.BytesIO()
        torch.save(record, buffer)
        atomic_write_bytes(self.folder / f"{drawing_id}.pt", buffer.getvalue())
        return LabelledDrawing(drawing_id, image, label, predicted, str(model)[:200], created)

    def _read(self, path: Path) -> LabelledDrawing:
        if path.stat().st_size > MAX_DRAWING_FILE_BYTES:
            raise ValueError("too large")
        record = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(record, dict):
            raise ValueError("not a drawing")
        return LabelledDrawing(path.stem, _check_image(record["image"]), _check_label(record["label"], "label"),
                               _check_label(record["predicted"], "predicted"), str(record.get("model", "")),
                               float(record.get("created", 0.0)))

    def drawings(self) -> list[LabelledDrawing]:
        """Every readable drawing, oldest first; unreadable ones are named in `self.damaged`."""
        found, damaged = [], []
        for path in self._paths():
            try:
                found.append(self._read(path))
            except FileNotFoundError:  # deleted by another tab meanwhile
                continue
            except Exception:  # damaged or foreign: never breaks the page
                damaged.append(path.stem)
        self.damaged = damaged
        return found

    def delete(self, drawing_id: str) -> bool:
        """Remove one drawing (or a damaged file); False when it is not there."""
        if not drawing_id.startswith(DRAWING_ID_PREFIX + "-") or "/" in drawing_id or "\\" in drawing_id:
            return False
        path = self.folder / f"{drawing_id}.pt"
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True


# -- the fine-tune's training set -----------------------------------------------------------------------
def repeats_for(n_drawings: int) -> int:
    """How often each drawing appears in the mixed set: about TARGET_COPIES copies in all, 1..MAX_REPEAT
    each. A few drawings among 2,000 MNIST images would be too rare to change anything; repeated, they
    are seen several times per epoch."""
    if n_drawings < 1:
        return 0
    return max(1, min(MAX_REPEAT, round(TARGET_COPIES / n_drawings)))


def fine_tune_examples(drawings: list[LabelledDrawing], mnist_size: int = 60_000,
                       mnist_count: int = MNIST_MIX, seed: int = MIX_SEED) -> dict:
    """The extra examples of a fine-tune run, as tensors and plain values (saved as examples.pt)."""
    if len(drawings) < MIN_DRAWINGS:
        raise HandwritingError("Label at least one drawing on the Draw page first.")
    if len(drawings) > MAX_DRAWINGS:
        raise HandwritingError(f"At most {MAX_DRAWINGS} drawings can be used in one fine-tune.")
    generator = torch.Generator().manual_seed(seed)
    mnist = torch.randperm(mnist_size, generator=generator)[:min(mnist_count, mnist_size)]
    return {
        "images": torch.stack([d.image for d in drawings]),  # (n, 28, 28) float32
        "labels": torch.tensor([d.label for d in drawings], dtype=torch.int64),  # (n,)
        "predicted": torch.tensor([d.predicted for d in drawings], dtype=torch.int64),  # (n,) when labelled
        "ids": [d.id for d in drawings],
        "repeat": repeats_for(len(drawings)),
        "mnist_indices": mnist.sort().values,  # (m,) into the MNIST training set
    }


def save_examples(path: Path, examples: dict) -> None:
    buffer = io.BytesIO()
    torch.save(examples, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_examples(path: Path) -> dict:
    """examples.pt, read with weights_only=True and checked (ValueError with the reason otherwise)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict):
        raise ValueError("examples.pt is not a fine-tune's examples")
    images, labels, mnist = data.get("images"), data.get("labels"), data.get("mnist_indices")
    repeat = data.get("repeat")
    if not (isinstance(images, torch.Tensor) and images.dim() == 3 and tuple(images.shape[1:]) == (28, 28)
            and isinstance(labels, torch.Tensor) and labels.shape == (images.shape[0],)
            and isinstance(mnist, torch.Tensor) and mnist.dim() == 1
            and isinstance(repeat, int) and 1 <= repeat <= MAX_REPEAT and 1 <= len(images) <= MAX_DRAWINGS):
        raise ValueError("examples.pt does not hold a fine-tune's examples")
    return data


def mixed_dataset(base: Dataset, examples: dict) -> Dataset:
    """`base` whose training set is the chosen MNIST images plus the drawings repeated `repeat` times.

    The drawings are stored as uint8 like MNIST (rounded to 1/255, far below what a pen stroke
    changes). The test set is untouched."""
    drawings = (examples["images"].clamp(0, 1) * 255).round().to(torch.uint8)  # (n, 28, 28)
    repeat = int(examples["repeat"])
    mnist = examples["mnist_indices"]
    if len(mnist) and int(mnist.max()) >= len(base.train_labels):
        raise ValueError("examples.pt names MNIST images this dataset does not have")
    images = torch.cat([base.train_images[mnist], drawings.repeat(repeat, 1, 1)])  # (m + n·k, 28, 28)
    labels = torch.cat([base.train_labels[mnist], examples["labels"].repeat(repeat)])  # (m + n·k,)
    return Dataset(base.name, images, labels, base.test_images, base.test_labels, base.classes)


def mixed_size(examples: dict) -> int:
    return len(examples["mnist_indices"]) + len(examples["images"]) * int(examples["repeat"])


def fine_tune_config(model: SimpleCNN, examples: dict, dataset: str = "mnist") -> TrainConfig:
    """A short, gentle run on the mixed set with the starting model's own architecture: every image used
    for training (no validation split), a small Adam step, two epochs."""
    return TrainConfig(learning_rate=FINE_TUNE_LR, epochs=FINE_TUNE_EPOCHS, batch_size=FINE_TUNE_BATCH,
                       validation_split=0.0, dropout1=float(model.dropout1.p), dropout2=float(model.dropout2.p),
                       batch_norm=bool(model.batch_norm), optimizer="adam", subset=mixed_size(examples),
                       seed=0, dataset=dataset, log_every=5).validate()


# -- before and after -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scores:
    """One model on one set of images."""

    predictions: torch.Tensor  # (N,) argmax class
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        """Percent correct (nan for no images)."""
        return 100.0 * self.correct / self.total if self.total else math.nan


def score(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Scores:
    """Predictions and the count of right answers; images (N, 28, 28) uint8 or float in [0, 1]."""
    if images.dtype != torch.uint8:
        images = images.reshape(-1, 1, 28, 28).float()  # (N, 1, 28, 28)
    predictions = predict_logits(model, images).argmax(1)  # (N,)
    return Scores(predictions, int((predictions == labels).sum()), len(labels))


def test_subset(dataset: Dataset, count: int = TEST_SUBSET) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed part of the test set that before/after is measured on: its first `count` images."""
    return dataset.test_images[:count], dataset.test_labels[:count]


@dataclass(frozen=True)
class Comparison:
    """Before/after of a fine-tune: on the learner's drawings and on the test subset."""

    drawings_before: Scores
    drawings_after: Scores
    test_before: Scores
    test_after: Scores
    labels: torch.Tensor  # (n,) the learner's labels
    ids: list


def compare(before: torch.nn.Module, after: torch.nn.Module, examples: dict, dataset: Dataset,
            test_count: int = TEST_SUBSET) -> Comparison:
    images, labels = examples["images"], examples["labels"]
    test_images, test_labels = test_subset(dataset, test_count)
    return Comparison(score(before, images, labels), score(after, images, labels),
                      score(before, test_images, test_labels), score(after, test_images, test_labels),
                      labels, list(examples.get("ids", [])))


# -- queueing a fine-tune -------------------------------------------------------------------------------
def fine_tune_label(base_label: str) -> str:
    return f"your handwriting, from {base_label}"[:120]


def start_fine_tune(classroom, learner: str, drawings: list[LabelledDrawing], base: SimpleCNN, base_label: str,
                    base_key: str, dataset_name: str = "mnist"):
    """Store a fine-tune run (run.json, init.pt, examples.pt) and queue it like any run; RunRefused when a
    limit says no, HandwritingError when there is nothing to learn from. Returns its TrainingJob."""
    from .checkpoints import save_checkpoint
    from .classroom import RunRefused

    if dataset_name != "mnist" or base.num_classes != 10:
        raise HandwritingError("Your handwriting is taught to an MNIST model: switch the Data page to MNIST.")
    examples = fine_tune_examples(drawings)
    config = fine_tune_config(base, examples, dataset_name)
    classroom.check_one_active(learner)
    classroom.check_budget(config)
    classroom.check_room(learner)
    run = classroom.store.create(learner, {
        "kind": "trained", "label": fine_tune_label(base_label), "dataset": dataset_name, "num_classes": 10,
        "config": config.to_dict(), "status": "new", "message": "", "server": classroom.server_id,
        "handwriting": {"base": base_key, "base_label": base_label, "drawings": len(drawings),
                        "repeat": examples["repeat"], "mnist_images": len(examples["mnist_indices"])}})
    try:
        save_checkpoint(run.init_path, base, config=config.to_dict(), metrics={})
        save_examples(run.examples_path, examples)
        return classroom.resume(learner, run.run_id)
    except BaseException:
        try:
            classroom.delete(learner, run.run_id)
        except (RunRefused, OSError):
            pass
        raise

