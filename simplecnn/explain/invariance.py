"""Invariance probe: move, turn, resize and thicken a digit, and watch where the network stops reading it.

A CNN is not invariant to these changes by construction. Its convolutions are *equivariant* to
shifts (a shifted digit gives shifted feature maps), the two 2×2 max-pools forgive a pixel or two,
but fc1 reads every one of the 64×4×4 pooled positions with its own weights, so a digit moved far
enough lands where the classifier never saw strokes. What tolerance a trained model has comes mostly
from its data: MNIST digits are centred and sized alike, and `TrainConfig.augment` adds random shifts
of ±2 px. The probe measures it: for each transformation, one batched forward pass over a range of
values gives a curve of the model's confidence.

Geometry (pixel (i, j) has its centre at (i, j); the image centre is 13.5, 13.5): the digit is first
thickened, then scaled and rotated about the image centre, then shifted. Rotation is anticlockwise
for positive angles, as the picture is seen; shifts are to the right and down. Pixels are resampled
bilinearly (`grid_sample`), with black outside the image, so whole-pixel shifts and quarter turns are
exact. Thickening is grey-level dilation with a 3×3 square (each step adds a pixel on every side of a
stroke; negative steps erode), fractional steps blended linearly between whole ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .common import Stopwatch, evaluating, one_image

SIZE = 28
HALF = SIZE / 2  # normalised coordinates of grid_sample (align_corners=False): pixel units / HALF


@dataclass(frozen=True)
class Pose:
    """How to transform the digit; the default changes nothing."""

    shift_x: float = 0.0  # pixels to the right
    shift_y: float = 0.0  # pixels down
    angle: float = 0.0  # degrees, anticlockwise
    scale: float = 1.0  # size factor about the image centre
    thickness: float = 0.0  # pixels of ink added on each side of a stroke (negative: removed)


@dataclass(frozen=True)
class Probe:
    """One slider of the probe: which Pose field it moves and over which range the curve runs."""

    field: str
    label: str
    unit: str
    values: tuple[float, ...]


def _grid(start: float, stop: float, step: float) -> tuple[float, ...]:
    return tuple(float(v) for v in np.round(np.arange(start, stop + step / 2, step), 6))


PROBES: dict[str, Probe] = {
    "shift_x": Probe("shift_x", "Shift right", "px", _grid(-10, 10, 1)),
    "shift_y": Probe("shift_y", "Shift down", "px", _grid(-10, 10, 1)),
    "angle": Probe("angle", "Rotate anticlockwise", "°", _grid(-90, 90, 5)),
    "scale": Probe("scale", "Scale", "×", _grid(0.4, 2.0, 0.05)),
    "thickness": Probe("thickness", "Thicken", "px", _grid(-1, 3, 0.25)),
}


def _dilate(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Grey dilation (steps > 0) or erosion (steps < 0) with a 3×3 square, |steps| times."""
    for _ in range(abs(steps)):
        x = F.max_pool2d(x, 3, stride=1, padding=1) if steps > 0 else -F.max_pool2d(-x, 3, stride=1, padding=1)
    return x


def thicken(x: torch.Tensor, amount: float) -> torch.Tensor:
    """Strokes made `amount` pixels thicker on each side (negative: thinner), fractional amounts blended."""
    low = math.floor(amount)
    frac = amount - low
    base = _dilate(x, low)
    if frac == 0.0:
        return base
    return (1.0 - frac) * base + frac * _dilate(x, low + 1)


def _theta(pose: Pose) -> list[list[float]]:
    """grid_sample's affine matrix: for each output pixel, where to read the input (inverse transform)."""
    a = math.radians(pose.angle)
    c, s = math.cos(a), math.sin(a)
    if pose.scale <= 0:
        raise ValueError(f"The scale must be positive; got {pose.scale}.")
    # Forward, in (x right, y down) coordinates about the centre: q = scale * R c + d with
    # R = [[c, s], [-s, c]] (anticlockwise as seen). Inverse: c = R^T (q - d) / scale.
    inv = [[c / pose.scale, -s / pose.scale], [s / pose.scale, c / pose.scale]]
    dx, dy = pose.shift_x / HALF, pose.shift_y / HALF
    return [[inv[0][0], inv[0][1], -(inv[0][0] * dx + inv[0][1] * dy)],
            [inv[1][0], inv[1][1], -(inv[1][0] * dx + inv[1][1] * dy)]]


def transform(image, poses: Sequence[Pose] | Pose) -> torch.Tensor:
    """One image under each pose: (len(poses), 1, 28, 28) float32 in [0, 1], on the image's device."""
    from ..inspection import as_batch

    x = as_batch(image).float()
    if x.shape[0] != 1:
        raise ValueError(f"Expected one image, got a batch of {x.shape[0]}.")
    poses = [poses] if isinstance(poses, Pose) else list(poses)
    thick = {}
    for pose in poses:
        if pose.thickness not in thick:
            thick[pose.thickness] = thicken(x, pose.thickness)
    source = torch.cat([thick[p.thickness] for p in poses])  # (P, 1, 28, 28)
    theta = torch.tensor([_theta(p) for p in poses], dtype=x.dtype, device=x.device)  # (P, 2, 3)
    grid = F.affine_grid(theta, list(source.shape), align_corners=False)
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.clamp_(0.0, 1.0)


@dataclass(frozen=True, eq=False)
class ProbeCurve:
    """The model's probabilities along one probe, the other pose values held fixed."""

    probe: Probe
    values: np.ndarray  # (P,) the probed parameter
    probs: np.ndarray  # (P, num_classes)
    cls: int  # the class whose confidence the curve follows
    base: Pose  # the pose the other parameters come from
    seconds: float

    @property
    def confidence(self) -> np.ndarray:
        return self.probs[:, self.cls]

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    def readable_range(self) -> tuple[float, float] | None:
        """The unbroken range of values around the untransformed one (0, or 1 for scale) in which the
        model still answers `cls`; None when it does not even there."""
        neutral = getattr(Pose(), self.probe.field)
        i = int(np.argmin(np.abs(self.values - neutral)))
        ok = self.predicted == self.cls
        if not ok[i]:
            return None
        lo = hi = i
        while lo > 0 and ok[lo - 1]:
            lo -= 1
        while hi < len(ok) - 1 and ok[hi + 1]:
            hi += 1
        return float(self.values[lo]), float(self.values[hi])


def probe(model: nn.Module, image, name: str, base: Pose = Pose(), cls: int | None = None,
          values: Sequence[float] | None = None) -> ProbeCurve:
    """Confidence along probe `name` (a PROBES key): all transformed images in one batched forward pass.

    `cls` defaults to the model's answer for the untransformed image.
    """
    spec = PROBES[name]
    values = np.asarray(spec.values if values is None else values, dtype=np.float64)
    x = one_image(image, model)
    with Stopwatch() as watch, evaluating(model), torch.no_grad():
        if cls is None:
            cls = int(model(x).argmax(dim=1))
        batch = transform(x, [replace(base, **{spec.field: float(v)}) for v in values])
        probs = model(batch).double().softmax(dim=1).cpu().numpy()  # (P, C)
    return ProbeCurve(spec, values, probs, int(cls), base, watch.seconds)


def probe_all(model: nn.Module, image, base: Pose = Pose(), cls: int | None = None) -> dict[str, ProbeCurve]:
    """Every probe in PROBES from the same base pose and for the same class."""
    x = one_image(image, model)
    if cls is None:
        with evaluating(model), torch.no_grad():
            cls = int(model(x).argmax(dim=1))
    return {name: probe(model, x, name, base, cls) for name in PROBES}
