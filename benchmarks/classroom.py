"""A classroom on one server: memory after many learners' runs, disk per run, time back after a restart.

    python benchmarks/classroom.py                          # 30 learners x 3 runs, 1 and 4 epochs
    python benchmarks/classroom.py --learners 10 --runs 2   # shorter

Phase 1 (the server's state). One process holds a `Classroom` exactly as the web server does (the
run store, the queue with SIMPLECNN_MAX_TRAININGS=1, one job object per run) and trains
learners x runs small runs through it, each in its own `python -m simplecnn.worker` process, twice:
with --short-epochs and with --long-epochs. Its VmRSS after each round answers "does the server's
memory grow with epochs?" (it must not: per-epoch weights live on disk), and the run folders give
disk per run. It also times `JobSnapshot` of a run with a 60,000-point history (the status refresh
every second of every open tab).

Phase 2 (a restart). `streamlit run app.py` is started on the same runs folder (a restart), and the
time until the server answers, then until a learner's Train page lists all their runs in headless
chromium, is measured; then every learner's Train page is opened once, one after the other, and the
server's VmRSS is read (30 sessions that each listed their 3 runs).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simplecnn.sysinfo import rss_bytes  # noqa: E402


def train_round(store_root: Path, learners: int, runs: int, epochs: int, subset: int, first: int) -> dict:
    from simplecnn.classroom import Classroom, Limits
    from simplecnn.jobs import TrainingScheduler
    from simplecnn.runstore import RunStore, learner_key
    from simplecnn.training import TrainConfig

    room = Classroom(RunStore(store_root), TrainingScheduler(1), Limits(max_runs_per_learner=2 * runs + 1),
                     watch_every_s=0)
    started = time.perf_counter()
    for r in range(runs):
        jobs = []
        for i in range(learners):  # every learner presses Start at once; the queue serves them in turn
            token = f"{first + i:032x}"
            jobs.append(room.start_run(learner_key(token), TrainConfig(epochs=epochs, subset=subset, log_every=5),
                                       "mnist", 10))
        for job in jobs:
            job.join()
            assert job.snapshot().status == "finished", job.snapshot().message
    seconds = time.perf_counter() - started
    sizes = [d.size_bytes() for key in room.store.learners() for d in room.store.run_dirs(key)
             if d.read_meta()["config"]["epochs"] == epochs]
    return {"seconds": seconds, "rss": rss_bytes(), "disk_median": statistics.median(sizes), "disk_max": max(sizes),
            "runs": len(sizes)}


def snapshot_cost() -> tuple[float, float]:
    """(ms for the old JSON deep copy, ms for the copy the status refresh makes now) of a 60,000-point history."""
    from simplecnn.training import History

    n = 60_000
    history = History(steps=list(range(n)), batch_losses=[0.1] * n, smoothed_losses=[0.1] * n,
                      epochs=[{"epoch": e, "val_accuracy": 99.0} for e in range(100)])
    t = time.perf_counter()
    for _ in range(5):
        History.from_dict(__import__("json").loads(history.to_json()))
    old = (time.perf_counter() - t) / 5 * 1000
    t = time.perf_counter()
    for _ in range(5):
        history.copy()
    return old, (time.perf_counter() - t) / 5 * 1000


def restart_phase(store_root: Path, learners: int, runs: int, first: int) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

    port = free_port()
    env = {**os.environ, "SIMPLECNN_RUNS_DIR": str(store_root)}
    log = open(store_root / "server.log", "wb")
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        health = time.perf_counter() - t0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page_times = []
            listed = None
            for i in range(learners):
                context = browser.new_context()
                page = context.new_page()
                t = time.perf_counter()
                page.goto(f"{url}/train?learner={first + i:032x}")
                cells = page.locator('[data-testid="stDataFrame"] [role="gridcell"]')
                page.wait_for_function(
                    """n => document.querySelectorAll('[data-testid="stDataFrame"] [role="row"]').length >= n + 1""",
                    arg=runs, timeout=120_000)
                page_times.append(time.perf_counter() - t)
                if listed is None:
                    listed = time.perf_counter() - t0
                    assert cells.count() > 0
                context.close()
            browser.close()
        return {"health": health, "listed": listed, "page_p50": statistics.median(page_times),
                "page_max": max(page_times), "rss": rss_bytes(server.pid)}
    finally:
        server.terminate()
        server.wait(15)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=30, help="learners in the class (default 30)")
    parser.add_argument("--runs", type=int, default=3, help="runs per learner and round (default 3)")
    parser.add_argument("--subset", type=int, default=500, help="images per run (default 500)")
    parser.add_argument("--short-epochs", type=int, default=1, help="epochs of the first round (default 1)")
    parser.add_argument("--long-epochs", type=int, default=4, help="epochs of the second round (default 4)")
    parser.add_argument("--no-browser", action="store_true", help="skip the restart phase (needs chromium)")
    args = parser.parse_args()
    store_root = Path(tempfile.mkdtemp(prefix="simplecnn-classroom-bench-"))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}, {os.cpu_count()} cores; runs in {store_root}")
    print(f"process RSS before any run: {rss_bytes() / 1e6:.0f} MB")
    rounds = {}
    for name, epochs in (("short", args.short_epochs), ("long", args.long_epochs)):
        result = train_round(store_root, args.learners, args.runs, epochs, args.subset, 0)
        rounds[name] = result
        print(f"{args.learners} learners x {args.runs} runs of {epochs} epoch(s), {args.subset} images: "
              f"{result['seconds']:.0f} s; server-side process RSS {result['rss'] / 1e6:.0f} MB; disk per run "
              f"median {result['disk_median'] / 1e6:.1f} MB, max {result['disk_max'] / 1e6:.1f} MB")
    growth = (rounds["long"]["rss"] - rounds["short"]["rss"]) / 1e6
    print(f"RSS growth from the {args.short_epochs}-epoch round to the {args.long_epochs}-epoch round "
          f"(as many runs again): {growth:+.0f} MB")
    old, new = snapshot_cost()
    print(f"status refresh copy of a 60,000-point history: JSON round trip {old:.0f} ms -> list copy {new:.1f} ms")
    if not args.no_browser:
        r = restart_phase(store_root, args.learners, 2 * args.runs, 0)
        print(f"restart: health after {r['health']:.1f} s; first learner's {2 * args.runs} runs listed "
              f"{r['listed']:.1f} s after the start; Train page with runs p50 {r['page_p50']:.1f} s, max "
              f"{r['page_max']:.1f} s; server VmRSS after {args.learners} learners' pages: {r['rss'] / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
