"""How long an uploaded photo takes from bytes to the network's 28x28 input, and what memory it costs.

Times `simplecnn.digit_sources.decode_upload` (bounded decoding; a JPEG decoded at a reduced scale)
and `simplecnn.drawing.preprocess_steps(ink="auto")` on synthesized photos of an MNIST digit: a
12 Mpx phone JPEG, a clean 15 Mpx PNG scan (just under the 16 Mpx bound on a whole decode), a 1 Mpx JPEG, and the same
12 Mpx JPEG decoded at full scale for comparison (what a plain Image.open().convert() would do).
'decoded' is the size PIL really decodes (after `draft` for a JPEG), the pixels that take memory.

    python benchmarks/upload_decode.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simplecnn.data import load_dataset  # noqa: E402
from simplecnn.digit_sources import decode_upload  # noqa: E402
from simplecnn.drawing import preprocess_steps  # noqa: E402


def photo(digit: np.ndarray, width: int, height: int, fmt: str, noise: float = 0.03) -> bytes:
    rng = np.random.default_rng(0)
    side = min(width, height) // 2
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR), np.float32) / 255
    field = np.zeros((height, width), np.float32)
    top, left = (height - side) // 2, (width - side) // 2
    field[top:top + side, left:left + side] = ink
    paper = 0.9 - 0.2 * np.linspace(0, 1, width, dtype=np.float32)[None, :] \
        + rng.normal(0, noise, (height, width)).astype(np.float32)
    grey = (np.clip(paper * (1 - 0.85 * field), 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def full_scale(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture.convert("L"))


def measure(fn, data, repeat: int) -> tuple[float, object]:
    """(median ms, last result)."""
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(data)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def decoded_size(data: bytes, working_side: int = 512, draft: bool = True) -> str:
    """The width x height PIL decodes this file at (a JPEG's draft scale applied when `draft`)."""
    with Image.open(io.BytesIO(data)) as picture:
        if draft and picture.format == "JPEG":
            picture.draft("L", (working_side, working_side))
        return "x".join(map(str, picture.size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    digit = load_dataset().test_images[0].numpy()  # a 7
    cases = [("1 Mpx JPEG (1200x900)", photo(digit, 1200, 900, "JPEG")),
             ("12 Mpx JPEG (4000x3000)", photo(digit, 4000, 3000, "JPEG")),
             ("15 Mpx PNG scan (4600x3250)", photo(digit, 4600, 3250, "PNG", noise=0.0))]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"CPU: {cpu}; median of {args.repeat}")
    print(f"{'picture':28} {'bytes':>10} {'decoded':>10} {'decode ms':>10} {'prepare ms':>11} {'output':>8}")
    for name, data in cases:
        ms, grey = measure(decode_upload, data, args.repeat)
        prep_ms, steps = measure(lambda g: preprocess_steps(g, ink="auto"), grey, args.repeat)
        print(f"{name:28} {len(data):10,} {decoded_size(data):>10} {ms:10.1f} {prep_ms:11.1f} "
              f"{'x'.join(map(str, grey.shape[::-1])):>8}  {steps.source}")
    name, data = cases[1]
    ms, grey = measure(full_scale, data, args.repeat)
    print(f"{'12 Mpx JPEG, whole decode':28} {len(data):10,} {decoded_size(data, draft=False):>10} {ms:10.1f} "
          f"{'-':>11} {'-':>8}  (for comparison: Image.open().convert('L'), no draft)")

if __name__ == "__main__":
    main()
