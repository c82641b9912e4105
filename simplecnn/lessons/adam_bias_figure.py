"""Lesson 8's figure: loss and step size per step of the two HandAdam runs (with and without bias correction)."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..plots import COLORS, SERIES_DASHES, TEMPLATE
from .adam_bias import AdamRun, constant_gradient_ratio


def adam_bias_figure(runs: Sequence[AdamRun]) -> go.Figure:
    """Batch loss and mean |Δw| / α per step for each run, and the ratio of the two runs' steps.

    The third panel sets the measured ratio (without ÷ with) beside the closed form for a gradient
    that never changes, (1 − β₁ᵗ)/√(1 − β₂ᵗ): equal at t = 1, apart once real gradients change.
    """
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss of each batch (before its step)",
                                                        "mean |Δw| / α of each step", "step without ÷ step with"))
    for i, run in enumerate(runs):
        steps = list(range(1, len(run.losses) + 1))
        line = dict(color=COLORS[i % len(COLORS)], dash=SERIES_DASHES[i % len(SERIES_DASHES)])
        fig.add_trace(go.Scatter(x=steps, y=run.losses, mode="lines+markers", line=line, name=run.label,
                                 legendgroup=run.label), 1, 1)
        fig.add_trace(go.Scatter(x=steps, y=run.update_ratios, mode="lines+markers", line=line, name=run.label,
                                 legendgroup=run.label, showlegend=False), 1, 2)
    on = next((r for r in runs if r.bias_correction), None)
    off = next((r for r in runs if not r.bias_correction), None)
    if on is not None and off is not None:
        steps = list(range(1, len(on.update_ratios) + 1))
        fig.add_trace(go.Scatter(x=steps, y=[b / a for a, b in zip(on.update_ratios, off.update_ratios)],
                                 mode="lines+markers", line=dict(color=COLORS[2]), name="measured ratio"), 1, 3)
        fig.add_trace(go.Scatter(x=steps, y=[constant_gradient_ratio(t, on.beta1, on.beta2) for t in steps],
                                 mode="lines", line=dict(color=COLORS[-1], dash="dot"),
                                 name="(1 − β₁ᵗ)/√(1 − β₂ᵗ): a gradient that never changes"), 1, 3)
    fig.update_xaxes(title_text="step t")
    fig.update_yaxes(title_text="cross-entropy", row=1, col=1)
    fig.update_yaxes(title_text="|Δw| / α", rangemode="tozero", row=1, col=2)
    fig.update_yaxes(title_text="ratio", rangemode="tozero", row=1, col=3)
    fig.update_layout(template=TEMPLATE, height=420, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig
