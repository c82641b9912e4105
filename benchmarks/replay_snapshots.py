"""What replay snapshots cost: in the training process (one snapshot written, the recorder's share of a
first epoch) and on the Replay page (one slider position: load a snapshot, its confusion matrix on 1,000
test images, conv1's feature maps and probabilities of one image).

    python benchmarks/replay_snapshots.py [--subset 10000] [--repeats 5]

Trains one first epoch without and one with the snapshot recorder (one epoch each, so that difference is
noisy), then times the rest `--repeats` times and reports medians. Run on a quiet machine.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from simplecnn.data import load_dataset  # noqa: E402
from simplecnn.runstore import RunStore  # noqa: E402
from simplecnn.snapshots import (  # noqa: E402
    list_snapshots,
    load_snapshot,
    recorder_for,
    replay_indices,
    snapshot_reading,
    snapshot_view,
)
from simplecnn.training import TrainConfig, Trainer  # noqa: E402


def first_epoch(config: TrainConfig, dataset, run=None) -> tuple[float, list[int]]:
    trainer = Trainer(config, dataset=dataset)
    recorders = [recorder_for(trainer, run)] if run is not None else []
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    for r in recorders:
        r.close(trainer)
    return seconds, (recorders[0].written if recorders else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ds = load_dataset("mnist")
    config = TrainConfig(epochs=1, subset=args.subset, validation_split=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunStore(tmp).create("ab" * 16, {"config": config.to_dict()})
        plain, _ = first_epoch(config, ds)
        recorded, steps = first_epoch(config, ds, run)
        print(f"first epoch, {args.subset:,} images, torch threads {torch.get_num_threads()}: "
              f"{plain:.2f} s without snapshots, {recorded:.2f} s with {len(steps)} snapshots {steps} "
              f"({100 * (recorded - plain) / plain:+.1f}%, noisy: one epoch each)")

        # One snapshot written, as the recorder writes it (checkpoint bytes, fsync, rename).
        from simplecnn.checkpoints import save_checkpoint
        trainer = Trainer(config, dataset=ds)
        writes = []
        for i in range(args.repeats):
            start = time.perf_counter()
            save_checkpoint(run.snapshot_path(9_000_000 + i), trainer.model, config=config.to_dict())
            writes.append(time.perf_counter() - start)
        size = run.snapshot_path(9_000_000).stat().st_size
        print(f"one snapshot written: median {1000 * statistics.median(writes):.0f} ms, {size / 1e6:.2f} MB")

        # One slider position on the page, uncached.
        snap = list_snapshots(run)[0]
        idx = replay_indices(ds.test_labels)
        images, labels = ds.test_images[idx], ds.test_labels[idx]
        x = ds.test_images[:1].float().div(255.0).unsqueeze(1)
        loads, views, readings = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model = load_snapshot(snap)
            t1 = time.perf_counter()
            snapshot_view(model, images, labels, ds.num_classes)
            t2 = time.perf_counter()
            snapshot_reading(model, x)
            t3 = time.perf_counter()
            loads.append(t1 - t0)
            views.append(t2 - t1)
            readings.append(t3 - t2)
        ms = lambda v: f"{1000 * statistics.median(v):.0f} ms"  # noqa: E731
        print(f"one slider position, uncached: load {ms(loads)}, filters + confusion on {len(idx):,} images "
              f"{ms(views)}, feature maps + probabilities of one image {ms(readings)}")


if __name__ == "__main__":
    main()
