"""Checkpoints: weights + config + metrics + history in one file, saved atomically, loaded safely.

Files are written to a temporary name beside the target and renamed, so a crash never leaves a
half-written checkpoint. Loading always uses `torch.load(..., weights_only=True)`: a pickle that
would run code is refused by torch's restricted unpickler and reported as a ValueError.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

import torch

from .model import SimpleCNN

FORMAT = "simplecnn-checkpoint"
FORMAT_VERSION = 1
MAX_CHECKPOINT_BYTES = 10 * 1024 * 1024  # a SimpleCNN checkpoint is ~2.3 MB; matches server.maxUploadSize


def checkpoint_payload(model: SimpleCNN, config: dict | None = None, metrics: dict | None = None,
                       history: dict | None = None) -> dict:
    """The dict stored in a checkpoint. Metadata goes in as JSON text so only tensors are pickled."""
    meta = {
        "format": FORMAT, "version": FORMAT_VERSION,
        "architecture": {"num_classes": model.num_classes, "batch_norm": model.batch_norm,
                         "dropout1": model.dropout1.p, "dropout2": model.dropout2.p},
        "config": config or {}, "metrics": metrics or {}, "history": history or {},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return {"state_dict": state, "meta_json": json.dumps(meta)}


def checkpoint_bytes(model: SimpleCNN, **meta) -> bytes:
    """Serialise a checkpoint in memory (for downloads)."""
    buf = io.BytesIO()
    torch.save(checkpoint_payload(model, **meta), buf)
    return buf.getvalue()


def save_checkpoint(path: str | os.PathLike, model: SimpleCNN, config: dict | None = None,
                    metrics: dict | None = None, history: dict | None = None) -> Path:
    """Write atomically: a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = checkpoint_bytes(model, config=config, metrics=metrics, history=history)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(source: str | os.PathLike | bytes | BinaryIO,
                    map_location: str = "cpu") -> tuple[SimpleCNN, dict]:
    """(model in eval mode, metadata) from a path, bytes or a file object.

    Raises ValueError with a human message for anything that is not a SimpleCNN checkpoint:
    garbage, a truncated file, a pickle that would run code, or another architecture.
    """
    if isinstance(source, (bytes, bytearray)):
        if len(source) > MAX_CHECKPOINT_BYTES:
            raise ValueError(f"File too large for a SimpleCNN checkpoint ({len(source) / 1e6:.1f} MB).")
        source = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.is_file():
            raise ValueError(f"Checkpoint not found: {p}")
        if p.stat().st_size > MAX_CHECKPOINT_BYTES:
            raise ValueError(f"File too large for a SimpleCNN checkpoint: {p}")
    try:
        payload = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError("Refused to load: the file contains Python objects other than tensors "
                         "(a pickle that could run code). Only SimpleCNN checkpoints are accepted.") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, TypeError,
            AttributeError, IndexError, KeyError) as exc:
        raise ValueError("Not a readable checkpoint: the file is not a PyTorch checkpoint or is truncated "
                         f"({type(exc).__name__}).") from exc
    return model_from_payload(payload)


def model_from_payload(payload: object) -> tuple[SimpleCNN, dict]:
    """Rebuild the model from a loaded payload, checking it is really a SimpleCNN."""
    if isinstance(payload, dict) and "state_dict" in payload and "meta_json" in payload:
        try:
            meta = json.loads(payload["meta_json"])
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError("Checkpoint metadata is corrupt.") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError("Not a SimpleCNN checkpoint (unknown format).")
        state = payload["state_dict"]
    elif isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        # A bare state_dict, e.g. saved from the guide's own SimpleCNN class.
        state, meta = payload, {"format": "state_dict", "config": {}, "metrics": {}, "history": {}}
        meta["architecture"] = {"num_classes": int(state.get("fc2.weight", torch.empty(10, 0)).shape[0]),
                                "batch_norm": "batch1.weight" in state}
    else:
        raise ValueError("Not a SimpleCNN checkpoint: no model weights found in the file.")
    arch = meta.get("architecture", {})
    try:
        model = SimpleCNN(num_classes=int(arch.get("num_classes", 10)),
                          dropout1=float(arch.get("dropout1", 0.45)),
                          dropout2=float(arch.get("dropout2", 0.35)),
                          batch_norm=bool(arch.get("batch_norm", True)))
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, TypeError, AttributeError) as exc:
        first = " ".join(str(exc).split())[:240]
        raise ValueError(f"The checkpoint holds a different architecture than SimpleCNN: {first}") from exc
    model.eval()
    return model, meta
