"""What recording layer health costs: training images/s with and without it, in the same process.

Trains the same run (same seed, same batches) alternately without and with the health recorder of
the training process (`simplecnn.health.HealthRecorder`, health.json written to a temporary run
folder as the dashboard's runs do), several rounds, and prints the ratio of the median throughputs.
Run it on a quiet machine; on a shared one hold the bench lock:

    flock /tmp/bench.lock python benchmarks/health_overhead.py --every 25

Goal: the recorder costs at most 5 % of training throughput at the default interval.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from simplecnn.data import load_dataset  # noqa: E402
from simplecnn.health import DEFAULT_EVERY, HealthRecorder  # noqa: E402
from simplecnn.training import TrainConfig, Trainer  # noqa: E402
from simplecnn.sysinfo import cpu_name  # noqa: E402



def one_run(config: TrainConfig, dataset, every: int | None) -> tuple[float, float, int]:
    """(images per wall-clock second, images per CPU second of this process, samples recorded) for one
    training run. On a shared machine the CPU-time figure is the steadier one: other processes
    lengthen the wall clock, not this process's CPU time."""
    trainer = Trainer(config, dataset=dataset)
    recorder = None
    with tempfile.TemporaryDirectory() as tmp:
        if every:
            recorder = HealthRecorder(trainer, Path(tmp), every=every)
            trainer.callbacks.append(lambda event: recorder.on_event(trainer, event))
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer.fit()
        if recorder is not None:
            recorder.close(trainer)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    samples = recorder.health.recorded if recorder is not None else 0
    images = trainer.history.images_seen
    return images / seconds, images / cpu_seconds, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--every", type=int, default=DEFAULT_EVERY, help="steps between health samples")
    parser.add_argument("--rounds", type=int, default=5, help="pairs of runs (without, with)")
    parser.add_argument("--subset", type=int, default=6400, help="training images per run")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: CPU time then equals the work done; 0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_dataset("mnist")
    config = TrainConfig(epochs=1, subset=args.subset, validation_split=0.0, batch_size=args.batch_size,
                         seed=0, device="cpu")
    one_run(config, dataset, None)  # warm-up: first-call costs (allocator, kernels) out of the timings
    runs = {"without": [], "with": [], "every step": []}
    samples = 0
    for _ in range(args.rounds):  # alternate, so a slow spell of the machine hits all sides
        runs["without"].append(one_run(config, dataset, None))
        result = one_run(config, dataset, args.every)
        runs["with"].append(result)
        samples = result[2]
        runs["every step"].append(one_run(config, dataset, 1))
    steps = -(-args.subset // args.batch_size)
    print(f"CPU: {cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"Run: Adam, batch {args.batch_size}, {args.subset} images = {steps} steps, health every {args.every} "
          f"steps ({samples} samples per run), {args.rounds} rounds")
    for column, clock in ((0, "wall-clock"), (1, "CPU-time")):
        medians = {}
        for side, results in runs.items():
            if side == "every step":
                continue
            values = [r[column] for r in results]
            medians[side] = statistics.median(values)
            print(f"  {clock} images/s {side:>7} health: " + ", ".join(f"{v:,.0f}" for v in values)
                  + f" (median {medians[side]:,.0f})")
        ratio = medians["with"] / medians["without"]
        print(f"{clock}: throughput with health / without = {ratio:.3f} -> cost {100 * (1 - ratio):.1f} % "
              "(goal <= 5 %)")
    # The cost of one sample, from runs that sample every step: CPU seconds per step with and without.
    plain_step = args.batch_size / statistics.median(r[1] for r in runs["without"])
    sampled_step = args.batch_size / statistics.median(r[1] for r in runs["every step"])
    extra = sampled_step - plain_step
    print(f"CPU time per step: {1e3 * plain_step:.1f} ms plain, {1e3 * sampled_step:.1f} ms when every step is "
          f"sampled: a sample costs {1e3 * extra:.1f} ms = {extra / plain_step:.2f} steps; sampling every "
          f"{args.every} steps -> {100 * extra / (args.every * plain_step):.1f} % (every 10: "
          f"{100 * extra / (10 * plain_step):.1f} %, every 50: {100 * extra / (50 * plain_step):.1f} %)")


if __name__ == "__main__":
    main()
