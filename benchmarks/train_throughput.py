"""Training throughput of the project's path vs a seed-style pipeline, time to 99 %, drawing latency.

Run on a quiet machine: `python benchmarks/train_throughput.py` (add --quick for a shorter run).
The seed-style pipeline is what the guide's code does: torchvision's MNIST dataset with
`ToTensor` (a PIL image per sample), `random_split` and a `DataLoader`, the guide's model with
stock `nn.Dropout`, NCHW tensors and a plain Adam. Both sides use the same batch size, optimizer
and learning rate, and are timed in this one process after a warm-up.
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simplecnn.data import DEFAULT_DATA_DIR, MNIST_FILES, load_dataset  # noqa: E402
from simplecnn.evaluation import evaluate_split  # noqa: E402
from simplecnn.model import SimpleCNN  # noqa: E402
from simplecnn.training import BatchEvent, EpochEvent, StopTraining, TrainConfig, Trainer  # noqa: E402


def guide_model() -> nn.Module:
    """SimpleCNN with the stock nn.Dropout, as the guide builds it."""
    model = SimpleCNN()
    model.dropout1, model.dropout2 = nn.Dropout(0.45), nn.Dropout(0.35)
    return model


def seed_style_epoch(batch_size: int, lr: float, warmup: int, seed: int = 0) -> tuple[float, float]:
    """(images/s after warm-up, test accuracy) for one epoch of the guide-style pipeline."""
    from torchvision import datasets, transforms

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for stem in MNIST_FILES:
            (raw / stem).write_bytes(gzip.decompress((DEFAULT_DATA_DIR / "mnist" / f"{stem}.gz").read_bytes()))
        torch.manual_seed(seed)
        full = datasets.MNIST(tmp, train=True, download=False, transform=transforms.ToTensor())
        test = datasets.MNIST(tmp, train=False, download=False, transform=transforms.ToTensor())
        n_val = int(0.2 * len(full))
        train_set, _ = torch.utils.data.random_split(full, [len(full) - n_val, n_val])
        loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True)
        model = guide_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        seen, start = 0, None
        for i, (x, y) in enumerate(loader):
            if i == warmup:
                start, seen = time.perf_counter(), 0
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            seen += len(y)
        ips = seen / (time.perf_counter() - start)
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in torch.utils.data.DataLoader(test, batch_size=1000):
                correct += int((model(x).argmax(1) == y).sum())
        return ips, 100.0 * correct / len(test)


def project_epoch(batch_size: int, lr: float, warmup: int, seed: int = 0) -> tuple[float, float, str]:
    """(images/s after warm-up, test accuracy, compute path) for one epoch of the project's Trainer."""
    marks: dict[str, float] = {}

    def clock(event):
        if isinstance(event, BatchEvent):
            if event.batch == warmup:
                marks["t0"], marks["n0"] = time.perf_counter(), trainer.history.images_seen
            if event.batch == event.batches_per_epoch:  # last batch, before validation runs
                marks["t1"], marks["n1"] = time.perf_counter(), trainer.history.images_seen

    trainer = Trainer(TrainConfig(epochs=1, batch_size=batch_size, learning_rate=lr, seed=seed, log_every=1),
                      dataset=load_dataset(), callbacks=[clock])
    trainer.fit()
    ips = (marks["n1"] - marks["n0"]) / (marks["t1"] - marks["t0"])
    acc = evaluate_split(trainer.model, "test", load_dataset()).accuracy
    return ips, acc, trainer.path.name


def time_to_accuracy(config: TrainConfig, target: float = 99.0) -> tuple[float | None, int]:
    """Wall seconds (data load + training + per-epoch test checks) until test accuracy >= target."""
    start = time.perf_counter()
    dataset = load_dataset()
    reached = {}

    def check(event):
        if isinstance(event, EpochEvent):
            acc = evaluate_split(trainer.model, "test", dataset).accuracy
            trainer.model.train()
            if acc >= target:
                reached["seconds"], reached["epoch"] = time.perf_counter() - start, event.epoch
                raise StopTraining()
    trainer = Trainer(config, dataset=dataset, callbacks=[check])
    trainer.fit()
    return reached.get("seconds"), reached.get("epoch", 0)


def fast_preset_process() -> tuple[float, float]:
    """Whole-process seconds and test accuracy of `python -m simplecnn train --preset fast`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fast.pt"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "simplecnn", "train", "--preset", "fast", "--quiet",
                        "--output", str(out)], cwd=ROOT, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        from simplecnn.checkpoints import load_checkpoint
        _, meta = load_checkpoint(out)
        return seconds, meta["metrics"]["test_accuracy"]


def drawing_latency(runs: int = 200) -> float | None:
    """Median ms to preprocess a 280x280 RGBA canvas and predict with the bundled model."""
    try:
        from simplecnn.checkpoints import load_checkpoint
        from simplecnn.drawing import predict_drawing, preprocess_drawing
        model, _ = load_checkpoint(ROOT / "models" / "simplecnn_mnist.pt")
    except (ImportError, ValueError):
        return None
    import numpy as np
    digit = load_dataset().test_images[0].numpy()
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[..., :3] = np.kron(digit, np.ones((10, 10), np.uint8))[..., None]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        predict_drawing(model, preprocess_drawing(canvas))
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64, help="batch size for both sides (default 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 0.001)")
    parser.add_argument("--warmup", type=int, default=30, help="batches excluded from timing (default 30)")
    parser.add_argument("--quick", action="store_true", help="skip time-to-99%% runs")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    seed_ips, seed_acc = seed_style_epoch(args.batch_size, args.lr, args.warmup)
    ours_ips, ours_acc, path = project_epoch(args.batch_size, args.lr, args.warmup)
    print(f"seed-style pipeline : {seed_ips:8,.0f} images/s, test accuracy after 1 epoch {seed_acc:.2f}%")
    print(f"project ({path}) : {ours_ips:8,.0f} images/s, test accuracy after 1 epoch {ours_acc:.2f}%")
    print(f"speed-up            : {ours_ips / seed_ips:.2f}x   accuracy difference {ours_acc - seed_acc:+.2f} pp")
    latency = drawing_latency()
    if latency is not None:
        print(f"drawing preprocess + predict: {latency:.2f} ms (median of 200)")
    if not args.quick:
        secs, epoch = time_to_accuracy(TrainConfig())
        print(f"default settings: 99.0% test accuracy after {epoch} epochs, {secs:.1f} s" if secs
              else "default settings: did not reach 99.0% in 10 epochs")
        secs, acc = fast_preset_process()
        print(f"fast preset (`python -m simplecnn train --preset fast`): whole process {secs:.1f} s, "
              f"test accuracy {acc:.2f}%")


if __name__ == "__main__":
    main()
