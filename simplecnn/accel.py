"""Pick the fastest correct compute path this machine supports, and say which one is on."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ComputePath:
    """How the trainer runs the model on this device."""

    device: str  # "cpu", "cuda", "mps"
    channels_last: bool  # NHWC memory layout (faster oneDNN/cuDNN convolutions)
    autocast_dtype: torch.dtype | None  # mixed precision for forward/backward, None = float32
    threads: int  # intra-op CPU threads in use

    @property
    def name(self) -> str:
        parts = [self.device]
        parts.append("channels_last" if self.channels_last else "contiguous")
        parts.append(f"autocast {str(self.autocast_dtype).replace('torch.', '')}"
                     if self.autocast_dtype else "float32")
        if self.device == "cpu":
            parts.append(f"{self.threads} threads")
        return ", ".join(parts)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=self.autocast_dtype)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def resolve_device(device: str = "auto") -> str:
    """'auto' -> cuda if present, else cpu; anything else is checked and returned."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use 'cpu' or 'auto'.")
    if device not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu' or 'cuda'.")
    return device


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN runs bfloat16 natively (AVX-512-BF16 or AMX), so autocast pays off."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and \
            torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX")
    except Exception:  # older builds without the op
        return False


def choose_compute_path(device: str = "auto", fast: bool = True) -> ComputePath:
    """The fastest correct path: channels_last everywhere, bf16 autocast only where native."""
    dev = resolve_device(device)
    threads = torch.get_num_threads()
    if not fast:
        return ComputePath(dev, False, None, threads)
    if dev == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return ComputePath(dev, True, dtype, threads)
    if dev == "cpu":
        return ComputePath(dev, True, torch.bfloat16 if cpu_has_fast_bf16() else None, threads)
    return ComputePath(dev, False, None, threads)
