"""How long "Teach the model your handwriting" takes: the fine-tune alone, and through the training queue.

Run on a quiet machine from the repository root: `python benchmarks/handwriting_finetune.py`.
The learner's drawings are stood in for by MNIST test digits the bundled model reads wrong (outside the
first 2,000 that before/after uses), as in tests/test_handwriting.py. It prints, with the CPU's name:

* the fine-tune in this process (`Trainer.fit` on the mixed set, the page's settings), seconds and images/s;
* the same fine-tune as the page starts it (`start_fine_tune`: run folder, queue, `python -m
  simplecnn.worker` with its nice level, saves), from the click to a finished run;
* the before/after evaluation the page shows (drawings + 2,000 test images, two models);
* what it changed: drawings read right and test-subset accuracy, before -> after.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simplecnn import handwriting as hw  # noqa: E402
from simplecnn.checkpoints import load_checkpoint  # noqa: E402
from simplecnn.classroom import Classroom  # noqa: E402
from simplecnn.data import load_dataset, to_float  # noqa: E402
from simplecnn.jobs import TrainingScheduler  # noqa: E402
from simplecnn.runstore import RunStore, learner_key  # noqa: E402
from simplecnn.training import Trainer  # noqa: E402
from simplecnn.sysinfo import cpu_name  # noqa: E402



def wrong_digits(model, ds, n: int) -> list[hw.LabelledDrawing]:
    outside = ds.test_images[hw.TEST_SUBSET:]
    with torch.no_grad():
        said = torch.cat([model(to_float(outside[i:i + 1000])).argmax(1) for i in range(0, len(outside), 1000)])
    labels = ds.test_labels[hw.TEST_SUBSET:]
    wrong = (said != labels).nonzero().flatten()[:n].tolist()
    return [hw.LabelledDrawing(f"d-{i}", to_float(outside[i])[0, 0], int(labels[i]), int(said[i]), "bundled", 0.0)
            for i in wrong]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drawings", type=int, default=20, help="how many wrong digits stand in for drawings")
    args = parser.parse_args()
    ds = load_dataset()
    bundled = load_checkpoint(ROOT / "models" / "simplecnn_mnist.pt")[0]
    drawings = wrong_digits(bundled, ds, args.drawings)
    examples = hw.fine_tune_examples(drawings)
    config = hw.fine_tune_config(bundled, examples)
    print(f"CPU: {cpu_name()}, {torch.get_num_threads()} torch threads")
    print(f"fine-tune: {len(drawings)} drawings x {examples['repeat']} + {len(examples['mnist_indices'])} MNIST = "
          f"{hw.mixed_size(examples)} images, {config.epochs} epochs, lr {config.learning_rate:g}, "
          f"batch {config.batch_size}")

    trainer = Trainer(config, dataset=hw.mixed_dataset(ds, examples), model=copy.deepcopy(bundled))
    start = time.perf_counter()
    trainer.fit()
    fit_s = time.perf_counter() - start
    print(f"in process: Trainer.fit {fit_s:.1f} s ({trainer.history.images_seen / fit_s:,.0f} images/s)")

    start = time.perf_counter()
    result = hw.compare(bundled, trainer.model, examples, ds)
    print(f"before/after evaluation: {time.perf_counter() - start:.2f} s")
    print(f"effect: drawings {result.drawings_before.correct}/{result.drawings_before.total} -> "
          f"{result.drawings_after.correct}/{result.drawings_after.total}, test subset "
          f"{result.test_before.accuracy:.2f}% -> {result.test_after.accuracy:.2f}%")

    with tempfile.TemporaryDirectory() as tmp:
        room = Classroom(RunStore(Path(tmp) / "runs"), TrainingScheduler(1), watch_every_s=0)
        try:
            start = time.perf_counter()
            job = hw.start_fine_tune(room, learner_key("ab" * 16), drawings, bundled, "the bundled model", "bundled")
            job.join(900)
            total_s = time.perf_counter() - start
            snap = job.snapshot()
            print(f"through the queue (worker process, nice level, saves): {snap.status} in {total_s:.1f} s, "
                  f"of which training {snap.history.seconds:.1f} s")
        finally:
            room.close()


if __name__ == "__main__":
    main()
