"""Look inside a SimpleCNN: every stage's output, the learned filters, and input saliency.

Inspection never changes the model: hooks are removed, the train/eval mode is restored, BatchNorm
running statistics are put back, and the dropout random stream used by training is left untouched.
Do not inspect a model that a trainer is updating on another thread: pass a `copy.deepcopy` of it.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .data import to_float
from .model import STAGES, FastDropout

ALL_KEYS: tuple[str, ...] = ("input",) + STAGES + ("logits", "softmax")  # what activations() returns


@contextlib.contextmanager
def capture_activations(model: nn.Module, stages: tuple[str, ...] = STAGES) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, each forward pass on this thread stores detached CPU copies of the stages' outputs.

    Only forwards run by the thread that opened the block are recorded, so a model used elsewhere
    at the same time does not leak its batches into the capture. Hooks are removed on exit, also
    when the forward pass raises.
    """
    captured: dict[str, torch.Tensor] = {}
    owner = threading.get_ident()

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs, output: torch.Tensor) -> None:
            if threading.get_ident() == owner:
                # clone: eval-mode dropout and flatten return views of their inputs
                captured[name] = output.detach().float().cpu().clone(memory_format=torch.contiguous_format)
        return hook

    handles = []
    try:
        for name in stages:
            handles.append(getattr(model, name).register_forward_hook(make_hook(name)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def as_batch(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Images in any common layout -> float32 (N, 1, 28, 28); uint8 pixels are scaled to [0, 1]."""
    x = torch.as_tensor(x)
    if x.dtype == torch.uint8:
        x = to_float(x if x.dim() <= 3 else x.squeeze(1))
    x = x.float()
    if x.dim() == 2:  # (28, 28)
        x = x[None, None]
    elif x.dim() == 3:  # (N, 28, 28); a single (1, 28, 28) image reads the same
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"Expected images shaped (28, 28), (N, 28, 28) or (N, 1, 28, 28); got {tuple(x.shape)}.")
    return x


@contextlib.contextmanager
def _preserved_state(model: nn.Module, seed: int | None) -> Iterator[None]:
    """Put back the mode, BatchNorm statistics and RNG streams after an inspection forward pass."""
    was_training = model.training
    norm_buffers = [(buf, buf.detach().clone()) for m in model.modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm) for buf in m.buffers()]
    # FastDropout keeps its own generator once it has drawn a mask; park it so training's
    # stream is not advanced, and let the inspection draw a fresh one from torch's (seeded) RNG.
    dropouts = [m for m in model.modules() if isinstance(m, FastDropout)]
    parked = [m.__dict__.pop("_rng", None) for m in dropouts]
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            if seed is None:
                torch.seed()
            else:
                torch.manual_seed(seed)
            yield
    finally:
        for m, rng in zip(dropouts, parked):
            m.__dict__.pop("_rng", None)
            if rng is not None:
                m._rng = rng
        with torch.no_grad():
            for buf, saved in norm_buffers:
                buf.copy_(saved)
        model.train(was_training)


def activations(model: nn.Module, x: torch.Tensor | np.ndarray, mode: str = "eval",
                seed: int | None = None) -> dict[str, torch.Tensor]:
    """Every stage's output for a batch of images, as CPU tensors keyed "input", STAGES..., "logits", "softmax".

    mode="eval" is what predictions use: dropout passes everything, BatchNorm uses its running
    statistics. mode="train" shows the network as training sees it: dropout zeroes a random
    fraction p of units and scales the rest by 1/(1-p), and BatchNorm normalises with the batch's
    own mean and variance. For a single image those are per-channel statistics over the spatial
    map (24x24 after conv1, 8x8 after conv2), which is well defined; a BatchNorm over 1x1 maps
    with one image would not be. mode="dropout" is eval mode with only the dropout layers
    training, to show dropout's effect alone. `seed` makes the dropout masks repeatable.
    """
    if mode not in ("eval", "train", "dropout"):
        raise ValueError(f"mode must be 'eval', 'train' or 'dropout', got {mode!r}")
    batch = as_batch(x)  # (N, 1, 28, 28)
    device = next(model.parameters()).device
    with _preserved_state(model, seed), torch.no_grad(), capture_activations(model) as captured:
        model.train(mode == "train")
        if mode == "dropout":
            for module in model.modules():
                if isinstance(module, nn.Dropout):
                    module.train()
        logits = model(batch.to(device))  # (N, 10)
    result = {"input": batch.clone()}
    result.update((name, captured[name]) for name in STAGES)
    result["logits"] = logits.detach().float().cpu()
    result["softmax"] = result["logits"].softmax(dim=1)
    return result


def conv_filters(model: nn.Module, layer: str = "conv1") -> np.ndarray:
    """A convolution's weights as a float32 array (out_channels, in_channels, k, k)."""
    conv = getattr(model, layer)
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"{layer!r} is a {type(conv).__name__}, not a convolution.")
    return conv.weight.detach().float().cpu().contiguous().numpy().copy()


def first_layer_filters(model: nn.Module) -> np.ndarray:
    """conv1's 32 filters as (32, 5, 5): with one input channel each filter is a single 5x5 image."""
    return conv_filters(model, "conv1")[:, 0]


def saliency(model: nn.Module, x: torch.Tensor | np.ndarray, target: int | None = None) -> np.ndarray:
    """|d score / d pixel| for one image, (28, 28): which pixels would move the class score most.

    The score is the logit (pre-softmax) of `target`, by default the predicted class. The model
    runs in eval mode and only the input's gradient is computed, so no .grad is left on parameters.
    """
    batch = as_batch(x)
    if batch.shape[0] != 1:
        raise ValueError(f"saliency takes one image, got a batch of {batch.shape[0]}.")
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad():
            pixels = batch.to(device).detach().clone().requires_grad_(True)  # (1, 1, 28, 28), caller's untouched
            logits = model(pixels)  # (1, 10)
            cls = int(logits.argmax(dim=1)) if target is None else int(target)
            (grad,) = torch.autograd.grad(logits[0, cls], pixels)
    finally:
        model.train(was_training)
    return grad[0].abs().amax(dim=0).float().cpu().numpy()  # (28, 28), max over channels
