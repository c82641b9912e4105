"""Files that are never half-written, and JSON that is read with a size limit.

A write goes to a temporary file in the same folder, is fsynced, then renamed over the target, so a
crash at any moment leaves the old file or the new one. Used for checkpoints and the run store.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

MAX_JSON_BYTES = 16 * 1024 * 1024  # history.json of a 100-epoch run is well under 1 MB


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash at any moment leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, json.dumps(obj, allow_nan=False, separators=(",", ":")).encode())


def read_json(path: Path) -> dict:
    """A JSON object from `path`; ValueError with a plain reason for a missing, huge or broken file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ValueError(f"{path.name} is missing") from None
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{path.name} is too large ({size / 1e6:.0f} MB)")
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path.name} is damaged ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return data
