"""The run report opens offline: written to a file, opened in chromium with every network request
refused, its three plotly charts draw (SVG inside .js-plotly-plot), its thumbnails decode, and the
console stays clean, even with a hostile run label."""
from __future__ import annotations

import time

import pytest

from simplecnn.checkpoints import load_checkpoint
from simplecnn.evaluation import evaluate
from simplecnn.report import build_report
from simplecnn.training import History, TrainConfig

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def report_file(tmp_path_factory, mnist, bundled_path):
    model = load_checkpoint(bundled_path)[0].eval()
    images, labels = mnist.test_images[:2000], mnist.test_labels[:2000]
    result = evaluate(model, images, labels, num_classes=10)
    history = History(steps=list(range(10, 310, 10)), batch_losses=[1.0 / (1 + i) for i in range(30)],
                      smoothed_losses=[1.0 / (1 + i) for i in range(30)],
                      epochs=[dict(epoch=e, train_loss=0.3 / e, train_accuracy=90.0 + e, val_loss=0.25 / e,
                                   val_accuracy=92.0 + e, seconds=4.0, learning_rate=1e-3) for e in (1, 2, 3)],
                      status="finished", seconds=12.0, images_seen=19200, compute_path="cpu float32",
                      batches_per_epoch=100)
    doc = build_report(run_id="run-7", label=HOSTILE, config=TrainConfig(epochs=3), history=history, result=result,
                       images=images, classes=[str(i) for i in range(10)], dataset="mnist", status="finished",
                       message=HOSTILE)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(doc, encoding="utf-8")
    return path


def test_report_renders_its_charts_with_the_network_blocked(browser, report_file):
    context = browser.new_context(offline=True)
    requests, errors, dialogs = [], [], []
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://")
                  else route.abort())
    try:
        page = context.new_page()
        page.on("request", lambda r: r.url.startswith(("file://", "data:")) or requests.append(r.url))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(report_file.as_uri())
        deadline = time.monotonic() + 30
        drawn = 0
        while time.monotonic() < deadline:
            drawn = page.locator(".js-plotly-plot svg.main-svg").evaluate_all(
                "els => new Set(els.map(e => e.closest('.js-plotly-plot'))).size")
            if drawn == 3:
                break
            time.sleep(0.25)
        assert drawn == 3, "the three charts (curves, per class, confusion) did not all draw"
        # Real marks, not empty axes: the bars and the heatmap are drawn.
        assert page.locator(".js-plotly-plot .barlayer .point").count() == 10
        assert page.locator(".js-plotly-plot .heatmaplayer image, .js-plotly-plot .hm image").count() >= 1
        assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 4
        images = page.locator("#mistakes img")
        assert images.count() >= 1
        widths = images.evaluate_all("els => els.map(e => e.complete ? e.naturalWidth : 0)")
        assert widths == [84] * images.count()  # every inline PNG decoded
        assert HOSTILE in page.locator("#label").inner_text()  # shown as text, not run
        assert dialogs == [] and errors == [] and requests == []
    finally:
        context.close()
