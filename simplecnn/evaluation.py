"""Evaluation: loss and accuracy, confusion matrix, per-class accuracy, confident mistakes."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .accel import ComputePath
from .data import Dataset, load_dataset, to_float


@dataclass
class Mistake:
    """A misclassified image: where it is and how sure the model was."""

    index: int  # index into the evaluated images
    true: int
    predicted: int
    probability: float  # softmax probability of the predicted class
    probabilities: list[float]  # all class probabilities


@dataclass
class EvaluationResult:
    loss: float  # mean cross-entropy
    accuracy: float  # percent correct
    confusion: torch.Tensor  # (C, C) int64, rows = true class, columns = predicted
    per_class_accuracy: list[float]  # percent correct per true class (nan where a class is absent)
    predictions: torch.Tensor  # (N,) predicted class
    probabilities: torch.Tensor  # (N, C) softmax
    labels: torch.Tensor  # (N,) true class

    def mistakes(self, limit: int = 20, true: int | None = None,
                 predicted: int | None = None) -> list[Mistake]:
        """The most confident mistakes first, optionally filtered by true/predicted class."""
        wrong = self.predictions != self.labels
        if true is not None:
            wrong &= self.labels == true
        if predicted is not None:
            wrong &= self.predictions == predicted
        idx = wrong.nonzero().flatten()
        conf = self.probabilities[idx, self.predictions[idx]]
        order = conf.argsort(descending=True)[:limit]
        return [Mistake(int(idx[o]), int(self.labels[idx[o]]), int(self.predictions[idx[o]]),
                        float(conf[o]), self.probabilities[idx[o]].tolist()) for o in order]

    def summary(self) -> dict:
        """JSON-friendly headline figures."""
        return {"loss": self.loss, "accuracy": self.accuracy,
                "per_class_accuracy": self.per_class_accuracy,
                "confusion": self.confusion.tolist()}


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 1000,
                   path: ComputePath | None = None) -> torch.Tensor:
    """Logits for uint8 (N, 28, 28) or float (N, 1, 28, 28) images, in eval mode, batched."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            x = to_float(chunk) if chunk.dtype == torch.uint8 else chunk.float()
            x = x.to(device)
            if path is not None:
                x = path.prepare_input(x)
                with path.autocast():
                    out.append(model(x).float().cpu())
            else:
                out.append(model(x).float().cpu())
    finally:
        model.train(was_training)
    num_classes = getattr(model, "num_classes", 10)
    return torch.cat(out) if out else torch.empty(0, num_classes)


def evaluate_loss_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                           batch_size: int = 1000, path: ComputePath | None = None) -> tuple[float, float]:
    """(mean cross-entropy, percent correct) on the given images."""
    logits = predict_logits(model, images, batch_size, path)
    loss = nn.functional.cross_entropy(logits, labels).item()
    acc = 100.0 * (logits.argmax(1) == labels).float().mean().item()
    return loss, acc


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 1000, num_classes: int | None = None) -> EvaluationResult:
    """Full evaluation on any split: loss, accuracy, confusion matrix, per-class accuracy."""
    logits = predict_logits(model, images, batch_size)
    c = num_classes or logits.shape[1]
    probs = logits.softmax(1)
    preds = logits.argmax(1)
    confusion = torch.bincount(labels * c + preds, minlength=c * c).reshape(c, c)
    support = confusion.sum(1)
    per_class = [100.0 * float(confusion[i, i]) / float(support[i]) if support[i] else float("nan")
                 for i in range(c)]
    return EvaluationResult(
        loss=nn.functional.cross_entropy(logits, labels).item(),
        accuracy=100.0 * (preds == labels).float().mean().item(),
        confusion=confusion, per_class_accuracy=per_class, predictions=preds,
        probabilities=probs, labels=labels)


def evaluate_split(model: nn.Module, split: str = "test", dataset: Dataset | None = None,
                   indices: torch.Tensor | None = None) -> EvaluationResult:
    """Evaluate on "test" or "train" images of a dataset (optionally a subset by indices)."""
    ds = dataset if dataset is not None else load_dataset()
    if split == "test":
        images, labels = ds.test_images, ds.test_labels
    elif split == "train":
        images, labels = ds.train_images, ds.train_labels
    else:
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
    if indices is not None:
        images, labels = images[indices], labels[indices]
    return evaluate(model, images, labels, num_classes=ds.num_classes)
