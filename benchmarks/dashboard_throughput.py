"""Training speed inside the dashboard vs the command line, same settings (goal: dashboard >= 0.9x CLI).

CLI: `python -m simplecnn train --subset S --epochs E --batch-size B`, its closing "N images/s".
Dashboard: the whole app (`streamlit run app.py`) in headless chromium; the Train page's Epochs box,
"Training images" and "Batch size" sliders are set with the keyboard, Start is pressed, and the page
stays open, its live curves refreshing every second, until the run finishes; then the "images/s"
column of the run history table is read. Both figures are the same quantity: images trained divided
by the training loop's seconds (History.images_seen / History.seconds; validation not counted).
The other settings are both sides' defaults (Adam, lr 0.001, dropout 0.45/0.35, batch norm,
validation split 0.2, seed 0). The two are interleaved `--rounds` times (CLI first), so slow drift
in the machine's load hits both alike.

    python benchmarks/dashboard_throughput.py                      # S=20000, E=1, B=64, 2 rounds
    python benchmarks/dashboard_throughput.py --subset 10000 --rounds 1
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from draw_latency import ROOT, AppServer, add_streamlit_option_argument, launch_browser, prime_navigation

SUBSETS = [500, 1000, 2000, 5000, 10000, 20000, 30000, None]  # pages/train.py's sliders and defaults
BATCH_SIZES = [8, 16, 32, 64, 128, 256, 512, 1024]
STATUS = re.compile(r"(run-\d+) · (queued|running|stopping|stopped|finished|cancelled|failed|diverged)")


def cli_images_per_second(subset: int, epochs: int, batch_size: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-m", "simplecnn", "train", "--subset", str(subset), "--epochs", str(epochs),
             "--batch-size", str(batch_size), "--quiet", "--output", str(Path(tmp) / "run.pt")],
            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    match = re.search(r"([\d,]+) images/s", out)
    if not match:
        raise RuntimeError(f"no images/s in the CLI's output:\n{out}")
    return float(match.group(1).replace(",", ""))


def wait_idle(page, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    calm = 0
    while time.monotonic() < deadline and calm < 2:
        calm = calm + 1 if page.locator('[data-testid="stApp"]').get_attribute(
            "data-test-script-state") == "notRunning" else 0
        time.sleep(0.3)


def set_select_slider(page, label: str, options: list, target) -> None:
    """Move a select_slider to `target` with the arrow keys, from wherever it is now."""
    slider = page.get_by_role("slider", name=re.compile(label)).first
    shown = [str(o) for o in options]
    now = re.sub(r"[^\d]", "", slider.get_attribute("aria-valuetext") or "")  # "20,000" -> "20000"
    current = shown.index(now) if now in shown else len(options) - 1  # "all 60,000" is the last (None)
    moves = options.index(target) - current
    slider.focus()
    for _ in range(abs(moves)):
        slider.press("ArrowRight" if moves > 0 else "ArrowLeft")
    wait_idle(page)


def history_row(page, run_id: str) -> dict[str, str]:
    """The run history table's row for run_id, read from the grid's accessible table."""
    grid = page.locator('[data-testid="stDataFrame"]').first
    headers = grid.locator("th").all_inner_texts()
    cells = grid.locator("td").all_inner_texts()
    for start in range(0, len(cells), len(headers) or 1):
        row = dict(zip(headers, cells[start:start + len(headers)]))
        if row.get("run") == run_id:
            return row
    return {}


def dashboard_images_per_second(page, subset: int, epochs: int, batch_size: int) -> tuple[float, dict]:
    """Start one run from the Train page (already open) and return the history table's images/s."""
    box = page.get_by_label("Epochs")
    box.fill(str(epochs))
    box.press("Enter")
    wait_idle(page)
    set_select_slider(page, "Training images", SUBSETS, subset)
    set_select_slider(page, "Batch size", BATCH_SIZES, batch_size)
    page.get_by_role("button", name=re.compile(r"(^|\s)Start$")).click()
    deadline = time.monotonic() + 30
    run_id = None
    while run_id is None and time.monotonic() < deadline:
        text = page.locator('[data-testid="stMain"]').inner_text()
        match = [m for m in STATUS.finditer(text) if m.group(2) in ("queued", "running")]
        run_id = match[0].group(1) if match else None
        time.sleep(0.3)
    if run_id is None:
        raise RuntimeError("the run did not start")
    # The page stays open: its live fragment redraws progress and curves every second until the end.
    deadline = time.monotonic() + 3600
    row: dict[str, str] = {}
    while time.monotonic() < deadline:
        row = history_row(page, run_id)
        if row.get("status") in ("finished", "failed", "diverged", "cancelled", "stopped") and row.get("images/s"):
            break
        time.sleep(1.0)
    if row.get("status") != "finished":
        raise RuntimeError(f"{run_id} ended as {row}")
    if f"n={subset}," not in row.get("settings", "") + "," or f"bs={batch_size}," not in row.get("settings", ""):
        raise RuntimeError(f"{run_id} did not get the settings asked for: {row}")
    return float(row["images/s"].replace(",", "")), row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", type=int, default=20000, choices=[s for s in SUBSETS if s])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64, choices=BATCH_SIZES)
    parser.add_argument("--rounds", type=int, default=2, help="CLI, dashboard pairs, interleaved")
    add_streamlit_option_argument(parser)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    settings = f"--subset {args.subset} --epochs {args.epochs} --batch-size {args.batch_size}"
    cli, dash = [], []
    with AppServer({"SIMPLECNN_MAX_TRAININGS": "1"}, args.streamlit_option) as server, sync_playwright() as p:
        browser = launch_browser(p)
        prime_navigation(browser, server.url)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(120_000)
        page = context.new_page()
        page.goto(f"{server.url}/train")
        page.get_by_text("Run history").first.wait_for()
        wait_idle(page)
        for round_ in range(1, args.rounds + 1):
            cli.append(cli_images_per_second(args.subset, args.epochs, args.batch_size))
            print(f"round {round_}: CLI       {settings}: {cli[-1]:8.0f} images/s", flush=True)
            ips, row = dashboard_images_per_second(page, args.subset, args.epochs, args.batch_size)
            dash.append(ips)
            print(f"round {round_}: dashboard {row['run']} ({row['settings']}, {row['epochs']} epochs, "
                  f"{row['train time s']} s): {ips:8.0f} images/s   ratio {ips / cli[-1]:.2f}", flush=True)
        browser.close()
    ratios = [d / c for d, c in zip(dash, cli)]
    print(f"\nstreamlit options: {args.streamlit_option or 'as configured'}")
    print(f"CLI mean {statistics.fmean(cli):.0f} images/s, dashboard mean {statistics.fmean(dash):.0f} images/s; "
          f"dashboard/CLI {statistics.fmean(dash) / statistics.fmean(cli):.2f} "
          f"(per round: {', '.join(f'{r:.2f}' for r in ratios)}; goal >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
