"""Reporting: compare every trained model; a model that was never trained is left out with a note.

The first node reads the training pipelines' own datasets (``clip.run_info``, ``clip.history``,
``clip.test_predictions``, … for every model of ``MODELS``), so kedro-viz draws one connected
DAG from raw images to the report. Those datasets are :class:`har_kedro.datasets.OptionalDataset`
in the catalog and load as ``None`` when a model was never trained.
"""

from __future__ import annotations

import warnings

from kedro.pipeline import Node, Pipeline

from har_kedro.pipelines.reporting.nodes import (
    collect_model_runs,
    compute_metrics,
    draw_figures,
    summarise,
    write_html_report,
)
from har_kedro.pipelines.training import MODELS
from har_kedro.reporting.runs import EVALUATION_KIND, OUTPUT_KINDS, SEED_KIND, dataset_name

FIGURES = ("confusion_matrices_plot", "learning_curves_plot", "accuracy_vs_parameters_plot", "accuracy_vs_epoch_time_plot", "wise_ft_plot", "reliability_plot")


def create_pipeline(**kwargs: object) -> Pipeline:
    model_outputs = {dataset_name(m, kind): dataset_name(m, kind) for m in MODELS for kind in (*OUTPUT_KINDS, SEED_KIND, EVALUATION_KIND)}
    with warnings.catch_warnings():
        # Reading `clip.run_info` from outside the `clip` namespace is the point here (one DAG);
        # Kedro's generic advice against dotted names does not apply.
        warnings.filterwarnings("ignore", message="One or more dataset names contain '.' characters")
        collect = Node(
            collect_model_runs,
            {"class_names": "class_names", "image_cache": "image_cache", **model_outputs},
            ["model_runs", "report_info"],
            name="collect_model_runs",
        )
    return Pipeline(
        [
            collect,
            Node(
                compute_metrics,
                ["model_runs", "class_names", "params:reporting.statistics"],
                ["model_metrics", "per_class_metrics", "pairwise_comparisons", "robustness_metrics"],
                name="compute_metrics",
            ),
            Node(draw_figures, ["model_runs", "class_names", "model_metrics", "params:reporting.statistics"], list(FIGURES), name="draw_figures"),
            Node(summarise, ["model_metrics", "pairwise_comparisons", "report_info"], ["model_metrics_markdown", "report_summary"], name="summarise"),
            Node(
                write_html_report,
                ["model_runs", "model_metrics", "per_class_metrics", "pairwise_comparisons", "robustness_metrics", "report_info", "params:reporting.statistics", *FIGURES],
                "comparison_report",
                name="write_html_report",
            ),
        ],
        tags="reporting",
    )
