"""MNIST (and optionally Fashion-MNIST) from the original IDX files, held in memory as tensors.

The files are checked against their published MD5 sums when read, decoded once per process,
and served as uint8 tensors; batches are converted to floats in [0, 1] (what torchvision's
`ToTensor` gives) on the fly, with no per-sample PIL work.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
DATA_DIR_ENV = "SIMPLECNN_DATA_DIR"  # overrides DEFAULT_DATA_DIR (a folder holding mnist/)
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# file stem -> (decompressed size in bytes, MD5 of the decompressed bytes)
MNIST_FILES: dict[str, tuple[int, str]] = {
    "train-images-idx3-ubyte": (47_040_016, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (60_008, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (7_840_016, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (10_008, "27ae3e4e09519cfbb04c329615203637"),
}
# Fashion-MNIST has the same sizes. Its authors publish MD5s of their .gz files; Debian's package
# recompresses them, so we also accept the MD5 of the decompressed contents (same data).
FASHION_GZ_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_RAW_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
DATASETS = ("mnist", "fashion-mnist")


class DataError(RuntimeError):
    """A data file is missing, truncated or corrupt; the message names it and says how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """A whole image-classification dataset in memory: uint8 images (N, 28, 28), int64 labels (N,)."""

    name: str  # "mnist" or "fashion-mnist"
    train_images: torch.Tensor  # (60000, 28, 28) uint8
    train_labels: torch.Tensor  # (60000,) int64
    test_images: torch.Tensor  # (10000, 28, 28) uint8
    test_labels: torch.Tensor  # (10000,) int64
    classes: tuple[str, ...]  # human names of the 10 classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR))


def _fix_hint(name: str) -> str:
    if name == "mnist":
        return ("Restore it from the repository (`git checkout -- data/`), or copy the four .gz files "
                "of the original MNIST into data/mnist/.")
    return ("Install Debian's copy (`apt-get install dataset-fashion-mnist`), or put the four .gz files "
            "of Fashion-MNIST into data/fashion-mnist/.")


def read_idx(path: Path, expected_size: int | None = None, expected_md5: str | None = None,
             gz_md5: str | None = None, dataset: str = "mnist") -> torch.Tensor:
    """Decode one gzip-compressed IDX file into a uint8 tensor, verifying it first.

    A match of `gz_md5` (the compressed file as published) stands in for `expected_md5`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Missing data file: {path}. {_fix_hint(dataset)}")
    raw_gz = path.read_bytes()
    if gz_md5 is not None and hashlib.md5(raw_gz).hexdigest() == gz_md5:
        expected_md5 = None  # the original .gz file itself: its contents are known good
    try:
        raw = gzip.decompress(raw_gz)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"Cannot decompress {path} ({exc}): the file is corrupt. {_fix_hint(dataset)}") from exc
    if expected_size is not None and len(raw) != expected_size:
        raise DataError(f"{path} has {len(raw):,} bytes after decompression, expected {expected_size:,}: "
                        f"the file is truncated or corrupt. {_fix_hint(dataset)}")
    if expected_md5 is not None and hashlib.md5(raw).hexdigest() != expected_md5:
        raise DataError(f"Checksum mismatch in {path} (MD5 of its contents is not the published one): "
                        f"the file is corrupt. {_fix_hint(dataset)}")
    return parse_idx(raw, source=str(path))


def parse_idx(raw: bytes, source: str = "<bytes>") -> torch.Tensor:
    """Parse IDX bytes (magic 0x0000 08 NDIM, big-endian dims, then uint8 data)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{source} is not an unsigned-byte IDX file.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    count = 1
    for d in dims:
        count *= d
    if len(raw) != header + count:
        raise DataError(f"{source}: IDX header promises {count} values, file has {len(raw) - header}.")
    data = torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8)
    return data.reshape(dims)


def _find_fashion_dir() -> tuple[Path, bool]:
    """(folder, verify_gz_md5): the project's folder, Debian's, or a torchvision download."""
    for folder in (data_dir() / "fashion-mnist", FASHION_SYSTEM_DIR):
        if all((folder / f"{stem}.gz").is_file() for stem in FASHION_GZ_MD5):
            return folder, True
    try:  # a network may exist elsewhere; torchvision verifies its own downloads
        from torchvision.datasets import FashionMNIST
        root = data_dir() / "torchvision"
        FashionMNIST(str(root), train=True, download=True)
        FashionMNIST(str(root), train=False, download=True)
        return root / "FashionMNIST" / "raw", True
    except Exception as exc:  # no network, no torchvision: say what to do
        raise DataError("Fashion-MNIST files not found in data/fashion-mnist/ or "
                        f"{FASHION_SYSTEM_DIR}, and downloading failed ({type(exc).__name__}). "
                        + _fix_hint("fashion-mnist")) from exc


def fashion_available() -> bool:
    """True when Fashion-MNIST can be loaded without a network."""
    return any(all((folder / f"{stem}.gz").is_file() for stem in FASHION_GZ_MD5)
               for folder in (data_dir() / "fashion-mnist", FASHION_SYSTEM_DIR))


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, root: str) -> Dataset:
    if name == "mnist":
        folder = Path(root) / "mnist"
        arrays = {stem: read_idx(folder / f"{stem}.gz", size, md5, dataset=name)
                  for stem, (size, md5) in MNIST_FILES.items()}
        classes = MNIST_CLASSES
    elif name == "fashion-mnist":
        folder, _ = _find_fashion_dir()
        arrays = {stem: read_idx(folder / f"{stem}.gz", MNIST_FILES[stem][0], FASHION_RAW_MD5[stem],
                                 gz_md5=gz, dataset=name)
                  for stem, gz in FASHION_GZ_MD5.items()}
        classes = FASHION_CLASSES
    else:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    for t in arrays.values():
        t.requires_grad_(False)
    return Dataset(
        name=name,
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"].long(),
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"].long(),
        classes=classes,
    )


def load_dataset(name: str = "mnist") -> Dataset:
    """The dataset, decoded and verified once per process (later calls return the same tensors)."""
    return _load_cached(name, str(data_dir()))


def clear_cache() -> None:
    """Forget loaded datasets (tests use this after pointing SIMPLECNN_DATA_DIR elsewhere)."""
    _load_cached.cache_clear()


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) or (28, 28) -> float32 (N, 1, 28, 28) in [0, 1], as ToTensor would give."""
    if images.dim() == 2:
        images = images.unsqueeze(0)
    return images.unsqueeze(1).float().div_(255.0)


def split_indices(n: int, validation_split: float = 0.2, seed: int = 0,
                  subset: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic (train, validation) index tensors over range(n) from a seed.

    `subset` limits how many images are used in all (train + validation), drawn from the same
    permutation so a small run is a random, class-balanced-in-expectation sample.
    """
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    if subset is not None:
        if subset < 2:
            raise ValueError(f"subset must be at least 2 images, got {subset}")
        order = order[: min(subset, n)]
    n_val = int(round(len(order) * validation_split))
    return order[n_val:].clone(), order[:n_val].clone()


def iterate_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                    order: torch.Tensor | None = None, start: int = 0,
                    device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (float images (B, 1, 28, 28), labels (B,)) in `order` from batch index `start`."""
    n = len(labels) if order is None else len(order)
    for b in range(start, (n + batch_size - 1) // batch_size):
        sel = slice(b * batch_size, min((b + 1) * batch_size, n))
        idx = order[sel] if order is not None else None
        x = images[idx] if idx is not None else images[sel]
        y = labels[idx] if idx is not None else labels[sel]
        yield to_float(x).to(device, non_blocking=True), y.to(device, non_blocking=True)
