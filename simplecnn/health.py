"""Layer health while training: what the weights, gradients and ReLUs of each layer look like.

Every `every` optimizer steps, on that one step only, this records per layer (conv1, conv2, fc1, fc2
weights): a histogram of the weights and one of the gradient sizes, the update-to-weight ratio
‖W_after − W_before‖ / ‖W_before‖ of the step, and per ReLU the fraction of units that did not fire
for any image of the batch. On the other steps it costs two cheap Python calls (a forward pre-hook on
the model and a post-hook on the optimizer), so recording can stay on for every run.

The bins are fixed for the whole run, so a histogram at step 10 and one at step 10,000 line up:
* weights: 40 equal bins over ±WEIGHT_RANGE × the layer's initial bound 1/√fan_in (PyTorch's default
  init draws from ±1/√fan_in), plus one bin below and one above, so weights that grow far show up;
* gradients: 40 bins of log10 |g| from 1e-10 to 1 (4 per decade), plus one bin for |g| < 1e-10
  (zeros included) and one above 1; a gradient's size spans decades, its sign is not shown.

A "unit" of a ReLU is one feature map (channel) after a convolution and one neuron after fc1: a
channel is dead on a batch when its output is 0 at every position of every image.

In a notebook:

    with attach_health(trainer, every=20) as health:
        trainer.fit()
    health.samples[-1]["update_ratio"]       # {"conv1": 0.0012, ...}

In the training process `recorder_for` (registered in `simplecnn.recorders`) stores the samples in the
run's `health.json`, at most MAX_SAMPLES of them: when full, every other sample is dropped and the
interval doubles, so a long run keeps evenly spaced samples from start to end.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from .files import atomic_write_json, read_json

HEALTH_FILE = "health.json"
FORMAT_VERSION = 1
LAYERS: tuple[str, ...] = ("conv1", "conv2", "fc1", "fc2")  # whose weights are recorded
RELUS: tuple[str, ...] = ("relu1", "relu2", "relu3")
EVERY_ENV = "SIMPLECNN_HEALTH_EVERY"  # steps between samples in the training process; 0 turns it off
DEFAULT_EVERY = 25  # measured cost at 25: see benchmarks/health_overhead.py and benchmarks/README.md
MAX_EVERY = 100_000
MAX_SAMPLES = 160  # ~3 KB of JSON each: health.json stays under 0.5 MB
WRITE_EVERY_S = 5.0  # health.json is rewritten at most this often while training (and at every epoch end)
WEIGHT_BINS = 40
WEIGHT_RANGE = 4.0  # weight bins cover ±4 initial bounds
GRAD_DECADES = (-10, 0)  # log10 |g| range of the gradient bins
GRAD_BINS_PER_DECADE = 4


def weight_edges(fan_in: int) -> list[float]:
    """The WEIGHT_BINS + 1 edges of a layer's weight histogram, from its fan-in (not from its data,
    so a resumed run gets the same bins)."""
    bound = WEIGHT_RANGE / math.sqrt(fan_in)
    return torch.linspace(-bound, bound, WEIGHT_BINS + 1, dtype=torch.float64).tolist()


def grad_edges() -> list[float]:
    """Edges in log10 |g|: -10, -9.75, ..., 0."""
    low, high = GRAD_DECADES
    n = (high - low) * GRAD_BINS_PER_DECADE
    return [low + i / GRAD_BINS_PER_DECADE for i in range(n + 1)]


def binned_counts(values: torch.Tensor, edges: list[float]) -> list[int]:
    """len(edges) + 1 counts: [< edges[0], then the equal bins from edges[0] to edges[-1] (a value on an
    inner edge goes to the bin above it, edges[-1] itself to the last bin), > edges[-1]].

    torch.histc (~2 ms for fc1's 524,288 weights) rather than bucketize on the edges (~10 ms)."""
    flat = values.detach().reshape(-1).float()  # (numel,)
    low, high = edges[0], edges[-1]
    inner = torch.histc(flat, bins=len(edges) - 1, min=low, max=high)  # values outside are not counted
    below, above = int((flat < low).sum()), int((flat > high).sum())
    return [below, *inner.to(torch.int64).tolist(), above]


def grad_sizes(grad: torch.Tensor) -> torch.Tensor:
    """log10 |g| in float32; zeros become -inf (the lowest bin), NaN the highest."""
    return torch.nan_to_num(grad.detach().float().abs().log10(), nan=math.inf)


def dead_fraction(output: torch.Tensor) -> float:
    """Fraction of units with output ≤ 0 for every image: channels of (N, C, H, W), neurons of (N, F)."""
    fired = output.detach() > 0  # (N, C, H, W) or (N, F)
    per_unit = fired.any(dim=0)  # (C, H, W) or (F,)
    if per_unit.dim() > 1:
        per_unit = per_unit.flatten(1).any(dim=1)  # (C,): a channel fires if any position does
    return 1.0 - per_unit.float().mean().item()


class LayerHealth:
    """Hooks on a model and its optimizer that record one sample every `every` optimizer steps.

    `step` is the number of optimizer steps already taken (a resumed run passes its position).
    A sample is taken on step s (counting from 1) when s == 1 or s % every == 0. Use as a context
    manager, or call `close()`: the hooks are removed either way.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, every: int = DEFAULT_EVERY,
                 step: int = 0, samples: list[dict] | None = None, max_samples: int = MAX_SAMPLES) -> None:
        if not isinstance(every, int) or not 1 <= every <= MAX_EVERY:
            raise ValueError(f"every must be a whole number of steps from 1 to {MAX_EVERY} (got {every!r})")
        if not isinstance(max_samples, int) or not 2 <= max_samples <= 10_000:
            raise ValueError(f"max_samples must be from 2 to 10000 (got {max_samples!r})")
        self.model, self.optimizer = model, optimizer
        self.every, self.step, self.max_samples = every, step, max_samples
        self.samples: list[dict] = [s for s in (samples or []) if s["step"] <= step]
        self.layers = {name: getattr(model, name).weight for name in LAYERS}
        self.weight_edges = {name: weight_edges(w[0].numel()) for name, w in self.layers.items()}
        self.grad_edges = grad_edges()
        self._before: dict[str, torch.Tensor] | None = None
        self._pending: dict | None = None  # filled during a sampled step
        self._handles = [model.register_forward_pre_hook(self._on_forward),
                         optimizer.register_step_pre_hook(self._before_step),
                         optimizer.register_step_post_hook(self._after_step)]
        self._relu_handles: list = []
        self.recorded = 0  # samples taken by this object (thinning does not lower it)

    # -- the hooks -----------------------------------------------------------------------------------
    def due(self, step: int) -> bool:
        """Whether optimizer step number `step` (from 1) is sampled."""
        return step == 1 or step % self.every == 0

    def _on_forward(self, module: nn.Module, _inputs) -> None:
        self._remove_relu_hooks()
        self._pending = None
        if not module.training or not self.due(self.step + 1):
            return
        self._pending = {"dead_relu": {}}
        for name in RELUS:
            hook = getattr(self.model, name).register_forward_hook(
                lambda _m, _i, out, name=name: self._pending["dead_relu"].__setitem__(name, dead_fraction(out)))
            self._relu_handles.append(hook)

    def _before_step(self, _optimizer, _args, _kwargs) -> None:
        self._remove_relu_hooks()
        if self._pending is None:
            return
        with torch.no_grad():
            self._before = {name: w.detach().clone() for name, w in self.layers.items()}
            self._pending["grads"] = {
                name: binned_counts(grad_sizes(w.grad), self.grad_edges) if w.grad is not None
                else None for name, w in self.layers.items()}

    def _after_step(self, _optimizer, _args, _kwargs) -> None:
        self.step += 1
        pending, before = self._pending, self._before
        self._pending = self._before = None
        if pending is None or before is None:
            return
        with torch.no_grad():
            ratio, weights = {}, {}
            for name, w in self.layers.items():
                old = before[name].float()
                value = ((w.detach().float() - old).norm() / old.norm().clamp_min(1e-12)).item()
                ratio[name] = value if math.isfinite(value) else None  # weights gone inf/nan: JSON has no NaN
                weights[name] = binned_counts(w, self.weight_edges[name])
        self.samples.append({"step": self.step, "update_ratio": ratio, "weights": weights,
                             "grads": pending["grads"], "dead_relu": pending["dead_relu"]})
        self.recorded += 1
        if len(self.samples) > self.max_samples:
            self.thin()

    def _remove_relu_hooks(self) -> None:
        for hook in self._relu_handles:
            hook.remove()
        self._relu_handles.clear()

    # -- bounds and lifetime ---------------------------------------------------------------------------
    def thin(self) -> None:
        """Keep every other sample (the first always) and sample half as often from now on."""
        self.every *= 2
        self.samples = [s for i, s in enumerate(self.samples) if s["step"] % self.every == 0 or i == 0]

    def close(self) -> None:
        """Remove every hook (idempotent)."""
        self._remove_relu_hooks()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._pending = self._before = None

    @property
    def closed(self) -> bool:
        return not self._handles

    def __enter__(self) -> "LayerHealth":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def to_dict(self, **extra) -> dict:
        """Everything the page needs, as plain JSON-friendly values."""
        return {"version": FORMAT_VERSION, "every": self.every, "layers": list(LAYERS), "relus": list(RELUS),
                "weight_edges": self.weight_edges, "grad_edges": self.grad_edges,
                "samples": self.samples, **extra}


def attach_health(trainer, every: int = DEFAULT_EVERY, samples: list[dict] | None = None,
                  max_samples: int = MAX_SAMPLES) -> LayerHealth:
    """Record layer health of a `Trainer`'s model from its current position on."""
    return LayerHealth(trainer.model, trainer.optimizer, every=every, step=trainer.step, samples=samples,
                       max_samples=max_samples)


# -- on disk ---------------------------------------------------------------------------------------------
def health_path(run_dir: Path) -> Path:
    return Path(run_dir) / HEALTH_FILE


def read_health(run_dir: Path) -> dict | None:
    """A run's stored health, or None when it has none yet; ValueError for a damaged file."""
    path = health_path(run_dir)
    if not path.exists():
        return None
    data = read_json(path)
    if data.get("version") != FORMAT_VERSION or not isinstance(data.get("samples"), list):
        raise ValueError(f"{HEALTH_FILE} has an unknown format")
    return data


def every_from_env() -> int:
    """Steps between samples in the training process (SIMPLECNN_HEALTH_EVERY; 0 = off)."""
    raw = os.environ.get(EVERY_ENV, "").strip()
    if not raw:
        return DEFAULT_EVERY
    value = int(raw)
    if not 0 <= value <= MAX_EVERY:
        raise ValueError(f"{EVERY_ENV} must be from 0 to {MAX_EVERY} (got {value})")
    return value


class HealthRecorder:
    """A `simplecnn.recorders` recorder: a LayerHealth on the run's trainer, written to health.json."""

    def __init__(self, trainer, run_dir: Path, every: int = DEFAULT_EVERY,
                 write_every_s: float = WRITE_EVERY_S, max_samples: int = MAX_SAMPLES) -> None:
        self.path = health_path(run_dir)
        self.write_every_s = write_every_s
        samples = []
        try:
            stored = read_health(run_dir)
        except ValueError:  # a damaged file is replaced rather than stopping the run
            stored = None
        if stored is not None:  # a resumed run: keep what was recorded up to its resume point
            samples = stored["samples"]
            every = max(every, int(stored.get("every", every)))
        self.health = attach_health(trainer, every=every, samples=samples, max_samples=max_samples)
        self.batches_per_epoch = trainer.batches_per_epoch
        self._written = 0  # health.recorded at the last write
        self._last_write = -math.inf  # the first sample is written at once, so the page has something soon

    def on_event(self, trainer, event: object) -> None:
        from .training import EpochEvent

        fresh = self.health.recorded != self._written
        if fresh and (isinstance(event, EpochEvent) or time.monotonic() - self._last_write >= self.write_every_s):
            self.write()

    def write(self) -> None:
        atomic_write_json(self.path, self.health.to_dict(batches_per_epoch=self.batches_per_epoch))
        self._written = self.health.recorded
        self._last_write = time.monotonic()

    def close(self, trainer) -> None:
        if not self.health.closed:
            self.health.close()
            self.write()


def recorder_for(trainer, run) -> HealthRecorder | None:
    """The factory registered in simplecnn.recorders: None when SIMPLECNN_HEALTH_EVERY is 0."""
    every = every_from_env()
    return HealthRecorder(trainer, run.path, every=every) if every else None
