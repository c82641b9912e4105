"""What does a unit want to see? Activation maximisation, and the real test images that excite it most.

A *unit* is one number inside the network for one image: a class logit (fc2), one of fc1's 512 units,
or one channel of conv1 or conv2, read as the mean over its feature map or at the map's centre
position. Conv units are read after batch norm and before the ReLU (the value the ReLU decides on),
fc1 before its ReLU: a ReLU's output has no gradient wherever it is zero, and a search that starts
from a dull image would otherwise never move.

**Activation maximisation** (Erhan et al., 2009; Simonyan et al., 2014) starts from a faint noisy
image and climbs the unit's gradient with respect to the pixels (Adam on the pixels, kept inside the
0–1 range the network reads). Left alone, it finds high-frequency patterns no digit has; three
regularisers (Yosinski et al., 2015; Olah et al., 2017) pull it towards pictures a person can read:

* **jitter**: before each step the image is shifted by a random whole number of pixels (up to
  `jitter` each way), so the pattern must work wherever it sits, not exploit one exact position;
* **blur**: every `BLUR_EVERY` steps the image is smoothed by a Gaussian of width `blur` pixels,
  which removes the fine checkerboards that gradients of strided layers produce;
* **L2 decay**: after each step every pixel is multiplied by (1 − decay), so only pixels the unit
  keeps asking for stay bright.

The search is a generator (`Ascent.run`, or `maximise` for one go) that yields a `Step` (step,
image, objective) every `every` steps, so a caller can draw its progress and stop between yields.
The state between yields (image, Adam's moments, the jitter random stream) lives in an `Ascent`,
which holds no reference to the model: a web page can keep it between script runs and continue it in
chunks, while the hook that reads the unit exists only while a chunk runs (`reading_unit`).

`top_images` runs the test set through the model in batches with the same hook and returns the k
images with the largest value of the unit. No Streamlit here; the model's weights are never changed
and its train/eval mode is restored.
"""
from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..inspection import as_batch
from .common import PIXEL_MAX, PIXEL_MIN, Stopwatch, device_of, evaluating, image_batch

LAYERS = ("class", "conv1", "conv2", "fc1")
HOOKED = {"class": "fc2", "conv1": "batch1", "conv2": "batch2", "fc1": "fc1"}  # the module whose output is read
REDUCTIONS = ("mean", "centre")  # how a conv channel's feature map becomes one number
BLUR_EVERY = 4  # steps between two blurs: blurring every step would wash the image out before it forms
START_LEVEL, START_NOISE = 0.1, 0.02  # the start image: about MNIST's mean grey, with a little noise
BATCH = 1000  # test images per forward pass in top_images


@dataclass(frozen=True)
class Unit:
    """One number inside the network per image: `layer` in LAYERS, `index` the class, channel or unit,
    `reduce` ("mean" or "centre") for a conv channel; ignored for class and fc1."""

    layer: str
    index: int
    reduce: str = "mean"

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise ValueError(f"layer must be one of {LAYERS}; got {self.layer!r}.")
        if self.reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}; got {self.reduce!r}.")
        if int(self.index) < 0:
            raise ValueError(f"index must be ≥ 0; got {self.index}.")

    @property
    def is_conv(self) -> bool:
        return self.layer in ("conv1", "conv2")

    def label(self, classes=None) -> str:
        """How the page names the unit: "class 3 logit", "conv2 channel 5 (centre)", "fc1 unit 17"."""
        if self.layer == "class":
            name = classes[self.index] if classes is not None else self.index
            return f"the logit of class {name}"
        if self.is_conv:
            where = "mean over its map" if self.reduce == "mean" else "centre position"
            return f"{self.layer} channel {self.index} ({where})"
        return f"fc1 unit {self.index}"

    def size(self, model: nn.Module) -> int:
        """How many units of this kind the model has (classes, channels or fc1 units)."""
        module = getattr(model, {"class": "fc2", "conv1": "conv1", "conv2": "conv2", "fc1": "fc1"}[self.layer])
        return module.out_channels if self.is_conv else module.out_features

    def value(self, output: torch.Tensor) -> torch.Tensor:
        """The unit's value per image (N,) from its module's output: (N, C, H, W) or (N, features)."""
        if not self.is_conv:
            return output[:, self.index]
        channel = output[:, self.index]
        if self.reduce == "mean":
            return channel.mean(dim=(1, 2))
        return channel[:, channel.shape[1] // 2, channel.shape[2] // 2]


@dataclass(frozen=True)
class Settings:
    """The optimisation's knobs: Adam's learning rate (in pixel units), the regularisers, the seed."""

    lr: float = 0.05
    jitter: int = 1  # largest random shift, pixels each way
    blur: float = 0.5  # Gaussian σ in pixels applied every BLUR_EVERY steps; 0 = off
    decay: float = 0.0  # L2 decay: pixels multiplied by (1 − decay) after each step
    seed: int = 0


@dataclass(frozen=True)
class Step:
    """A progress report: after `step` steps the image is `image` (1, 1, 28, 28) and the unit reads
    `objective` on exactly that image (no jitter)."""

    step: int
    image: torch.Tensor
    objective: float


@contextlib.contextmanager
def reading_unit(model: nn.Module, unit: Unit) -> Iterator[Callable[[], torch.Tensor]]:
    """A forward hook on the unit's module for the block; yields a function giving the unit's values
    (N,) from the latest forward pass *of this thread*. The hook is removed on exit, whatever happens.

    Outputs are kept per thread because the bundled model is one object shared by every session of
    the dashboard: another session's forward pass must not overwrite the one this search reads.
    """
    if unit.index >= unit.size(model):
        raise ValueError(f"{unit.layer} has {unit.size(model)} units; index {unit.index} does not exist.")
    seen: dict[int, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        seen[threading.get_ident()] = output

    handle = getattr(model, HOOKED[unit.layer]).register_forward_hook(keep)
    try:
        def read() -> torch.Tensor:
            output = seen.pop(threading.get_ident(), None)
            if output is None:
                raise RuntimeError("No forward pass has run since the last read.")
            return unit.value(output)
        yield read
    finally:
        handle.remove()


def unit_values(model: nn.Module, images, unit: Unit, batch_size: int = BATCH) -> torch.Tensor:
    """The unit's value (N,) float32 for every image, in eval mode, batch by batch."""
    batch = image_batch(images, model)
    out = []
    with evaluating(model), reading_unit(model, unit) as read, torch.no_grad():
        for start in range(0, batch.shape[0], batch_size):
            model(batch[start:start + batch_size])
            out.append(read().float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


@dataclass(frozen=True)
class TopImages:
    """The k images with the largest unit values, largest first: their indices in the image set,
    the values, the images (k, 28, 28) in [0, 1], and how long the pass over the set took."""

    indices: np.ndarray
    values: np.ndarray
    images: np.ndarray
    seconds: float


def top_images(model: nn.Module, dataset, unit: Unit, k: int = 9, batch_size: int = BATCH) -> TopImages:
    """The k images of `dataset` (a Dataset, whose test set is used, or images in any layout) that
    excite the unit most. Ties go to the lower index, so the answer does not depend on batching."""
    images = dataset.test_images if hasattr(dataset, "test_images") else dataset
    with Stopwatch() as watch:
        values = unit_values(model, images, unit, batch_size).double().numpy()
        order = np.lexsort((np.arange(values.size), -values))[:k]  # by value descending, then by index
    pictures = image_batch(images[torch.as_tensor(order)] if len(order) else images[:0], model)
    return TopImages(order, values[order], pictures[:, 0].cpu().numpy(), watch.seconds)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) with zero padding (MNIST's background is black);
    the kernel reaches 3σ each way and sums to 1."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = F.conv2d(x, kernel.view(1, 1, 1, -1), padding=(0, radius))
    return F.conv2d(x, kernel.view(1, 1, -1, 1), padding=(radius, 0))


def start_image(seed: int = 0) -> torch.Tensor:
    """The default start: a faint grey (about MNIST's mean pixel) with a little seeded noise."""
    g = torch.Generator().manual_seed(seed)
    return (START_LEVEL + START_NOISE * torch.randn(1, 1, 28, 28, generator=g)).clamp(PIXEL_MIN, PIXEL_MAX)


@dataclass
class Ascent:
    """The search's state between chunks of steps; no reference to any model is kept.

    `run(model, steps, every)` continues it: the result of two runs of 100 steps is the result of
    one run of 200 (same image, Adam moments and jitter stream).
    """

    unit: Unit
    settings: Settings = field(default_factory=Settings)
    start: torch.Tensor | None = None
    step: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, objective) at every report

    def __post_init__(self) -> None:
        first = start_image(self.settings.seed) if self.start is None else as_batch(self.start)
        self.start = first.detach().clone().float()
        self.image = self.start.clone().requires_grad_(True)
        self.optimiser = torch.optim.Adam([self.image], lr=self.settings.lr)
        self.shifts = torch.Generator().manual_seed(self.settings.seed + 1)

    def _shift(self) -> tuple[int, int]:
        j = int(self.settings.jitter)
        if j <= 0:
            return 0, 0
        dy, dx = torch.randint(-j, j + 1, (2,), generator=self.shifts).tolist()
        return int(dy), int(dx)

    def _one_step(self, model: nn.Module, read) -> None:
        """Jitter, one Adam step up the unit's gradient, clamp to [0, 1], decay, and blur on schedule."""
        dy, dx = self._shift()
        model(torch.roll(self.image, shifts=(dy, dx), dims=(2, 3)))
        # The gradient with respect to the image only: no .grad ever lands on the model's weights
        # (the bundled model is shared by every session, so its parameters are not touched at all).
        (grad,) = torch.autograd.grad(-read().sum(), self.image)
        self.image.grad = grad
        self.optimiser.step()
        self.step += 1
        with torch.no_grad():
            self.image.clamp_(PIXEL_MIN, PIXEL_MAX)
            if self.settings.decay > 0:
                self.image.mul_(1.0 - self.settings.decay)
            if self.settings.blur > 0 and self.step % BLUR_EVERY == 0:
                self.image.copy_(gaussian_blur(self.image, self.settings.blur))

    def _report(self, model: nn.Module, read) -> Step:
        """The unit's value on the current image exactly as returned (no jitter)."""
        picture = self.image.detach().clone()
        with torch.no_grad():
            model(picture.to(device_of(model)))
            objective = float(read()[0])
        self.history.append((self.step, objective))
        return Step(self.step, picture.cpu(), objective)

    def run(self, model: nn.Module, steps: int, every: int = 10) -> Iterator[Step]:
        """Take `steps` more steps, yielding a Step every `every` steps and after the last one.

        The first report of a new search is at step 0 (the start image). The hook and eval mode
        last only while this generator runs: closing it early (or an exception) removes the hook and
        restores the model's mode. Gradients are taken for the image only.
        """
        every = max(1, int(every))
        if device_of(model).type != "cpu":
            raise ValueError("The search keeps its image on the CPU; pass a CPU model.")
        with evaluating(model), reading_unit(model, self.unit) as read:
            if not self.history:
                yield self._report(model, read)
            for i in range(int(steps)):
                self._one_step(model, read)
                if self.step % every == 0 or i == steps - 1:
                    yield self._report(model, read)


def maximise(model: nn.Module, unit: Unit, steps: int = 200, every: int = 10, settings: Settings | None = None,
             start=None) -> Iterator[Step]:
    """A whole search in one generator: a Step at 0, every `every` steps, and at `steps`."""
    yield from Ascent(unit, settings or Settings(), start).run(model, steps, every)
