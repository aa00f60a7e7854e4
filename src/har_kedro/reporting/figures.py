"""Plotly figures of the comparison: confusion matrices, learning curves, two trade-off scatters, reliability.

Figures are built only from saved data with fixed colours and no random ids, so the same
inputs give the same figure JSON (the reproduction test compares them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from har_kedro.reporting.metrics import confusion_counts, row_normalised
from har_kedro.reporting.runs import ModelRun
from har_kedro.reporting.statistics import reliability_table

PALETTE: tuple[str, ...] = tuple(qualitative.Plotly)
TEMPLATE = "plotly_white"


def model_colours(models: Sequence[str]) -> dict[str, str]:
    """A fixed colour per model, by its position in the report, shared by every figure."""
    return {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(models)}


def confusion_matrices_figure(runs: Sequence[ModelRun], class_names: Sequence[str], columns: int = 3) -> go.Figure:
    """One row-normalised confusion matrix per model: rows are true classes, columns predictions."""
    n = len(runs)
    cols = max(1, min(columns, n))
    rows = math.ceil(n / cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=[run.name for run in runs],
        horizontal_spacing=0.12, vertical_spacing=0.18 / max(rows, 1),
    )
    labels = list(class_names)
    for i, run in enumerate(runs):
        counts = confusion_counts(run, len(labels))
        shares = row_normalised(counts)
        fig.add_trace(
            go.Heatmap(
                z=shares, x=labels, y=labels, customdata=counts, coloraxis="coloraxis", name=run.name,
                hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.1%} of the class (%{customdata} images)<extra>" + run.name + "</extra>",
            ),
            row=i // cols + 1, col=i % cols + 1,
        )
    fig.update_xaxes(title_text="predicted", tickangle=-45)
    fig.update_yaxes(title_text="true", autorange="reversed")
    fig.update_layout(
        title="Confusion matrices (test split, each row sums to 1)",
        coloraxis={"colorscale": "Blues", "cmin": 0.0, "cmax": 1.0, "colorbar": {"title": "share"}},
        height=200 + 420 * rows, template=TEMPLATE,  # width follows the page
    )
    return fig


def _epoch_axis(history: pd.DataFrame) -> np.ndarray:
    """1, 2, … over all stages (a linear probe followed by fine-tuning continues the count)."""
    return np.arange(1, len(history) + 1)


def learning_curves_figure(runs: Sequence[ModelRun]) -> go.Figure:
    """Train (solid) and validation (dashed) accuracy and loss per epoch, every model on the same axes."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["accuracy", "loss"], horizontal_spacing=0.1)
    colours = model_colours([run.name for run in runs])
    for run in runs:
        history = run.history
        epochs = _epoch_axis(history)
        for col, metric in ((1, "accuracy"), (2, "loss")):
            for split, dash in (("train", "solid"), ("val", "dash")):
                fig.add_trace(
                    go.Scatter(
                        x=epochs, y=history[f"{split}_{metric}"].to_numpy(dtype=np.float64), mode="lines+markers",
                        name=f"{run.name} {split}", legendgroup=run.name, showlegend=col == 1,
                        line={"color": colours[run.name], "dash": dash}, marker={"size": 4},
                        customdata=history["stage"].astype(str).to_numpy(),
                        hovertemplate=f"{run.name} {split} {metric}" + " %{y:.4f}<br>epoch %{x} (%{customdata})<extra></extra>",
                    ),
                    row=1, col=col,
                )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="accuracy", row=1, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=2)
    fig.update_layout(title="Learning curves (solid: train, dashed: validation)", height=480, template=TEMPLATE)
    return fig


def _scatter(metrics: pd.DataFrame, x: str, x_title: str, title: str, log_x: bool, omit_non_positive: bool) -> go.Figure:
    colours = model_colours(metrics["model"].tolist())
    fig = go.Figure()
    omitted = []
    for row in metrics.itertuples(index=False):
        value = float(getattr(row, x))
        if omit_non_positive and value <= 0:
            omitted.append(row.model)
            continue
        top1 = float(row.top1_mean)  # over seeds; the interval is that of the seed mean
        fig.add_trace(
            go.Scatter(
                x=[value], y=[top1], mode="markers+text", text=[row.model], textposition="top center",
                name=row.model, marker={"size": 14, "color": colours[row.model]},
                # the bootstrap interval of top-1 (reporting/statistics.py) as the error bar
                error_y={"type": "data", "symmetric": False, "array": [float(row.top1_ci_high) - top1], "arrayminus": [top1 - float(row.top1_ci_low)]},
                hovertemplate=f"{row.model} ({row.method}, {row.loss})<br>{x_title} " + "%{x:,.4g}<br>top-1 %{y:.1%}" + f" (mean of {int(row.seeds)} seed{'s' if int(row.seeds) != 1 else ''})"
                + f" [{float(row.top1_ci_low):.1%}, {float(row.top1_ci_high):.1%}]<extra></extra>",
            )
        )
    if omitted:
        fig.add_annotation(
            text=f"not shown (no value to plot): {', '.join(omitted)}", xref="paper", yref="paper", x=0, y=-0.2,
            showarrow=False, align="left",
        )
    fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear")
    fig.update_yaxes(title_text="top-1 test accuracy", tickformat=".1%")
    fig.update_layout(title=title, height=460, template=TEMPLATE, showlegend=False)
    return fig


def accuracy_vs_parameters_figure(metrics: pd.DataFrame) -> go.Figure:
    """Top-1 accuracy against trainable parameters (log scale); a model that trained nothing is noted, not drawn."""
    return _scatter(metrics, "trainable_parameters", "trainable parameters", "Accuracy vs trainable parameters", log_x=True, omit_non_positive=True)


def accuracy_vs_epoch_time_figure(metrics: pd.DataFrame) -> go.Figure:
    """Top-1 accuracy against mean seconds per training epoch; a model without epochs is noted, not drawn."""
    return _scatter(metrics, "mean_epoch_seconds", "seconds per epoch", "Accuracy vs training time per epoch", log_x=False, omit_non_positive=True)


def wise_ft_figure(runs: Sequence[ModelRun]) -> go.Figure:
    """WiSE-FT curves: val (dashed) and test (solid) top-1 against α for every model whose deployed run evaluated
    them, the α chosen on val ringed; models without a curve are named under the plot."""
    fig = go.Figure()
    colours = model_colours([run.name for run in runs])
    without = []
    for run in runs:
        curve = run.run_info.get("wise_ft")
        if not curve:
            without.append(run.name)
            continue
        colour = colours[run.name]
        for split, dash in (("val", "dash"), ("test", "solid")):
            fig.add_trace(go.Scatter(
                x=curve["alphas"], y=curve[f"{split}_accuracy"], mode="lines+markers", name=f"{run.name} {split}", legendgroup=run.name,
                line={"color": colour, "dash": dash}, hovertemplate=f"{run.name} {split}" + "<br>α %{x:.2f}: top-1 %{y:.1%}<extra></extra>",
            ))
        at = curve["alphas"].index(curve["chosen_alpha"])
        fig.add_trace(go.Scatter(
            x=[curve["chosen_alpha"]], y=[curve["test_accuracy"][at]], mode="markers", legendgroup=run.name, showlegend=False,
            marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": colour, "width": 2}},
            hovertemplate=f"{run.name}: α chosen on val" + " %{x:.2f}, test top-1 %{y:.1%}<extra></extra>",
        ))
    if without:
        fig.add_annotation(text=f"no WiSE-FT curve (wise_ft off or nothing trained): {', '.join(without)}", xref="paper", yref="paper", x=0, y=-0.2, showarrow=False, align="left")
    fig.update_xaxes(title_text="α (0: zero-shot weights, 1: fine-tuned weights)", range=[-0.02, 1.02])
    fig.update_yaxes(title_text="top-1 accuracy", tickformat=".0%")
    fig.update_layout(title="WiSE-FT: accuracy of the weight mix (dashed: val, solid: test)", height=460, template=TEMPLATE)
    return fig


def reliability_figure(runs: Sequence[ModelRun], class_names: Sequence[str], bins: int) -> go.Figure:
    """Reliability diagram: per confidence bin, test accuracy against mean top probability, every model on
    the same axes (markers sized by images); the diagonal is perfect calibration, below it over-confidence."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated", line={"color": "#999", "dash": "dot"}, hoverinfo="skip"))
    colours = model_colours([run.name for run in runs])
    for run in runs:
        table = reliability_table(run.labels(), run.probabilities(class_names), bins)
        used = table[table["images"] > 0]
        fig.add_trace(
            go.Scatter(
                x=used["confidence"].to_numpy(), y=used["accuracy"].to_numpy(), mode="lines+markers", name=run.name,
                line={"color": colours[run.name]}, customdata=used[["images", "low", "high"]].to_numpy(),
                marker={"size": np.clip(4 + 2 * np.sqrt(used["images"].to_numpy()), 4, 24), "color": colours[run.name]},
                hovertemplate=f"{run.name}" + "<br>confidence %{customdata[1]:.2f}–%{customdata[2]:.2f}: %{customdata[0]} images"
                "<br>mean confidence %{x:.1%}, accuracy %{y:.1%}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="mean top probability in the bin", range=[0, 1], tickformat=".0%")
    fig.update_yaxes(title_text="test accuracy in the bin", range=[0, 1.02], tickformat=".0%")
    fig.update_layout(title=f"Reliability ({bins} confidence bins; below the diagonal: over-confident)", height=480, template=TEMPLATE)
    return fig
