"""Gradient-descent variants walking over 2-D loss surfaces, driven by torch's own optimizers.

A "model" here is a single 2-element parameter tensor (x, y) and the loss is a hand-picked surface,
so the path each optimizer draws is exactly what `torch.optim` would do to a real network's weights,
just small enough to see.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

OPTIMIZERS: tuple[str, ...] = ("Batch GD", "SGD", "Momentum", "Adagrad", "RMSProp", "Adam")
DIVERGED = 1e6  # a coordinate beyond this counts as blown up; the path stops there


@dataclass(frozen=True)
class Surface:
    """A loss L(x, y) written with torch ops so autograd can differentiate it (works on grids too)."""

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    start: tuple[float, float]  # a start point that shows the surface's trouble
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    lr: float  # a learning rate at which plain gradient descent behaves here
    log_levels: bool  # draw contours of log(1 + L) (for surfaces with a huge range of values)
    minima: tuple[tuple[float, float], ...]  # where L is lowest
    note: str

    def __call__(self, point: torch.Tensor) -> torch.Tensor:
        return self.fn(point[..., 0], point[..., 1])


SURFACES: dict[str, Surface] = {s.name: s for s in (
    Surface("Bowl", lambda x, y: x ** 2 + y ** 2, (-3.5, 2.5), (-4, 4), (-4, 4), 0.1, False, ((0.0, 0.0),),
            "Round and convex, minimum at (0, 0): the gradient points straight at it. Plain gradient descent "
            "with η < 1 gets there (on x² + y² each step multiplies x and y by 1 − 2η); whether the others do depends on their settings (Adagrad's shrinking steps can stop it short)."),
    Surface("Narrow ravine", lambda x, y: 0.05 * x ** 2 + 5.0 * y ** 2, (-9.0, 1.5), (-10, 10), (-3, 3), 0.15, False, ((0.0, 0.0),),
            "Steep across, almost flat along: plain gradient descent zig-zags across the walls "
            "and crawls along the floor."),
    Surface("Rosenbrock banana", lambda x, y: (1.0 - x) ** 2 + 100.0 * (y - x ** 2) ** 2, (-1.5, 2.0),
            (-2, 2), (-1, 3), 0.001, True, ((1.0, 1.0),),
            "A curved, nearly flat valley; the minimum is at (1, 1). Easy to reach the valley, slow to follow it."),
    Surface("Saddle", lambda x, y: x ** 2 + 0.25 * y ** 4 - 0.5 * y ** 2, (-2.5, 0.02), (-3, 3), (-2, 2), 0.1, False, ((0.0, 1.0), (0.0, -1.0)),
            "A saddle point at (0, 0) and two minima at (0, +-1). Near the ridge y = 0 the gradient "
            "across is tiny, so methods stall on the saddle before falling off."),
)}


def make_optimizer(name: str, params: list[torch.Tensor], lr: float, beta1: float = 0.9,
                   beta2: float = 0.999, momentum: float | None = None) -> torch.optim.Optimizer:
    """The torch.optim optimizer behind each name; beta1 is Adam's momentum, beta2 is RMSProp's and
    Adam's squared-gradient decay.

    Momentum gets its own `momentum` (default: beta1). It is not Adam's beta1: torch's SGD keeps
    v = momentum * v + g without the (1 - beta) factor, so its steps grow towards lr / (1 - momentum)
    along a steady gradient, while Adam's average m keeps the gradient's size.
    """
    if name in ("Batch GD", "SGD"):
        return torch.optim.SGD(params, lr=lr)
    if name == "Momentum":
        return torch.optim.SGD(params, lr=lr, momentum=beta1 if momentum is None else momentum)
    if name == "Adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    if name == "RMSProp":
        return torch.optim.RMSprop(params, lr=lr, alpha=beta2)
    if name == "Adam":
        return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2))
    raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")


def optimizer_path(name: str, surface: Surface | str, start, lr: float, beta1: float = 0.9,
                   beta2: float = 0.999, steps: int = 100, noise: float = 0.0, seed: int = 0,
                   momentum: float | None = None) -> np.ndarray:
    """Positions (steps + 1, 2) visited by a torch optimizer from `start` on `surface`.

    Gaussian noise of standard deviation `noise` (seeded) is added to each gradient, which is how
    SGD's per-example gradient differs from the full-batch one. Rows after a blow-up are NaN.
    """
    surface = SURFACES[surface] if isinstance(surface, str) else surface
    point = torch.tensor([float(start[0]), float(start[1])], dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer(name, [point], lr, beta1, beta2, momentum)
    generator = torch.Generator().manual_seed(int(seed))
    path = np.full((steps + 1, 2), np.nan)
    path[0] = point.detach().numpy()
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        surface(point).backward()
        if noise > 0:
            point.grad.add_(torch.randn(2, generator=generator, dtype=torch.float64) * noise)
        optimizer.step()
        position = point.detach().numpy()
        if not np.all(np.isfinite(position)) or np.abs(position).max() > DIVERGED:
            break
        path[step] = position
    return path


def loss_along(surface: Surface | str, path: np.ndarray) -> np.ndarray:
    """L at every row of a path (NaN stays NaN)."""
    surface = SURFACES[surface] if isinstance(surface, str) else surface
    with torch.no_grad():
        return surface(torch.as_tensor(path, dtype=torch.float64)).numpy()


def lowest_loss(surface: Surface | str) -> float:
    """L at the surface's minimum (the saddle surface's minima lie below 0)."""
    surface = SURFACES[surface] if isinstance(surface, str) else surface
    return float(loss_along(surface, np.array(surface.minima, dtype=np.float64)).min())


def surface_grid(surface: Surface | str, n: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs (n,), ys (n,), L (n, n)) over the surface's plotting window, rows indexed by y."""
    surface = SURFACES[surface] if isinstance(surface, str) else surface
    xs = torch.linspace(*surface.x_range, n, dtype=torch.float64)
    ys = torch.linspace(*surface.y_range, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # (n, n) each
    with torch.no_grad():
        z = surface.fn(xx, yy)
    return xs.numpy(), ys.numpy(), z.numpy()


ADAPTIVE: tuple[str, ...] = ("Adagrad", "RMSProp", "Adam")  # step sizes scaled per parameter


def all_paths(surface: Surface | str, start, lr: float, beta1: float, beta2: float, steps: int,
              noise: float, seed: int = 0, noisy: tuple[str, ...] = ("SGD",),
              adaptive_lr: float | None = None, momentum: float | None = None) -> dict[str, np.ndarray]:
    """Every optimizer's path from the same start; only those named in `noisy` get gradient noise.

    Adaptive methods divide by the gradient's size, so each step moves about `lr` whatever the
    slope; `adaptive_lr` (if given) lets them use a step size of their own. `momentum` is the
    Momentum optimizer's own coefficient (default: beta1, as Adam's).
    """
    def rate(name: str) -> float:
        return adaptive_lr if adaptive_lr is not None and name in ADAPTIVE else lr
    return {name: optimizer_path(name, surface, start, rate(name), beta1, beta2, steps,
                                 noise if name in noisy else 0.0, seed, momentum) for name in OPTIMIZERS}


def final_losses(surface: Surface | str, paths: dict[str, np.ndarray]) -> list[dict]:
    """A row per optimizer: where it stopped, its final loss, or the step at which it blew up."""
    rows = []
    for name, path in paths.items():
        finite = np.all(np.isfinite(path), axis=1)
        last = int(np.flatnonzero(finite)[-1])
        diverged = not finite.all()
        rows.append({
            "optimizer": name,
            "final x": float(path[last, 0]),
            "final y": float(path[last, 1]),
            "final loss": float("nan") if diverged else float(loss_along(surface, path[last:last + 1])[0]),
            "status": f"diverged after step {last}" if diverged else "ok",
        })
    return rows


def short_of_minimum(surface: Surface | str, paths: dict[str, np.ndarray], tolerance: float = 1e-2) -> dict[str, float]:
    """Optimizers whose final loss is more than `tolerance` above the lowest loss: name -> final gap.

    A path that blew up counts as short of the minimum with an infinite gap. This is what a note
    like "every method reaches the minimum" has to be checked against.
    """
    best = lowest_loss(surface)
    gaps = {}
    for row in final_losses(surface, paths):
        gap = float("inf") if row["status"] != "ok" else row["final loss"] - best
        if gap > tolerance:
            gaps[row["optimizer"]] = gap
    return gaps


def leaves_window(surface: Surface | str, path: np.ndarray) -> int | None:
    """The first step at which a path is outside the surface's plotting window (None if it never is)."""
    surface = SURFACES[surface] if isinstance(surface, str) else surface
    (x0, x1), (y0, y1) = surface.x_range, surface.y_range
    finite = np.all(np.isfinite(path), axis=1)
    outside = ~finite | (path[:, 0] < x0) | (path[:, 0] > x1) | (path[:, 1] < y0) | (path[:, 1] > y1)
    steps = np.flatnonzero(outside)
    return int(steps[0]) if len(steps) else None


GD_BEHAVIOURS: tuple[str, ...] = (
    "creeps towards the minimum without ever crossing it",
    "jumps across the minimum at every step, landing a little closer each time",
    "bounces between two points for ever",
    "flies off, further out at every step",
)


def gd_behaviour(path: np.ndarray, coordinate: int = 0) -> str:
    """Which of GD_BEHAVIOURS a run shows, read off the real path of one coordinate.

    The distance from 0 either shrinks, stays or grows; the sign either stays or flips every step.
    (A run that lands exactly on 0, as x^2 with lr 0.5 does, fits none of them; the lesson never asks it.)
    """
    x = path[:, coordinate]
    finite = np.isfinite(x)
    if not finite.all() or abs(x[-1]) > abs(x[0]) * (1 + 1e-9):
        return GD_BEHAVIOURS[3]
    if abs(abs(x[-1]) - abs(x[0])) <= 1e-9 * abs(x[0]):
        return GD_BEHAVIOURS[2]
    moving = x[np.abs(x) > 1e-300]  # once a coordinate is exactly 0 it has no sign left
    flips = np.sign(moving[1:]) != np.sign(moving[:-1])
    return GD_BEHAVIOURS[1] if flips.all() else GD_BEHAVIOURS[0]


def gradient_at(surface: Surface | str, point) -> np.ndarray:
    """The surface's gradient at a point, by autograd."""
    surface = SURFACES[surface] if isinstance(surface, str) else surface
    p = torch.tensor([float(point[0]), float(point[1])], dtype=torch.float64, requires_grad=True)
    surface(p).backward()
    return p.grad.numpy()
