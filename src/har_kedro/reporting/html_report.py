"""One self-contained HTML file comparing the models: tables, interactive figures, per-model sections.

Self-contained means it opens from disk, offline, years later: plotly.js is inlined once
(no CDN), there are no external styles or fonts, and no ``<script src=...>`` at all. The page
holds no timestamps or random ids, so a report rebuilt from the same input versions is
byte-identical to the first one.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from har_kedro.provenance import INPUT_VERSIONS_KEY, reproduce_command
from har_kedro.reporting.markdown import test_images_phrase
from har_kedro.reporting.mistakes import ConfusedPair, Mistake, confident_mistakes, confused_pairs
from har_kedro.reporting.robustness import ROBUSTNESS_COLUMNS
from har_kedro.reporting.runs import ModelRun
from har_kedro.reporting.statistics import StatisticsSettings
from har_kedro.reporting.tables import COMPARISON_COLUMNS, PER_CLASS_COLUMNS, UNCERTAINTY_COLUMNS, ZERO_SHOT_COLUMNS, Column, formatted_rows

TITLE = "Human Action Recognition: model comparison"

# (key in the figures mapping, heading, what to read from it)
FIGURE_SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("confusion_matrices", "Confusion matrices", "Rows are the true classes, columns the predictions; each row sums to 1. Hover for image counts."),
    ("learning_curves", "Learning curves", "Train (solid) and validation (dashed) accuracy and loss per epoch; click a legend entry to hide a model."),
    ("accuracy_vs_parameters", "Accuracy vs trainable parameters", "Top-1 test accuracy (mean over seeds), with its bootstrap interval, against the number of trained parameters (log scale)."),
    ("accuracy_vs_epoch_time", "Accuracy vs time per epoch", "Top-1 test accuracy (mean over seeds) against the mean wall-clock seconds of a training epoch."),
    ("wise_ft", "WiSE-FT", "Val (dashed) and test (solid) top-1 of the weights (1 − α) zero-shot + α fine-tuned, per model (deployed seed); the ring marks the α chosen on val. α = 0 is the zero-shot model, α = 1 the fine-tuned one."),
    ("reliability", "Calibration", "Test accuracy against the mean top probability per confidence bin; on the diagonal a model is as sure as it is right, below it over-confident."),
)

# Run settings shown per model: (label, key in run_info or in run_info["config"]).
RUN_SETTINGS: tuple[tuple[str, str], ...] = (
    ("backbone", "backbone"), ("family", "family"), ("method", "method"), ("loss", "loss"), ("seed", "seed"),
    ("device", "device"), ("device name", "device_name"), ("image size", "image_size"),
    ("epochs run", "epochs_run"), ("best epoch", "best_epoch"), ("best val accuracy", "best_val_accuracy"),
    ("stopped early", "stopped_early"), ("resumed from epoch", "resumed_from_epoch"),
    ("seconds per stage", "stage_seconds"), ("training seconds", "total_train_seconds"),
)
CONFIG_SETTINGS: tuple[str, ...] = (
    "epochs", "batch_size", "effective_batch_size", "lr", "lr_multipliers", "weight_decay", "warmup_ratio",
    "label_smoothing", "amp", "lora", "augment",
)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .3rem .6rem; } th { background: #f4f6f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.text { text-align: left; }
.note { color: #555; } code, pre { background: #f4f6f8; padding: .1rem .3rem; border-radius: 3px; }
pre { padding: .6rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
.figure { margin: 1rem 0 2rem; overflow-x: auto; } nav a { margin-right: 1rem; }
.mistakes { display: flex; flex-wrap: wrap; gap: .8rem; } figure.mistake { margin: 0; width: 140px; font-size: .8rem; }
figure.mistake img, td img { width: 96px; height: 96px; display: block; border: 1px solid #ddd; }
figcaption { overflow-wrap: anywhere; } .wrong { color: #b00020; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def html_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], table_id: str | None = None) -> str:
    head = "".join(f"<th>{_e(c.header)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if c.numeric else "text"}">{_e(v)}</td>' for c, v in zip(columns, row, strict=True)) + "</tr>"
        for row in rows
    )
    ident = f' id="{_e(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def key_value_table(pairs: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(f'<tr><th scope="row">{_e(k)}</th><td class="text">{_e(_show(v))}</td></tr>' for k, v in pairs)
    return f"<table><tbody>{rows}</tbody></table>"


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "–" if value is None else str(value)


def figure_html(figure: go.Figure, div_id: str) -> str:
    """The figure's div and drawing script; plotly.js itself is inlined once in the page head."""
    return pio.to_html(
        figure, full_html=False, include_plotlyjs=False, include_mathjax=False, div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


def _versions_table(versions: Mapping[str, str]) -> str:
    rows = "".join(f'<tr><td class="text"><code>{_e(n)}</code></td><td class="text"><code>{_e(v)}</code></td></tr>' for n, v in sorted(versions.items()))
    return f"<table><thead><tr><th>dataset</th><th>version</th></tr></thead><tbody>{rows}</tbody></table>"


def model_section(run: ModelRun, per_class: pd.DataFrame) -> str:
    info = run.run_info
    config = info.get("config") or {}
    settings = [(label, info.get(key)) for label, key in RUN_SETTINGS if key in info]
    settings += [(key.replace("_", " "), config[key]) for key in CONFIG_SETTINGS if key in config and not (key == "lora" and info.get("method") != "lora")]
    parts = [f'<section id="model-{_e(run.name)}"><h3>{_e(run.name)}</h3>', "<h4>Run settings</h4>", key_value_table(settings)]
    if isinstance(info.get("aclip"), dict):
        parts += ["<h4>A-CLIP</h4>", key_value_table(sorted(info["aclip"].items()))]
    classes = per_class[per_class["model"] == run.name]
    parts += ["<h4>Per-class test metrics</h4>", html_table(PER_CLASS_COLUMNS, formatted_rows(classes, PER_CLASS_COLUMNS))]
    training_inputs = info.get(INPUT_VERSIONS_KEY)
    if training_inputs:
        parts += ["<h4>Training inputs</h4>", _versions_table(training_inputs)]
    if info.get("library_versions"):
        parts += ["<h4>Library versions</h4>", key_value_table(sorted(info["library_versions"].items()))]
    parts += ["<details><summary>Full training configuration</summary>", f"<pre>{_e(json.dumps(config, sort_keys=True, indent=2))}</pre></details>", "</section>"]
    return "\n".join(parts)


def per_class_f1_table(per_class: pd.DataFrame, runs: Sequence[ModelRun]) -> str:
    """F1 of every class (rows) for every model (columns), side by side; the best of a row in bold."""
    wide = per_class.pivot(index="class", columns="model", values="f1").reindex(columns=[r.name for r in runs])
    wide = wide.reindex(per_class.drop_duplicates("class")["class"])  # class_names order
    head = "<th>class</th>" + "".join(f"<th>{_e(m)}</th>" for m in wide.columns)
    rows = []
    for name, values in wide.iterrows():
        best = values.max()
        cells = "".join(
            f'<td class="num">{"<strong>" if v == best else ""}{_e(f"{v:.3f}")}{"</strong>" if v == best else ""}</td>' for v in values
        )
        rows.append(f'<tr><td class="text">{_e(name)}</td>{cells}</tr>')
    return f'<table id="per-class-f1-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _thumbnail(mistake: Mistake, thumbnails: Mapping[str, str]) -> str:
    uri = thumbnails.get(mistake.image_id)
    return f'<img src="{_e(uri)}" alt="{_e(mistake.image_id)}">' if uri else '<span class="note">(no thumbnail)</span>'


def _mistake_figure(mistake: Mistake, thumbnails: Mapping[str, str]) -> str:
    return (
        f'<figure class="mistake">{_thumbnail(mistake, thumbnails)}<figcaption>{_e(mistake.label)} &rarr; '
        f'<span class="wrong">{_e(mistake.predicted)}</span> ({mistake.probability:.2f})<br>'
        f'<code>{_e(mistake.image_id)}</code></figcaption></figure>'
    )


def _pairs_table(pairs: Sequence[ConfusedPair], thumbnails: Mapping[str, str]) -> str:
    rows = "".join(
        f'<tr><td class="text">{_e(p.label)}</td><td class="text">{_e(p.predicted)}</td><td class="num">{p.count}</td>'
        f'<td class="num">{p.share:.0%}</td><td>{_mistake_figure(p.example, thumbnails)}</td></tr>'
        for p in pairs
    )
    head = "<th>true class</th><th>predicted as</th><th>test images</th><th>share of the class</th><th>most confident example</th>"
    return f'<table class="confused-pairs"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def mistakes_section(runs: Sequence[ModelRun], thumbnails: Mapping[str, str]) -> str:
    """Per model: the most confident mistakes on the test split, as thumbnails, and the most confused class pairs."""
    parts = [
        '<h2 id="mistakes">Mistakes</h2>',
        '<p class="note">Test images as the model saw them (the cached, centre-cropped image), with the true class '
        "&rarr; the predicted class and the probability the model gave it.</p>",
    ]
    for run in runs:
        mistakes = confident_mistakes(run)
        parts.append(f'<h3 id="mistakes-{_e(run.name)}">{_e(run.name)}</h3>')
        if not mistakes:
            parts.append('<p class="note">No mistake on the test split.</p>')
            continue
        parts += ["<h4>Most confident mistakes</h4>", '<div class="mistakes">' + "".join(_mistake_figure(m, thumbnails) for m in mistakes) + "</div>"]
        parts += ["<h4>Most confused class pairs</h4>", _pairs_table(confused_pairs(run), thumbnails)]
    return "\n".join(parts)


def uncertainty_section(metrics: pd.DataFrame, pairwise: pd.DataFrame | None, settings: StatisticsSettings) -> str:
    """Each model's scores with their bootstrap intervals and calibration error, then every pair of models
    tested on the same images, in words."""
    level = f"{100 * settings.confidence:.0f}{chr(160)}%"
    parts = [
        '<h2 id="uncertainty">Uncertainty and pairwise tests</h2>',
        f'<p class="note">Mean and standard deviation over each model\'s training seeds, and {_e(level)} percentile-bootstrap '
        "intervals over the test images of the seed mean (an image counts by the share of seeds that classify it right); "
        "ECE (of the deployed seed's model) is the expected calibration "
        f"error of the top probability over {settings.calibration_bins} equal-width bins (0 is perfectly calibrated), "
        "before and after dividing the logits by the temperature fitted on the val split (temperature scaling; "
        "above 1 the model was over-confident).</p>",
        html_table(UNCERTAINTY_COLUMNS, formatted_rows(metrics, UNCERTAINTY_COLUMNS), table_id="uncertainty-table"),
    ]
    if pairwise is None or pairwise.empty:
        parts.append('<p class="note">No pair of models was tested on the same images.</p>')
        return "\n".join(parts)
    parts.append(
        '<p class="note">Top-1 difference of each pair on the test images both models predicted, with its paired bootstrap '
        "interval (of the seed means), and a test of no difference: McNemar's exact test on the images exactly one of the two "
        "gets right when each model has one seed, else the sign-flip permutation test on the per-image differences of the "
        "seed means. An interval that contains 0, "
        "or a large p, means this test split cannot tell the two apart.</p>"
    )
    items = "".join(f"<li>{_e(sentence)}</li>" for sentence in pairwise["sentence"])
    parts.append(f'<ul id="pairwise-tests">{items}</ul>')
    return "\n".join(parts)


def robustness_section(table: pd.DataFrame | None, settings: StatisticsSettings) -> str:
    """Zero-shot, fine-tuned and WiSE-FT top-1 on test and on every evaluation set (reporting/robustness.py)."""
    heading = '<h2 id="shift">In distribution and under shift</h2>'
    if table is None or table.empty:
        return heading + '<p class="note">No evaluation predictions were saved (models trained before they existed).</p>'
    level = f"{100 * settings.confidence:.0f}{chr(160)}%"
    note = (
        '<p class="note">Each model before training (zero-shot), after fine-tuning, and WiSE-FT (the weight mix chosen on val) '
        f"on the test split and on every evaluation set (ingestion.evaluation_sets): top-1 averaged over seeds, with {_e(level)} "
        "percentile-bootstrap intervals over the set's images. Sets other than test come from another distribution than "
        "the training images.</p>"
    )
    return heading + note + html_table(ROBUSTNESS_COLUMNS, formatted_rows(table, ROBUSTNESS_COLUMNS), table_id="shift-table")


def _left_out_section(left_out: Mapping[str, str]) -> str:
    if not left_out:
        return '<h2 id="left-out">Models left out</h2>\n<p class="note">None: every model had training outputs.</p>'
    items = "".join(f"<li><strong>{_e(m)}</strong>: {_e(r)}</li>" for m, r in left_out.items())
    return f'<h2 id="left-out">Models left out</h2>\n<ul>{items}</ul>'


def _inputs_section(report_info: Mapping[str, Any]) -> str:
    versions = report_info.get(INPUT_VERSIONS_KEY)
    if not versions:
        return '<p class="note">Input versions were not recorded (the run did not use the project\'s InputVersionsHook).</p>'
    command = reproduce_command(versions)
    return (
        "<p>This report was computed from these versions of its inputs. To compute it again from exactly them "
        "(add the <code>--env</code> the run used, e.g. <code>--env=demo</code>):</p>"
        f"<pre>{_e(command)}</pre>" + _versions_table(versions)
    )


def build_html_report(
    metrics: pd.DataFrame,
    per_class: pd.DataFrame,
    runs: Sequence[ModelRun],
    report_info: Mapping[str, Any],
    figures: Mapping[str, go.Figure],
    title: str = TITLE,
    thumbnails: Mapping[str, str] | None = None,
    pairwise: pd.DataFrame | None = None,
    statistics: StatisticsSettings = StatisticsSettings(),
    robustness: pd.DataFrame | None = None,
) -> str:
    """The whole report as one HTML string; ``figures`` holds the keys of :data:`FIGURE_SECTIONS`;
    ``thumbnails`` maps test image ids to ``data:`` URIs for the mistakes section (text only without);
    ``pairwise`` is :func:`har_kedro.reporting.metrics.pairwise_table` computed with ``statistics``."""
    missing = [key for key, _, _ in FIGURE_SECTIONS if key not in figures]
    if missing:
        raise ValueError(f"build_html_report needs the figures {missing}; pass every key of FIGURE_SECTIONS.")
    left_out: Mapping[str, str] = report_info.get("models_left_out") or {}
    included = ", ".join(run.name for run in runs)
    lead = f"Models compared: {included}." + (f" Left out: {', '.join(left_out)} (see below)." if left_out else "")
    nav = "".join(
        f'<a href="#{anchor}">{_e(label)}</a>'
        for anchor, label in (("comparison", "Comparison"), ("uncertainty", "Uncertainty"), ("shift", "Under shift"), ("per-class-f1", "Per-class F1"), ("zero-shot", "Zero-shot baselines"),
                              ("figures", "Figures"), ("mistakes", "Mistakes"), ("models", "Models"), ("left-out", "Left out"),
                              ("inputs", "Input versions"))
    )
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="note">{_e(lead)} Test split: {_e(test_images_phrase(metrics))}.</p>',
        f"<nav>{nav}</nav>",
        '<h2 id="comparison">Comparison</h2>',
        '<p class="note">Top-1/top-5 accuracy and macro precision, recall and F1 over all classes, computed from each '
        "model's saved test predictions; parameters, memory and timings as the training run recorded them. Top-1 and the "
        "other scores are those of the deployed model (the seed with the best val accuracy, which inference uses); "
        "the seed mean and standard deviation are over every seed the model was trained with.</p>",
        html_table(COMPARISON_COLUMNS, formatted_rows(metrics, COMPARISON_COLUMNS), table_id="comparison-table"),
        uncertainty_section(metrics, pairwise, statistics),
        robustness_section(robustness, statistics),
        '<h2 id="per-class-f1">Per-class F1</h2>',
        '<p class="note">Test F1 of every class for every model, side by side; the best of each row in bold.</p>',
        per_class_f1_table(per_class, runs),
        '<h2 id="zero-shot">Zero-shot baselines</h2>',
        '<p class="note">The backbone before any training, classifying with the prompt-ensembled text head, next to the fine-tuned result.</p>',
        html_table(ZERO_SHOT_COLUMNS, formatted_rows(metrics, ZERO_SHOT_COLUMNS), table_id="zero-shot-table"),
        '<h2 id="figures">Figures</h2>',
    ]
    for key, heading, caption in FIGURE_SECTIONS:
        body += [f"<h3>{_e(heading)}</h3>", f'<p class="note">{_e(caption)}</p>', f'<div class="figure">{figure_html(figures[key], f"figure-{key}")}</div>']
    body.append(mistakes_section(runs, thumbnails or {}))
    body += ['<h2 id="models">Models</h2>'] + [model_section(run, per_class) for run in runs]
    body += [_left_out_section(left_out), '<h2 id="inputs">Input versions</h2>', _inputs_section(report_info)]
    head = (
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style>"
        "<script type=\"text/javascript\">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
        f'<script type="text/javascript">/* plotly.js as bundled with plotly.py {plotly.__version__}, inlined so the report works offline */\n'
        f"{get_plotlyjs()}</script>"
    )
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>{head}</head>\n<body>\n' + "\n".join(body) + "\n</body>\n</html>\n"
