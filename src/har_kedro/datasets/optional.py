"""A dataset that loads as ``None`` while nothing was ever saved to it.

Reporting compares whichever models were trained. Its inputs are the very datasets the
training pipelines write (``clip.run_info``, ``clip.history`` …), so the DAG stays connected in
kedro-viz. But Kedro refuses to load a versioned dataset that has no version yet, so one
untrained model would stop the whole report. ``OptionalDataset`` wraps the real dataset
(given as an inner ``dataset:`` config) and changes only that: with nothing saved, ``load()``
returns ``None``; everything else (saving, versioning, ``--load-versions``, kedro-viz
previews) is the inner dataset's own behaviour.

A version named explicitly (``--load-versions`` or ``catalog.load(name, version=...)``) must
exist: asking for a version that is not there is a mistake, not an absent model, so it fails
with the versions that do exist.

Example catalog entry::

    "{model}.run_info":
      type: har_kedro.datasets.OptionalDataset
      dataset:
        type: json.JSONDataset
        filepath: data/08_reporting/{model}/run_info.json
      versioned: true
"""

from __future__ import annotations

import functools
import logging
from pathlib import PurePosixPath
from typing import Any

from kedro.io.core import (
    AbstractDataset,
    AbstractVersionedDataset,
    DatasetError,
    Version,
    VersionNotFoundError,
)

logger = logging.getLogger(__name__)

# Versioning belongs to the wrapper's entry, so that Kedro hands it the run's versions.
_RESERVED_INNER_KEYS = ("versioned", "version")


class OptionalDataset(AbstractVersionedDataset[Any, Any]):
    """Wraps ``dataset``; loads ``None`` when it has never been saved, behaves like it otherwise."""

    def __init__(
        self,
        dataset: dict[str, Any] | str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        config = {"type": dataset} if isinstance(dataset, str) else dict(dataset)
        if "type" not in config:
            raise DatasetError("OptionalDataset's `dataset` has no `type`; give the wrapped dataset's type, e.g. `type: json.JSONDataset`.")
        misplaced = [key for key in _RESERVED_INNER_KEYS if key in config]
        if misplaced:
            raise DatasetError(
                f"OptionalDataset's inner `dataset` sets {misplaced}; put `versioned: true` on the "
                "OptionalDataset entry itself so the wrapped dataset gets the run's versions."
            )
        self._dataset_config = config
        self._built: tuple[Version | None, AbstractDataset] | None = None
        self.metadata = metadata
        self._version = version
        # Build once now, so a wrong inner config fails when the catalog is created, not mid-run.
        inner = self._inner
        super().__init__(filepath=PurePosixPath(str(inner._describe().get("filepath", ""))), version=version)

    @property
    def _inner(self) -> AbstractDataset:
        """The wrapped dataset for the current version (``catalog.load(version=...)`` copies us with another)."""
        if self._built is None or self._built[0] != self._version:
            config = dict(self._dataset_config)
            load_version = save_version = None
            if self._version is not None:
                config["versioned"] = True
                load_version, save_version = self._version.load, self._version.save
            inner = AbstractDataset.from_config(f"{config['type']} inside OptionalDataset", config, load_version, save_version)
            self._built = (self._version, inner)
        return self._built[1]

    @property
    def _pinned_version(self) -> str | None:
        return self._version.load if self._version is not None else None

    def _describe(self) -> dict[str, Any]:
        return {"dataset": type(self._inner).__name__, **self._inner._describe()}

    def _exists(self) -> bool:
        return self._inner.exists()

    def load(self) -> Any:
        inner = self._inner
        pinned = self._pinned_version
        if pinned and not inner.exists():
            raise DatasetError(
                f"version '{pinned}' of {self._filepath} does not exist (versions on disk: "
                f"{self._existing_versions() or 'none'}); name one of those in --load-versions or leave this dataset out of it."
            )
        if not pinned and not inner.exists():
            logger.info("Nothing was ever saved to %s; loading None.", self._filepath)
            return None
        return inner.load()

    def save(self, data: Any) -> None:
        self._inner.save(data)

    def resolve_load_version(self) -> str | None:
        inner = self._inner
        return inner.resolve_load_version() if isinstance(inner, AbstractVersionedDataset) else None

    def resolve_save_version(self) -> str | None:
        inner = self._inner
        return inner.resolve_save_version() if isinstance(inner, AbstractVersionedDataset) else None

    def list_versions(self, full_path: bool = True) -> list[str]:
        inner = self._inner
        if not isinstance(inner, AbstractVersionedDataset):
            return []
        return inner.list_versions(full_path=full_path)

    def _existing_versions(self) -> list[str]:
        try:
            return self.list_versions(full_path=False)
        except VersionNotFoundError:
            return []

    def _release(self) -> None:
        super()._release()
        self._inner.release()

    def __getattr__(self, name: str) -> Any:
        # Only ``preview`` is forwarded, and only when the inner dataset has one: kedro-viz
        # decides whether to preview by ``hasattr(dataset, "preview")`` and picks the preview
        # kind from its return annotation, which ``functools.wraps`` carries over.
        if name != "preview":
            raise AttributeError(name)
        inner_preview = getattr(self._inner, "preview", None)
        if inner_preview is None:
            raise AttributeError(name)

        @functools.wraps(inner_preview)
        def preview(*args: Any, **kwargs: Any) -> Any:
            if not self._pinned_version and not self._inner.exists():
                return None  # nothing saved yet: nothing to show
            return inner_preview(*args, **kwargs)

        return preview
