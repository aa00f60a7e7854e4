"""Offline, HAR-like demo image set in the Kaggle layout (demo and test scaffolding, not ingestion).

Why this exists: the real Kaggle "Human Action Recognition" set cannot be downloaded in
tests, CI or air-gapped demos, yet the ingestion pipeline and the model comparison need
*something* that looks like it. This package draws stick figures whose pose depends on the
action class, so that

* a model can actually learn something (the class is carried by the shape), while
  colours, backgrounds, position, scale, rotation and noise are drawn from the same
  distributions for every class, so nothing but the pose gives the label away;
* the files follow the Kaggle layout exactly (``Training_set.csv`` with
  ``filename,label`` and ``train/Image_<n>.jpg``), so the same ingestion code runs on the
  demo and on the real data;
* a handful of deliberately broken entries (truncated / empty / non-image files, missing
  and unlisted files, unknown labels, duplicate rows and duplicate images) and unusual but
  valid images (grayscale, CMYK, palette, RGBA, 16-bit, EXIF-rotated) exercise every
  rejection and conversion path of the ingestion step.

Everything is seeded from :class:`DemoSpec` ``seed`` only, so the same spec always yields
byte-identical files, which keeps downstream caches and tests reproducible.

Modules: :mod:`~har_kedro.demo.spec` (what to generate, what was written),
:mod:`~har_kedro.demo.scene` (figure geometry), :mod:`~har_kedro.demo.poses` (one pose per
class), :mod:`~har_kedro.demo.render` (pixels), :mod:`~har_kedro.demo.formats` (encodings)
and :mod:`~har_kedro.demo.generator` (the files on disk).

Dependency rule: this package may import :mod:`har_kedro.data`; nothing in
:mod:`har_kedro.data` imports this package (the ingestion node turns ``kind: demo`` into a
call to :func:`generate_demo_dataset`).
"""

from har_kedro.demo.generator import generate_demo_dataset
from har_kedro.demo.render import render_action
from har_kedro.demo.spec import CSV_NAME, IMAGE_DIR, DemoSpec, DemoSummary

__all__ = [
    "CSV_NAME",
    "IMAGE_DIR",
    "DemoSpec",
    "DemoSummary",
    "generate_demo_dataset",
    "render_action",
]
