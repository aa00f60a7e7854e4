"""inference_clip in real Kedro sessions on the demo: predictions for the demo folder, bad files, ONNX, --load-versions.

The predictions, bad-files table and ONNX export are those of the suite's shared trained demo
project (``reported_project``: ``__default__`` ran inference for every model). Which trained
version inference reads is checked in a copy of it, after a second clip training.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch
from kedro.io.core import Version, generate_timestamp

from har_kedro.data.decoding import decode_into
from har_kedro.data.inspection import ImageRejected, inspect_image
from har_kedro.datasets.trained_model import TrainedModelDataset
from har_kedro.models.factory import rebuild_classifier
from har_kedro.models.predict import predict_logits
from tests.conftest import ReportedProject
from tests.pipelines.conftest import runner_for

pytestmark = pytest.mark.slow
MODELS_DIR = "data/demo/06_models/clip/trained_model"


def _versions(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def _folder_expectation(project: Path, context) -> tuple[Path, list[str], set[str]]:
    """The inference folder, its files that decode, and those that do not (judged by ingestion's own check)."""
    folder = project / context.params["inference"]["images_dir"]
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    good, bad = [], set()
    for path in files:
        try:
            inspect_image(path.read_bytes())
            good.append(path.name)
        except ImageRejected:
            bad.add(path.name)
    return folder, good, bad


def _expected_probabilities(project: Path, version: str, folder: Path, names: list[str], size: int) -> np.ndarray:
    """What the model of ``version`` gives for ``names``, decoded the way preprocessing decodes."""
    trained = TrainedModelDataset(str(project / MODELS_DIR), version=Version(version, None)).load()
    images = np.zeros((len(names), size, size, 3), np.uint8)
    decode_into([str(folder / n) for n in names], images, size, "bilinear", num_workers=2, progress=False)
    logits = predict_logits(rebuild_classifier(trained), images, 256, torch.device("cpu"), "off")
    return torch.softmax(logits, dim=1).numpy()


def test_inference_predicts_the_folder_lists_bad_files_and_exports_onnx(reported_project: ReportedProject, monkeypatch):
    project = reported_project.root
    monkeypatch.chdir(project)
    context = reported_project.context()
    catalog, params = context.catalog, context.params["inference"]
    predictions = catalog.load("clip.inference_predictions")
    csv = catalog.load("clip.inference_predictions_csv")
    bad = catalog.load("clip.inference_bad_files")
    info = catalog.load("clip.inference_info")
    parity = catalog.load("clip.onnx_parity")
    onnx_model = catalog.load("clip.onnx_model")
    folder, good, broken = _folder_expectation(project, context)

    k = params["top_k"]
    assert broken and set(bad["image"]) == broken and bad["reason"].str.len().gt(0).all()
    assert len(predictions) == len(good) and set(predictions["image"]) == set(good)
    assert info["files"] == len(good) + len(broken) and info["predicted"] == len(good)
    probs = predictions[[f"prob_{i}" for i in range(1, k + 1)]].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all() and (np.diff(probs, axis=1) <= 0).all()
    pd.testing.assert_frame_equal(csv, predictions, check_dtype=False, atol=1e-6)

    # The trained model made these predictions (checked on every 8th image, for time); that inference
    # takes the latest of several versions is checked in test_load_versions_picks_the_older_trained_model.
    size = context.params["preprocessing"]["image_size"]
    (version,) = _versions(project / MODELS_DIR)
    some = predictions.iloc[::8]
    expected = _expected_probabilities(project, version, folder, some["image"].tolist(), size)
    np.testing.assert_allclose(some["prob_1"], expected.max(axis=1), atol=1e-5)

    assert parity["passed"] and parity["images"] == params["onnx"]["parity_images"] and parity["max_abs_diff_probabilities"] <= parity["tolerance"]
    session = onnxruntime.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [size, size, 3]


def test_load_versions_picks_the_older_trained_model(reported_copy: Path):
    """Inference reads the latest trained model by default and the one --load-versions names otherwise."""
    project = reported_copy
    run = runner_for(project)
    (first,) = _versions(project / MODELS_DIR)
    # A second version of the clip model, saved through the catalog's dataset: the first one's weights
    # with noise added (training it again would only cost time; what is tested is which version is read).
    trained = TrainedModelDataset(str(project / MODELS_DIR), version=Version(first, None)).load()
    noise = torch.Generator().manual_seed(7)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=noise) if v.is_floating_point() else v for k, v in trained.state.items()}
    TrainedModelDataset(str(project / MODELS_DIR), version=Version(None, generate_timestamp())).save(dataclasses.replace(trained, state=state))
    (second,) = sorted(set(_versions(project / MODELS_DIR)) - {first})
    assert second > first

    context = run("inference_clip", tags=["predict"])
    latest = context.catalog.load("clip.inference_predictions")
    assert context.catalog.load("clip.inference_info")["input_versions"]["clip.trained_model"] == second
    folder, _, _ = _folder_expectation(project, context)
    size = context.params["preprocessing"]["image_size"]
    some = latest.iloc[::8]
    names = some["image"].tolist()
    from_second = _expected_probabilities(project, second, folder, names, size)
    np.testing.assert_allclose(some["prob_1"], from_second.max(axis=1), atol=1e-5)

    context = run("inference_clip", tags=["predict"], load_versions={"clip.trained_model": first})
    older = context.catalog.load("clip.inference_predictions")
    # The info records which trained model it used (InputVersionsHook), so the run can be traced back.
    assert context.catalog.load("clip.inference_info")["input_versions"]["clip.trained_model"] == first

    some = older.iloc[::8]
    assert some["image"].tolist() == names
    from_first = _expected_probabilities(project, first, folder, names, size)
    np.testing.assert_allclose(some["prob_1"], from_first.max(axis=1), atol=1e-5)
    class_names = context.catalog.load("class_names")
    assert some["label_1"].tolist() == [class_names[i] for i in from_first.argmax(axis=1)]
    # ... and not the latest model's: the two versions predict differently.
    assert np.abs(from_first - from_second).max() > 1e-3
