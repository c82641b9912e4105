"""A run report to keep: one self-contained HTML file about a training run and its test-set result.

The file works offline: plotly's JavaScript is embedded once (with the first chart), the mistake
thumbnails are inline PNG data URIs, and nothing is fetched from anywhere. Every string that comes
from the run (its label, message, settings, class names, compute path) is HTML-escaped; the figures
go through plotly's own JSON, which escapes `<`, `>` and `/`. The size is bounded: long curves are
thinned to MAX_CURVE_POINTS points, free text is cut to MAX_TEXT characters, at most MAX_MISTAKES
thumbnails are drawn, and the result is checked against MAX_REPORT_BYTES (plotly's JavaScript is
about 4.8 MB of it). No Streamlit here.
"""
from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import replace
from datetime import datetime, timezone
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from . import plots
from .codegen import training_script
from .evaluation import EvaluationResult, evaluate
from .training import History, TrainConfig

MAX_REPORT_BYTES = 6_500_000
MAX_CURVE_POINTS = 2_000  # batch-level points per curve kept in the report
MAX_TEXT = 300  # characters kept of any free text from the run (label, message, setting values)
MAX_MISTAKES = 24
THUMB_SCALE = 3  # 28 px digits drawn as 84 px PNGs, pixels kept sharp


class ReportTooLarge(ValueError):
    """The report would exceed MAX_REPORT_BYTES (it is never returned half-built)."""


def _text(value: object) -> str:
    """Any value from the run as escaped HTML text, cut to MAX_TEXT characters."""
    s = str(value)
    if len(s) > MAX_TEXT:
        s = s[:MAX_TEXT - 1] + "…"
    return html.escape(s, quote=True)


def _thin(history: History) -> History:
    """The history with its batch-level curves thinned to at most MAX_CURVE_POINTS (the last kept)."""
    n = len(history.steps)
    if n <= MAX_CURVE_POINTS:
        return history
    keep = np.unique(np.linspace(0, n - 1, MAX_CURVE_POINTS).round().astype(int))  # first and last included
    pick = lambda values: [values[i] for i in keep] if len(values) == n else []  # noqa: E731
    return replace(history, steps=pick(history.steps), batch_losses=pick(history.batch_losses),
                   smoothed_losses=pick(history.smoothed_losses))


def png_data_uri(pixels: np.ndarray, scale: int = THUMB_SCALE) -> str:
    """A (H, W) uint8 image, each pixel repeated `scale` times, as a data:image/png;base64 URI."""
    big = np.kron(np.asarray(pixels, dtype=np.uint8), np.ones((scale, scale), dtype=np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(big)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: float, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _table(table_id: str, caption: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table; `header` and `rows` are already-escaped cell contents."""
    head = "".join(f'<th scope="col">{h}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<th scope="row">{r[0]}</th>' + "".join(f"<td>{c}</td>" for c in r[1:]))
                   + "</tr>" for r in rows)
    return (f'<table id="{table_id}"><caption>{caption}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _figure(fig, first: list[bool], name: str) -> str:
    """A figure as a <div>, plotly's JavaScript inlined with the first one only."""
    include = first[0]
    first[0] = False
    div = fig.to_html(include_plotlyjs=include, full_html=False, config={"displaylogo": False},
                      default_width="100%")
    return f'<figure role="group" aria-label="{html.escape(name)}">{div}</figure>'


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1.5rem auto; padding: 0 1rem;
       color: #1d2430; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ccd;
     padding-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 0.3rem 0; }
th, td { border: 1px solid #ccd; padding: 0.2rem 0.5rem; text-align: right; }
th[scope="row"] { text-align: left; font-weight: normal; background: #f4f6f9; }
.meta { color: #4a5566; } figure { margin: 0.5rem 0; }
.mistakes { display: flex; flex-wrap: wrap; gap: 0.6rem; list-style: none; padding: 0; }
.mistakes li { width: 96px; font-size: 0.8rem; text-align: center; }
.mistakes img { image-rendering: pixelated; width: 84px; height: 84px; border: 1px solid #ccd; }
pre { background: #f4f6f9; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
"""


def build_report(*, run_id: str, label: str, config: TrainConfig | dict, history: History | dict,
                 result: EvaluationResult, images: torch.Tensor, classes: Sequence[str], dataset: str,
                 status: str = "", message: str = "", mistakes: int = 12,
                 generated: datetime | None = None) -> str:
    """The report as one HTML document (str). `result` is the evaluation of the run's model on
    `images` (uint8, (N, 28, 28), the test set), as simplecnn.evaluation.evaluate returns it."""
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    history = history if isinstance(history, History) else History.from_dict(dict(history))
    generated = generated or datetime.now(timezone.utc)
    names = [_text(c) for c in classes]
    first = [True]
    parts: list[str] = []
    title = f"SimpleCNN run report: {_text(run_id)}"
    parts.append(f"<h1>{title}</h1>")
    parts.append(f'<p class="meta" id="label">{_text(label)}</p>')
    parts.append(f'<p class="meta">Dataset <strong>{_text(dataset)}</strong> · status '
                 f'<strong id="status">{_text(status or history.status)}</strong> · generated '
                 f'{generated.strftime("%Y-%m-%d %H:%M UTC")}</p>')
    if message:
        parts.append(f'<p id="message">{_text(message)}</p>')

    # -- test-set summary ---------------------------------------------------------------------
    n = len(result.labels)
    wrong = int((result.predictions != result.labels).sum())
    parts.append("<h2>Test set</h2>")
    parts.append(_table("summary", f"The model on the {n:,} test images it never trained on",
                        ["Measure", "Value"],
                        [["Accuracy (%)", _number(result.accuracy)], ["Loss (mean cross-entropy)",
                                                                      _number(result.loss, 4)],
                         ["Misclassified", f"{wrong}"], ["Images", f"{n}"]]))

    # -- settings -----------------------------------------------------------------------------
    parts.append("<h2>Settings</h2>")
    parts.append(_table("settings", "The settings this run trained with", ["Setting", "Value"],
                        [[_text(k), _text("all" if k == "subset" and v is None else v)]
                         for k, v in config.to_dict().items()]))

    # -- curves -------------------------------------------------------------------------------
    parts.append("<h2>Training curves</h2>")
    thin = _thin(history)
    if len(thin.steps) < len(history.steps):
        parts.append(f"<p>The batch-loss curve shows {len(thin.steps):,} of its {len(history.steps):,} "
                     "logged points, evenly spaced.</p>")
    parts.append(_figure(plots.training_curves(thin, label="this run", height=380), first,
                         "Loss and accuracy curves"))
    epoch_rows = [[f"{e['epoch']}", _number(e.get("train_loss"), 4), _number(e.get("train_accuracy")),
                   _number(e.get("val_loss"), 4), _number(e.get("val_accuracy")), _number(e.get("seconds"), 1)]
                  for e in history.epochs]
    parts.append(_table("epochs", "The curves' numbers, one row per finished epoch",
                        ["Epoch", "Train loss", "Train accuracy (%)", "Validation loss",
                         "Validation accuracy (%)", "Seconds"], epoch_rows))

    # -- per class ----------------------------------------------------------------------------
    parts.append("<h2>Accuracy per class</h2>")
    per_class = np.array(result.per_class_accuracy, dtype=float)
    support = result.confusion.sum(1).tolist()
    shown = np.nan_to_num(per_class)
    fig = plots.bar_per_class(shown, [str(c) for c in classes], y_title="Accuracy (%)", value_format=".1f",
                              reference=result.accuracy, height=380)
    fig.update_yaxes(range=[max(0.0, float(shown.min()) - 2.0) if shown.size else 0.0, 100.5])
    parts.append(_figure(fig, first, "Accuracy per class"))
    parts.append(_table("per-class", "Accuracy per true class on the test set",
                        ["Class", "Images", "Correct", "Accuracy (%)"],
                        [[names[i], f"{support[i]}", f"{int(result.confusion[i, i])}", _number(per_class[i])]
                         for i in range(len(classes))]))

    # -- confusion ----------------------------------------------------------------------------
    parts.append("<h2>Confusion matrix</h2>")
    parts.append(_figure(plots.confusion_matrix(result.confusion, [str(c) for c in classes], height=460), first,
                         "Confusion matrix"))
    confusion = result.confusion.tolist()
    parts.append(_table("confusion", "Rows: true class; columns: the model's answer",
                        ["True \\ predicted", *names],
                        [[names[i], *[f"{v}" for v in row]] for i, row in enumerate(confusion)]))

    # -- mistakes -----------------------------------------------------------------------------
    worst = result.mistakes(limit=max(0, min(mistakes, MAX_MISTAKES)))
    parts.append("<h2>Most confident mistakes</h2>")
    if not worst:
        parts.append("<p>The model made no mistakes on the test set.</p>")
    else:
        items = []
        for m in worst:
            caption = (f"#{m.index}: true {classes[m.true]}, predicted {classes[m.predicted]} "
                       f"({100 * m.probability:.0f}%)")
            alt = (f"Test image {m.index}: a handwritten {classes[m.true]} that the model read as "
                   f"{classes[m.predicted]} with {100 * m.probability:.0f}% confidence")
            uri = png_data_uri(images[m.index].numpy())
            items.append(f'<li><img src="{uri}" alt="{_text(alt)}"><br>{_text(caption)}</li>')
        parts.append(f'<ul class="mistakes" id="mistakes">{"".join(items)}</ul>')

    # -- compute ------------------------------------------------------------------------------
    parts.append("<h2>Compute path and speed</h2>")
    speed = history.images_seen / history.seconds if history.seconds else None
    parts.append(_table("compute", "Where and how fast it trained", ["Measure", "Value"],
                        [["Compute path", _text(history.compute_path or "unknown")],
                         ["Training time (s)", _number(history.seconds, 1)],
                         ["Images seen", f"{history.images_seen}"],
                         ["Images per second", "–" if speed is None else f"{speed:.0f}"]]))

    # -- code ---------------------------------------------------------------------------------
    parts.append("<h2>The same training as a plain PyTorch script</h2>")
    parts.append(f"<pre><code>{html.escape(training_script(config))}</code></pre>")

    document = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{title}</title><style>{_STYLE}</style></head><body><main>"
                + "\n".join(parts) + "</main></body></html>\n")
    size = len(document.encode("utf-8"))
    if size > MAX_REPORT_BYTES:
        raise ReportTooLarge(f"the report would be {size / 1e6:.1f} MB (limit {MAX_REPORT_BYTES / 1e6:.1f} MB)")
    return document


def report_for_model(model: torch.nn.Module, *, images: torch.Tensor, labels: torch.Tensor,
                     num_classes: int, **kwargs) -> str:
    """Evaluate `model` on the test images with simplecnn.evaluation.evaluate, then build_report."""
    result = evaluate(model, images, labels, num_classes=num_classes)
    return build_report(result=result, images=images, **kwargs)
