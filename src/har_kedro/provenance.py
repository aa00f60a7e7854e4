"""Which version of each input a node consumed, and turning that back into ``--load-versions``.

A run's ``run_info`` / ``report_info`` records these (see :class:`har_kedro.hooks.InputVersionsHook`),
so any past result can be traced to its inputs and recomputed from exactly them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kedro.io.core import AbstractVersionedDataset, VersionNotFoundError

INPUT_VERSIONS_KEY = "input_versions"


def resolve_input_versions(catalog: Any, dataset_names: Iterable[str]) -> dict[str, str]:
    """The load version of every versioned dataset among ``dataset_names``, by name.

    Call it after the inputs were loaded: a versioned dataset remembers the version it
    loaded, so this is the version the node got, not whatever is latest now. Parameters,
    in-memory and unversioned datasets have no version and are skipped, and so is an
    optional input that has never been saved (it loaded as ``None``).
    """
    versions: dict[str, str] = {}
    for name in dataset_names:
        if name == "parameters" or name.startswith("params:"):
            continue
        dataset = catalog.get(name)
        if not isinstance(dataset, AbstractVersionedDataset):
            continue
        try:
            version = dataset.resolve_load_version()
        except VersionNotFoundError:
            continue
        if version:
            versions[name] = version
    return dict(sorted(versions.items()))


def load_versions_option(input_versions: Mapping[str, str]) -> str:
    """The ``kedro run --load-versions`` value that reloads exactly these versions."""
    return ",".join(f"{name}:{version}" for name, version in sorted(input_versions.items()))


def reproduce_command(input_versions: Mapping[str, str], pipeline: str = "reporting") -> str:
    """The ``kedro run`` command that recomputes ``pipeline`` from exactly these input versions."""
    return f"kedro run --pipelines={pipeline} --load-versions={load_versions_option(input_versions)}"
