"""Comparison of trained models: metrics tables, figures, Markdown and a self-contained HTML report.

Plain functions over what the training pipelines saved (``run_info``, ``history``,
``test_predictions``); the reporting pipeline's nodes only wire them to the catalog.
"""
