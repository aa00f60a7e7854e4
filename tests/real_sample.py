"""Where the real-photograph sample lies: ``$HAR_REAL_SAMPLE``, else ``../shared/data/har_real_sample``.

600 labelled photographs of the Kaggle HAR data set (40 per class, Kaggle layout: ``Training_set.csv``
+ ``train/``). Tests read them where they lie and never copy them into the repository. When the
variable is unset and the default folder is absent, the tests that need them skip and say why; when
the variable is set (``.ci/run`` sets it) the folder must be there, so CI cannot skip them silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV_VAR = "HAR_REAL_SAMPLE"
REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared" / "data" / "har_real_sample"


def _problem(folder: Path) -> str | None:
    if not (folder / "Training_set.csv").is_file() or not (folder / "train").is_dir():
        return f"{folder} does not hold Training_set.csv and train/ (the Kaggle layout)"
    return None


def real_sample_dir() -> Path:
    """The sample folder; skips the calling test (variable unset, default absent) or fails it (variable set, folder wrong)."""
    given = os.environ.get(ENV_VAR, "").strip()
    folder = Path(given).expanduser().resolve() if given else DEFAULT
    problem = _problem(folder)
    if problem and given:
        pytest.fail(f"{ENV_VAR}={given}: {problem}; point {ENV_VAR} at the real-photo sample or unset it.")
    if problem:
        pytest.skip(f"real-photo sample not found: {ENV_VAR} is unset and {problem}; set {ENV_VAR} to the folder of the 600-photo HAR sample.")
    return folder
