"""What each computation of the Explain page costs, and where the bundled model's accuracy halves under attack.

Runs simplecnn.explain on the bundled model (models/simplecnn_mnist.pt) with the page's settings and
prints the median wall time of `--repeats` runs of each computation on test image #0, then the
accuracy of the first `--images` test images under FGSM and PGD over a grid of ε and the ε at which
it falls below 50 % (linear interpolation between grid points), and the smallest targeted changes
found for test image #0. Set OMP_WAIT_POLICY=PASSIVE first, as app.py does.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/explain_timings.py --images 200
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simplecnn.checkpoints import load_checkpoint  # noqa: E402
from simplecnn.data import load_dataset, to_float  # noqa: E402
from simplecnn.explain import attacks, attribution, invariance  # noqa: E402
from simplecnn.sysinfo import cpu_name  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first calls allocate
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pgd-steps", type=int, default=attacks.PGD_STEPS)
    parser.add_argument("--eps-step", type=float, default=0.01)
    args = parser.parse_args()
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {os.getloadavg()[0]:.1f}")
    model = load_checkpoint(ROOT / "models" / "simplecnn_mnist.pt")[0].eval()
    ds = load_dataset("mnist")
    x = to_float(ds.test_images[:1])

    timed = {
        "FGSM, one image": lambda: attacks.attack(model, x, 7, 0.1, "FGSM"),
        f"PGD {attacks.PGD_STEPS} steps, one image": lambda: attacks.attack(model, x, 7, 0.1, "PGD"),
        f"PGD {attacks.MAX_PGD_STEPS} steps, one image": lambda: attacks.attack(model, x, 7, 0.1, "PGD",
                                                                               steps=attacks.MAX_PGD_STEPS),
        "smallest targeted change (7 -> 3)": lambda: attacks.smallest_targeted_change(model, x, 3),
        "Saliency": lambda: attribution.saliency_map(model, x, 7),
        f"Integrated Gradients, {attribution.IG_STEPS} steps": lambda: attribution.integrated_gradients(model, x, 7),
        "Grad-CAM (conv2)": lambda: attribution.grad_cam(model, x, 7),
        "Occlusion, 4 px window": lambda: attribution.occlusion(model, x, 7),
        "attribution bench (all four)": lambda: attribution.attribution_bench(model, x, 7),
        "sanity check (5 x bench)": lambda: attribution.cascading_randomisation(model, x, 7),
        "invariance probe (5 curves, 113 images)": lambda: invariance.probe_all(model, x),
    }
    for name, fn in timed.items():
        print(f"{name:45s} {median_seconds(fn, args.repeats) * 1000:8.1f} ms")
    images, labels = to_float(ds.test_images[:100]), ds.test_labels[:100]
    page_eps = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    start = time.perf_counter()
    for method in attacks.METHODS:
        attacks.accuracy_under_attack(model, images, labels, page_eps, method, steps=10)
    print(f"{'robustness, page settings (100 images, one model)':45s} {time.perf_counter() - start:8.1f} s")

    images, labels = to_float(ds.test_images[:args.images]), ds.test_labels[:args.images]
    eps = np.round(np.arange(0, 0.3 + 1e-9, args.eps_step), 4)
    for method in attacks.METHODS:
        start = time.perf_counter()
        acc = attacks.accuracy_under_attack(model, images, labels, eps, method, steps=args.pgd_steps)
        half = attacks.epsilon_at_accuracy(eps, acc, 0.5)
        steps = f", {args.pgd_steps} steps" if method == "PGD" else ""
        print(f"{method}{steps} on {args.images} test images: accuracy < 50 % from ε = {half:.3f} "
              f"({time.perf_counter() - start:.1f} s); " +
              ", ".join(f"{e:g}: {a:.0%}" for e, a in zip(eps[::5], acc[::5])))
    for target in range(10):
        search = attacks.smallest_targeted_change(model, x, target)
        found = search.found
        if found is None:
            print(f"test image #0 (7) -> {target}: not reached within ε = {search.max_epsilon}")
        elif found.epsilon > 0:
            print(f"test image #0 (7) -> {target}: ε = {found.epsilon:.3f}, L∞ = {found.linf:.3f} "
                  f"({found.linf * 255:.0f}/255), L2 = {found.l2:.2f}, p({target}) = {found.probs_after[target]:.1%}, "
                  f"{search.seconds:.2f} s")


if __name__ == "__main__":
    main()
