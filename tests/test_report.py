"""simplecnn.report: the run report's structure, its escaping, its numbers against a plain-torch
evaluation made here, and its size bound."""
from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from simplecnn import report
from simplecnn.checkpoints import load_checkpoint
from simplecnn.data import to_float
from simplecnn.evaluation import evaluate
from simplecnn.training import History, TrainConfig

N_IMAGES = 2000  # test images used here (the pages use all 10,000); enough for ~20 mistakes
HOSTILE = "<script>alert(1)</script>"


class Tables(HTMLParser):
    """Every <table id=...> as a list of rows of cell texts; every <img> as its attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict] = []
        self.headings: list[str] = []
        self._table = self._cell = self._heading = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "h2":
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "h2":
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._heading is not None:
            self._heading.append(data)


@pytest.fixture(scope="module")
def model(bundled_path):
    return load_checkpoint(bundled_path)[0].eval()


@pytest.fixture(scope="module")
def data(mnist):
    return mnist.test_images[:N_IMAGES], mnist.test_labels[:N_IMAGES]


@pytest.fixture(scope="module")
def result(model, data):
    return evaluate(model, *data, num_classes=10)


def plot_data(doc: str) -> list[list[dict]]:
    """The traces of every chart in the report, in order (read from its Plotly.newPlot calls)."""
    decoder = json.JSONDecoder()
    return [decoder.raw_decode(doc, m.end())[0] for m in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', doc)]


def values(field) -> list:
    """A trace's array as a list: plotly writes numpy arrays as base64 ({"dtype", "bdata"})."""
    if isinstance(field, dict) and "bdata" in field:
        return np.frombuffer(base64.b64decode(field["bdata"]), dtype=np.dtype(field["dtype"])).tolist()
    return list(field or [])


def history(steps: int = 40, epochs: int = 2) -> History:
    per_epoch = steps // epochs
    return History(steps=list(range(1, steps + 1)), batch_losses=[2.0 / (1 + 0.1 * i) for i in range(steps)],
                   smoothed_losses=[2.0 / (1 + 0.1 * i) for i in range(steps)],
                   epochs=[dict(epoch=e, train_loss=0.5 / e, train_accuracy=80.0 + e, val_loss=0.4 / e,
                                val_accuracy=85.0 + e, seconds=3.0, learning_rate=1e-3) for e in range(1, epochs + 1)],
                   status="finished", seconds=6.0, images_seen=3000, compute_path="cpu float32",
                   batches_per_epoch=per_epoch)


def make(result, data, **overrides) -> str:
    args = dict(run_id="run-3", label="adam lr=0.001", config=TrainConfig(epochs=2, subset=500),
                history=history(), result=result, images=data[0], classes=[str(i) for i in range(10)],
                dataset="mnist", status="finished", message="Finished 2 epochs.", mistakes=12)
    args.update(overrides)
    return report.build_report(**args)


def test_structure_one_embedded_plotly_three_charts_thumbnails_with_text(result, data):
    doc = make(result, data)
    parsed = Tables(doc)
    assert doc.startswith("<!DOCTYPE html>") and '<html lang="en">' in doc
    assert parsed.headings == ["Test set", "Settings", "Training curves", "Accuracy per class", "Confusion matrix",
                               "Most confident mistakes", "Compute path and speed",
                               "The same training as a plain PyTorch script"]
    assert doc.count('class="plotly-graph-div"') == 3
    assert doc.count("Plotly.newPlot(") == 3
    assert len(re.findall(r"plotly\.js v\d", doc)) == 1  # the library's banner: embedded exactly once
    assert not re.search(r'<script[^>]+src=|<link[^>]+href=|src="https?:', doc)  # nothing fetched
    assert len(parsed.images) == 12
    for img in parsed.images:
        assert img["src"].startswith("data:image/png;base64,")
        assert re.fullmatch(r"Test image \d+: a handwritten \d that the model read as \d with \d+% confidence",
                            img["alt"])
    settings = dict(parsed.tables["settings"][1:])
    assert settings["epochs"] == "2" and settings["subset"] == "500" and settings["optimizer"] == "adam"
    assert "optimizer = torch.optim.Adam(model.parameters(), lr=0.001" in doc
    compute = dict(parsed.tables["compute"][1:])
    assert compute == {"Compute path": "cpu float32", "Training time (s)": "6.0", "Images seen": "3000",
                       "Images per second": "500"}
    epochs = parsed.tables["epochs"][1:]
    assert [row[0] for row in epochs] == ["1", "2"] and epochs[1][4] == "87.00"


def test_hostile_run_strings_are_escaped(result, data):
    doc = make(result, data, run_id=HOSTILE, label=HOSTILE, message=HOSTILE,
               classes=[HOSTILE] + [str(i) for i in range(1, 10)],
               history=History(**{**history().to_dict(), "compute_path": HOSTILE}))
    assert "alert(1)</script>" not in doc and "<script>alert" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    benign = make(result, data)
    # The hostile strings add no <script> element: only plotly's own (the library and one per chart).
    assert doc.count("<script") == benign.count("<script")
    parsed = Tables(doc)
    assert parsed.tables["per-class"][1][0] == HOSTILE  # shown as text, exactly as given
    assert dict(parsed.tables["compute"][1:])["Compute path"] == HOSTILE


def test_numbers_equal_a_plain_torch_evaluation(model, result, data):
    images, labels = data
    with torch.no_grad():
        logits = model(to_float(images))
    probs = logits.softmax(1)
    preds = logits.argmax(1)
    confusion = np.zeros((10, 10), dtype=int)
    for t, p in zip(labels.tolist(), preds.tolist()):
        confusion[t, p] += 1
    doc = make(result, data)
    parsed = Tables(doc)

    summary = dict(parsed.tables["summary"][1:])
    assert summary["Accuracy (%)"] == f"{100.0 * (preds == labels).float().mean().item():.2f}"
    assert float(summary["Loss (mean cross-entropy)"]) == pytest.approx(F.cross_entropy(logits, labels).item(),
                                                                       abs=1e-4)
    assert summary["Misclassified"] == str(int((preds != labels).sum())) and summary["Images"] == str(N_IMAGES)

    rows = parsed.tables["per-class"][1:]
    for c, (name, count, correct, accuracy) in enumerate(rows):
        assert name == str(c) and int(count) == confusion[c].sum() and int(correct) == confusion[c, c]
        assert accuracy == f"{100.0 * confusion[c, c] / confusion[c].sum():.2f}"
    table = [[int(v) for v in row[1:]] for row in parsed.tables["confusion"][1:]]
    assert np.array_equal(np.array(table), confusion)

    # The thumbnails are the most confident mistakes, in order, and show the right digits.
    wrong = (preds != labels).nonzero().flatten()
    confidence = probs[wrong, preds[wrong]]
    expected = wrong[confidence.argsort(descending=True)][:12].tolist()
    shown = [int(re.match(r"Test image (\d+):", img["alt"]).group(1)) for img in parsed.images]
    assert shown == expected
    first = np.asarray(Image.open(io.BytesIO(base64.b64decode(parsed.images[0]["src"].split(",", 1)[1]))))
    assert first.shape == (84, 84) and np.array_equal(first[::3, ::3], images[expected[0]].numpy())
    assert f"read as {preds[expected[0]].item()} with" in parsed.images[0]["alt"]

    # The per-class chart plots the same numbers as the table.
    bars = plot_data(doc)[1]
    assert values(bars[0]["y"]) == pytest.approx([100.0 * confusion[c, c] / confusion[c].sum() for c in range(10)])


def test_size_is_bounded_for_a_long_run_and_long_text(result, data):
    long_history = history(steps=200_000, epochs=100)
    doc = make(result, data, history=long_history, label="x" * 100_000, message="y" * 100_000,
               mistakes=1000)
    size = len(doc.encode("utf-8"))
    assert size <= report.MAX_REPORT_BYTES
    assert "x" * report.MAX_TEXT not in doc and "x" * (report.MAX_TEXT - 1) + "…" in doc
    assert len(Tables(doc).images) == min(report.MAX_MISTAKES, int((result.predictions != result.labels).sum()))
    curves = plot_data(doc)[0]
    longest = max(len(values(trace.get("x"))) for trace in curves)
    assert longest == report.MAX_CURVE_POINTS  # thinned, with the last step kept
    assert max(max(values(trace.get("x")) or [0]) for trace in curves) == 200_000
    assert f"shows {report.MAX_CURVE_POINTS:,} of its 200,000 logged points" in doc


def test_a_report_over_the_limit_is_refused_not_cut(result, data, monkeypatch):
    monkeypatch.setattr(report, "MAX_REPORT_BYTES", 1_000_000)  # less than plotly's JavaScript alone
    with pytest.raises(report.ReportTooLarge, match="limit 1.0 MB"):
        make(result, data)


# -- the pages' download button (AppTest) and what it hands over ---------------------------------------
@pytest.fixture(scope="module")
def finished_run():
    """A learner with one tiny finished run (1 epoch on 500 images)."""
    from tests.helpers import new_learner, train_run

    token = new_learner()
    job = train_run(token, TrainConfig(epochs=1, subset=500, batch_size=64), timeout=180)
    return token, job


def report_labels(at) -> list[str]:
    return [b.proto.label for b in at.get("download_button") if "run report" in b.proto.label]


@pytest.mark.parametrize("page", ["pages/train.py", "pages/results.py"])
def test_the_page_offers_the_report_of_a_finished_run(finished_run, page):
    from tests.conftest import ROOT
    from tests.helpers import page_as

    token, job = finished_run
    at = page_as(str(ROOT / page), token, model_key=job.id, timeout=120).run()
    assert not at.exception, at.exception
    assert report_labels(at) == ["Download the run report (HTML)"]
    (button,) = [b for b in at.get("download_button") if "run report" in b.proto.label]
    # Deferred: the page registers a callable, made into the report only when the learner presses it.
    assert button.proto.deferred_file_id and not button.proto.url
    assert button.proto.ignore_rerun  # pressing it does not rerun the page


def test_the_bundled_model_gets_a_model_report_not_a_run_report(bundled_path):
    from tests.conftest import ROOT
    from tests.helpers import new_learner, page_as

    at = page_as(str(ROOT / "pages/results.py"), new_learner(), timeout=120).run()
    assert not at.exception, at.exception
    assert report_labels(at) == []  # the bundled model is not a run of this learner ...
    (button,) = [b for b in at.get("download_button") if "model report" in b.proto.label]
    assert button.proto.label == "Download the model report (HTML)"  # ... but its checkpoint has a report
    assert button.proto.deferred_file_id and button.proto.ignore_rerun


def test_the_bundled_models_report_has_its_checkpoint_settings_and_a_plain_torch_accuracy(bundled_path, mnist):
    from dashboard.run_report import checkpoint_report_bytes
    from simplecnn.checkpoints import load_checkpoint

    model, meta = load_checkpoint(bundled_path)
    with torch.no_grad():
        preds = torch.cat([model(to_float(mnist.test_images[i:i + 2000])).argmax(1) for i in range(0, 10_000, 2000)])
    result = evaluate(model, mnist.test_images, mnist.test_labels, num_classes=10)
    cache: dict = {}
    make = checkpoint_report_bytes("bundled", "Bundled model (pretrained)", meta, result, mnist, "mnist", cache)
    data = make()
    parsed = Tables(data.decode("utf-8"))
    summary = dict(parsed.tables["summary"][1:])
    assert summary["Accuracy (%)"] == f"{100.0 * (preds == mnist.test_labels).float().mean().item():.2f}"
    settings = dict(parsed.tables["settings"][1:])
    assert settings["epochs"] == str(meta["config"]["epochs"]) and settings["batch_size"] == str(meta["config"]["batch_size"])
    assert list(cache) == [("bundled", "checkpoint", "mnist")] and make() is data


def test_the_button_data_is_the_runs_report_evaluated_on_the_test_set_and_cached(finished_run, mnist):
    from dashboard.run_report import file_name, report_bytes
    from tests.helpers import runs_of

    token, job = finished_run
    entry = runs_of(token)[job.id]
    cache: dict = {}
    make = report_bytes(entry, mnist, "mnist", cache)
    data = make()
    parsed = Tables(data.decode("utf-8"))
    expected = evaluate(job.model(), mnist.test_images, mnist.test_labels, num_classes=10)
    summary = dict(parsed.tables["summary"][1:])
    assert summary["Accuracy (%)"] == f"{expected.accuracy:.2f}" and summary["Images"] == "10000"
    assert f"SimpleCNN run report: {job.id}" in data.decode("utf-8")
    assert dict(parsed.tables["settings"][1:])["subset"] == "500"
    assert list(cache) == [(job.id, job.snapshot().weights_version, "mnist")]
    assert make() is data  # pressed again: the kept report, not a new evaluation
    assert file_name(job.id) == f"simplecnn-report-{job.id}.html" and file_name("a/../b c") == "simplecnn-report-a____b_c.html"
