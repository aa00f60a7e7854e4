"""Hooks that keep every run quiet and offline-clean, and record the inputs' versions."""

from __future__ import annotations

import os
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

from har_kedro.provenance import INPUT_VERSIONS_KEY, resolve_input_versions


class OfflineHooks:
    """Keep libraries from reaching for the network during a run.

    Model weights and data are given as local paths or were cached before; a library that
    tries the Hub anyway only adds a long timeout and a misleading error. Users who *do*
    want downloads set ``HF_HUB_OFFLINE=0`` explicitly, which this hook respects.
    """

    @hook_impl
    def after_context_created(self, context: object) -> None:
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        os.environ.setdefault("DO_NOT_TRACK", "1")


class InputVersionsHook:
    """Write into every ``run_info`` / ``report_info`` / ``inference_info`` output the versions of the inputs it came from.

    A result is only reproducible if one knows what it was computed from: with the recorded
    ``input_versions``, ``kedro run --load-versions=...`` recomputes it from exactly those
    inputs (docs/reporting.md). The versions are resolved in ``before_node_run``, after the
    runner loaded the inputs (so each is the version actually read, not a later one), and
    added in ``after_node_run``, before the runner saves the outputs.
    """

    def __init__(self, output_suffixes: tuple[str, ...] = ("run_info", "report_info", "inference_info")) -> None:
        self._suffixes = output_suffixes
        self._pending: dict[str, dict[str, str]] = {}

    def _recorded_outputs(self, node: Node) -> list[str]:
        return [name for name in node.outputs if name.rsplit(".", 1)[-1] in self._suffixes]

    @hook_impl
    def before_node_run(self, node: Node, catalog: Any) -> None:
        if self._recorded_outputs(node):
            self._pending[node.name] = resolve_input_versions(catalog, node.inputs)

    @hook_impl
    def after_node_run(self, node: Node, outputs: dict[str, Any]) -> None:
        versions = self._pending.pop(node.name, None)
        if versions is None:
            return
        for name in self._recorded_outputs(node):
            if isinstance(outputs.get(name), dict):
                outputs[name] = {**outputs[name], INPUT_VERSIONS_KEY: versions}

    @hook_impl
    def on_node_error(self, node: Node) -> None:
        self._pending.pop(node.name, None)
