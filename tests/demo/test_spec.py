"""Reading ``ingestion.source.demo`` into a DemoSpec, and the ingestion node refusing bad settings before writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from har_kedro.data.errors import DataInputError
from har_kedro.demo import DemoSpec
from har_kedro.pipelines.ingestion.nodes import prepare_source


def test_demo_settings_become_a_spec() -> None:
    assert DemoSpec.from_params({}) == DemoSpec()
    assert DemoSpec.from_params({"images_per_class": 3, "seed": 7}) == DemoSpec(images_per_class=3, seed=7)


@pytest.mark.parametrize(
    ("demo", "message"),
    [
        ({"images": 3}, "ingestion.source.demo has unknown keys \\['images'\\]; allowed keys are \\['images_per_class'"),
        ({"images_per_class": 0}, "ingestion.source.demo: images_per_class must be >= 1"),
    ],
)
def test_bad_demo_settings_are_named_before_anything_is_written(tmp_path: Path, demo: dict, message: str) -> None:
    root = tmp_path / "har"
    with pytest.raises(DataInputError, match=message):
        prepare_source({"kind": "demo", "root": str(root), "demo": demo})
    assert not root.exists()
