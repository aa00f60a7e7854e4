"""Hooks that keep every run quiet and offline-clean."""

from __future__ import annotations

import os

from kedro.framework.hooks import hook_impl


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
