"""The guide's SimpleCNN, with the guide's attribute names so weights move both ways."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# Names of the forward-pass stages in order; inspection hooks and the UI use these.
STAGES: tuple[str, ...] = (
    "conv1", "batch1", "relu1", "max1", "dropout1",
    "conv2", "batch2", "relu2", "max2", "dropout2",
    "flatten", "fc1", "relu3", "fc2",
)


@dataclass(frozen=True)
class LayerInfo:
    """One row of the layer table: what a layer is, what it outputs, what it costs."""

    name: str  # attribute name on the module ("conv1", ...) or a functional stage ("relu1")
    kind: str  # human-readable layer type, e.g. "Conv2d 5×5, 1→32"
    output_shape: tuple[int, ...]  # shape for one input image, batch dim included
    parameters: int  # trainable parameters owned by this layer


class SimpleCNN(nn.Module):
    """conv5x5->32, BN, ReLU, pool, dropout; conv5x5->64, BN, ReLU, pool, dropout; fc 1024->512->10.

    Softmax is not applied here: `nn.CrossEntropyLoss` expects raw logits.
    With `batch_norm=False` the two BatchNorm layers become `nn.Identity`.
    """

    def __init__(self, num_classes: int = 10, dropout1: float = 0.45, dropout2: float = 0.35,
                 batch_norm: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.batch_norm = batch_norm
        self.conv1 = nn.Conv2d(in_channels=1, out_channels=32, kernel_size=5)
        self.conv2 = nn.Conv2d(in_channels=32, out_channels=64, kernel_size=5)
        self.max1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.max2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(in_features=64 * 4 * 4, out_features=512)
        self.fc2 = nn.Linear(in_features=512, out_features=num_classes)
        self.dropout1 = FastDropout(p=dropout1)
        self.dropout2 = FastDropout(p=dropout2)
        self.batch1 = nn.BatchNorm2d(num_features=32) if batch_norm else nn.Identity()
        self.batch2 = nn.BatchNorm2d(num_features=64) if batch_norm else nn.Identity()
        # Functional stages as modules so forward hooks can see them.
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.relu3 = nn.ReLU()
        self.flatten = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 1, 28, 28) floats in [0, 1]
        x = self.dropout1(self.max1(self.relu1(self.batch1(self.conv1(x)))))  # (N, 32, 12, 12)
        x = self.dropout2(self.max2(self.relu2(self.batch2(self.conv2(x)))))  # (N, 64, 4, 4)
        x = self.relu3(self.fc1(self.flatten(x)))  # (N, 512)
        return self.fc2(x)  # (N, num_classes) logits

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Total parameter count (582,218 with batch norm, 582,026 without)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def layer_table(self, input_size: int = 28) -> list[LayerInfo]:
        """Output shape and parameter count of every stage, measured by a real forward pass."""
        shapes: dict[str, tuple[int, ...]] = {}
        handles = [getattr(self, name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
            for name in STAGES]
        was_training = self.training
        try:
            self.eval()
            with torch.no_grad():
                self(torch.zeros(1, 1, input_size, input_size, device=self.device))
        finally:
            for h in handles:
                h.remove()
            self.train(was_training)
        rows = [LayerInfo("input", "Image (N, C, H, W)", (1, 1, input_size, input_size), 0)]
        for name in STAGES:
            module = getattr(self, name)
            rows.append(LayerInfo(name, describe_module(module), shapes[name],
                                  sum(p.numel() for p in module.parameters())))
        return rows


def describe_module(module: nn.Module) -> str:
    """A short human label for one of SimpleCNN's layers."""
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size
        return f"Conv2d {k[0]}×{k[1]}, {module.in_channels}→{module.out_channels}"
    if isinstance(module, nn.BatchNorm2d):
        return f"BatchNorm2d({module.num_features})"
    if isinstance(module, nn.MaxPool2d):
        return f"MaxPool2d {module.kernel_size}×{module.kernel_size}, stride {module.stride}"
    if isinstance(module, nn.Dropout):
        return f"Dropout(p={module.p:g})"
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}→{module.out_features}"
    if isinstance(module, nn.Identity):
        return "Identity (batch norm off)"
    return type(module).__name__


class FastDropout(nn.Dropout):
    """`nn.Dropout` with the same maths (keep with probability 1-p, scale by 1/(1-p)), but a faster mask.

    On the CPU, torch's `bernoulli_` costs ~15 % of a SimpleCNN training step; NumPy's PCG64 bytes
    thresholded at 16-bit resolution make the same mask ~7x faster. The random stream is seeded from
    torch's generator, so `torch.manual_seed` still makes runs repeatable. Other devices, eval mode
    and non-dense tensors use the stock implementation.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or x.dtype != torch.float32:
            return super().forward(x)
        if self.p >= 1.0:
            return x * 0.0
        if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            return super().forward(x)
        rng = getattr(self, "_rng", None)
        if rng is None:
            rng = self._rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        threshold = int(round(self.p * 65536))
        keep = np.frombuffer(rng.bytes(2 * x.numel()), dtype=np.uint16) >= threshold
        mask = keep.view(np.uint8).astype(np.float32)
        mask *= np.float32(1.0 / (1.0 - self.p))
        # The mask is i.i.d., so it can be laid over x's memory in whatever order x is stored.
        return x * torch.from_numpy(mask).as_strided(x.shape, x.stride())
