"""Checkpoints: weights + config + metrics + history in one file, saved atomically, loaded safely.

Files are written to a temporary name beside the target and renamed, so a crash never leaves a
half-written checkpoint. Loading always uses `torch.load(..., weights_only=True)`: a pickle that
would run code is refused by torch's restricted unpickler and reported as a ValueError.
"""
from __future__ import annotations

import io
import json
import math
import os
import pickle
import zipfile
from pathlib import Path
from typing import BinaryIO

import torch

from .files import atomic_write_bytes
from .model import SimpleCNN

FORMAT = "simplecnn-checkpoint"
FORMAT_VERSION = 1
MAX_CHECKPOINT_BYTES = 10 * 1024 * 1024  # a SimpleCNN checkpoint is ~2.3 MB; matches server.maxUploadSize
MAX_UNPACKED_BYTES = 32 * 1024 * 1024  # what the zip's entries may declare in all, before torch reads them
MAX_ZIP_ENTRIES = 1000
MAX_META_BYTES = 4 * 1024 * 1024  # metadata JSON (config, metrics, history) of a long run is ~0.3 MB
MAX_META_DEPTH = 12  # nesting of that JSON; ours is 4 deep
MAX_CLASSES = 100


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
    data = checkpoint_bytes(model, config=config, metrics=metrics, history=history)
    atomic_write_bytes(path, data)  # world-readable: a checkpoint is meant to be shared
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
    _check_archive(source)
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


def _check_archive(source) -> None:
    """Refuse by the zip directory alone, before torch.load allocates: a 10 MB upload of compressed
    entries could unpack to gigabytes. torch.save writes uncompressed (stored) entries only."""
    try:
        with zipfile.ZipFile(source) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        if _starts_like_a_pickle(source):
            raise ValueError("Refused to load: the file is a bare Python pickle, which could run code when "
                             "loaded. Only SimpleCNN checkpoints written by torch.save are accepted.") from exc
        raise ValueError("Not a readable checkpoint: only files written by torch.save (a zip archive) are "
                         f"accepted ({type(exc).__name__}).") from exc
    finally:
        if hasattr(source, "seek"):
            source.seek(0)
    if len(entries) > MAX_ZIP_ENTRIES:
        raise ValueError(f"Not a SimpleCNN checkpoint: the archive holds {len(entries):,} files.")
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries):
        raise ValueError("Refused: the archive's entries are compressed, which torch.save never does "
                         "(such a file can unpack to far more than its size).")
    declared = sum(e.file_size for e in entries)
    if declared > MAX_UNPACKED_BYTES:
        raise ValueError(f"Refused: the archive declares {declared / 1e6:,.0f} MB of contents; a SimpleCNN "
                         "checkpoint holds about 2.3 MB.")


def _starts_like_a_pickle(source) -> bool:
    """Pickle protocol 2+ starts with the PROTO opcode 0x80 and its version."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            head = f.read(2)
    else:
        source.seek(0)
        head = source.read(2)
        source.seek(0)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _json_depth(value, limit: int) -> int:
    """Nesting depth of parsed JSON, without recursion (stops counting past `limit`)."""
    depth, level = 0, [value]
    while level and depth <= limit:
        depth += 1
        level = [c for v in level if isinstance(v, (dict, list))
                 for c in (v.values() if isinstance(v, dict) else v)]
        level = [v for v in level if isinstance(v, (dict, list))]
    return depth


def _parse_meta(text: object) -> dict:
    if not isinstance(text, str):
        raise ValueError("Checkpoint metadata is corrupt.")
    if len(text) > MAX_META_BYTES:
        raise ValueError(f"Checkpoint metadata is too large ({len(text) / 1e6:.1f} MB of text).")
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError("Checkpoint metadata is corrupt.") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("Not a SimpleCNN checkpoint (unknown format).")
    if _json_depth(meta, MAX_META_DEPTH) > MAX_META_DEPTH:
        raise ValueError("Checkpoint metadata is nested too deeply to be ours.")
    for name in ("architecture", "config", "metrics", "history"):
        if not isinstance(meta.get(name, {}), dict):
            raise ValueError(f"Checkpoint metadata is corrupt: {name} is not a mapping.")
    if meta.get("config"):
        from .training import TrainConfig
        try:
            TrainConfig.from_dict(meta["config"]).validate()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"The checkpoint's training settings are invalid: {exc}") from None
    return meta


def _architecture(arch: dict) -> dict:
    """num_classes, dropouts and batch_norm from metadata, checked for type and range."""
    classes = arch.get("num_classes", 10)
    if isinstance(classes, bool) or not isinstance(classes, int) or not 2 <= classes <= MAX_CLASSES:
        raise ValueError(f"Not a usable SimpleCNN: num_classes must be a whole number from 2 to {MAX_CLASSES} "
                         f"(got {classes!r:.40}).")
    out = {"num_classes": classes, "batch_norm": arch.get("batch_norm", True)}
    if not isinstance(out["batch_norm"], bool):
        raise ValueError("Not a usable SimpleCNN: batch_norm must be true or false.")
    for name, default in (("dropout1", 0.45), ("dropout2", 0.35)):
        p = arch.get(name, default)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or not 0 <= p < 1:
            raise ValueError(f"Not a usable SimpleCNN: {name} must be a number in [0, 1) (got {p!r:.40}).")
        out[name] = float(p)
    return out


def model_from_payload(payload: object) -> tuple[SimpleCNN, dict]:
    """Rebuild the model from a loaded payload, checking it is really a SimpleCNN."""
    if isinstance(payload, dict) and "state_dict" in payload and "meta_json" in payload:
        meta = _parse_meta(payload["meta_json"])
        state = payload["state_dict"]
    elif isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        # A bare state_dict, e.g. saved from the guide's own SimpleCNN class.
        state, meta = payload, {"format": "state_dict", "config": {}, "metrics": {}, "history": {}}
        meta["architecture"] = {"num_classes": int(state.get("fc2.weight", torch.empty(10, 0)).shape[0]),
                                "batch_norm": "batch1.weight" in state}
    else:
        raise ValueError("Not a SimpleCNN checkpoint: no model weights found in the file.")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("Not a SimpleCNN checkpoint: its weights are not a mapping of tensors.")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"Refused: the weights hold NaN or infinite values ({', '.join(map(str, bad[:3]))}); "
                         "such a network answers nothing. It may come from a run that diverged.")
    arch = _architecture(meta.get("architecture", {}))
    try:
        model = SimpleCNN(**arch)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, TypeError, AttributeError) as exc:
        first = " ".join(str(exc).split())[:240]
        raise ValueError(f"The checkpoint holds a different architecture than SimpleCNN: {first}") from exc
    model.eval()
    return model, meta
