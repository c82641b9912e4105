"""Lesson 8's figure: loss and step size per step of the two HandAdam runs (with and without bias correction)."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..plots import COLORS, SERIES_DASHES, TEMPLATE
from .adam_bias import AdamRun, constant_gradient_ratio


def adam_bias_figure(runs: Sequence[AdamRun]) -> go.Figure:
    """Left: batch loss per step. Right: mean |Δw| / α per step, with the constant-gradient closed form."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss of each batch (before its step)",
                                                        "mean |Δw| / α of each step"))
    for i, run in enumerate(runs):
        steps = list(range(1, len(run.losses) + 1))
        line = dict(color=COLORS[i % len(COLORS)], dash=SERIES_DASHES[i % len(SERIES_DASHES)])
        fig.add_trace(go.Scatter(x=steps, y=run.losses, mode="lines+markers", line=line, name=run.label,
                                 legendgroup=run.label), 1, 1)
        fig.add_trace(go.Scatter(x=steps, y=run.update_ratios, mode="lines+markers", line=line, name=run.label,
                                 legendgroup=run.label, showlegend=False), 1, 2)
    if runs:
        steps = list(range(1, len(runs[0].losses) + 1))
        b1, b2 = runs[0].beta1, runs[0].beta2
        fig.add_trace(go.Scatter(x=steps, y=[constant_gradient_ratio(t, b1, b2) for t in steps], mode="lines",
                                 line=dict(color=COLORS[-1], dash="dot"),
                                 name="(1 − β₁ᵗ)/√(1 − β₂ᵗ): no correction, constant gradient"), 1, 2)
    fig.update_xaxes(title_text="step t")
    fig.update_yaxes(title_text="cross-entropy", row=1, col=1)
    fig.update_yaxes(title_text="|Δw| / α", rangemode="tozero", row=1, col=2)
    fig.update_layout(template=TEMPLATE, height=420, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig
