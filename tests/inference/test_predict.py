import numpy as np
import pandas as pd
import pytest
import torch

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.decoding import decode_into
from har_kedro.inference.predict import (
    BAD_FILE_COLUMNS,
    predict_folder,
    prediction_columns,
    top_k_frame,
)
from har_kedro.inference.settings import InferenceConfigError, InferenceSettings
from har_kedro.models.predict import predict_logits
from tests.inference.conftest import BAD, GOOD, make_classifier

CPU = torch.device("cpu")


def test_top_k_frame_ranks_classes_by_probability():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(5), size=4).astype(np.float32)
    names = ["a", "b", "c", "d", "e"]
    frame = top_k_frame(["w.jpg", "x.jpg", "y.jpg", "z.jpg"], probabilities, names, 3)
    assert list(frame.columns) == ["image", "label_1", "prob_1", "label_2", "prob_2", "label_3", "prob_3"] == prediction_columns(3)
    for row, p in zip(frame.itertuples(index=False), probabilities, strict=True):
        ranked = sorted(range(5), key=lambda i: -p[i])[:3]
        assert [row.label_1, row.label_2, row.label_3] == [names[i] for i in ranked]
        assert [row.prob_1, row.prob_2, row.prob_3] == [p[i] for i in ranked]
    tied = top_k_frame(["t.jpg"], np.full((1, 5), 0.2), names, 5)
    assert tied.iloc[0][[f"label_{k}" for k in range(1, 6)]].tolist() == names  # ties keep class order
    assert list(top_k_frame([], np.zeros((0, 5)), names, 2).columns) == prediction_columns(2)


@pytest.fixture(scope="module")
def clip_classifier(tiny_backbones):
    return make_classifier(tiny_backbones["clip"], method="lora")


def _settings(folder, **overrides):
    params = {"images_dir": str(folder), "recursive": True, "top_k": 3, "batch_size": 2, "device": "cpu", "num_workers": 1, "progress": False}
    return InferenceSettings.from_params(params | overrides, {"image_size": 40, "resample": "bilinear"})


def test_every_good_image_gets_its_top_k_and_every_bad_file_a_reason(clip_classifier, image_folder):
    result = predict_folder(clip_classifier, HAR_CLASSES, _settings(image_folder), CPU)
    predictions, bad = result.predictions, result.bad_files

    assert sorted(predictions["image"]) == sorted(GOOD)
    assert list(bad.columns) == BAD_FILE_COLUMNS and dict(zip(bad["image"], bad["category"], strict=True)) == BAD
    probs = predictions[["prob_1", "prob_2", "prob_3"]].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all() and (np.diff(probs, axis=1) <= 0).all()
    assert predictions[["label_1", "label_2", "label_3"]].nunique(axis=1).eq(3).all()
    assert result.info["files"] == len(GOOD) + len(BAD) and result.info["predicted"] == len(GOOD) and result.info["bad_files"] == len(BAD)
    assert result.info["decode_size"] == 40 and result.info["model_image_size"] == 32

    # The same numbers as the training code's own scoring of preprocessing-decoded images.
    images = np.zeros((len(predictions), 40, 40, 3), np.uint8)
    decode_into([str(image_folder / p) for p in predictions["image"]], images, 40, "bilinear", num_workers=1, progress=False)
    expected = torch.softmax(predict_logits(clip_classifier, images, 8, CPU, "off"), dim=1).numpy()
    np.testing.assert_allclose(predictions["prob_1"], expected.max(axis=1), rtol=1e-5)
    assert predictions["label_1"].tolist() == [HAR_CLASSES[i] for i in expected.argmax(axis=1)]


def test_batching_does_not_change_the_predictions(clip_classifier, image_folder):
    small = predict_folder(clip_classifier, HAR_CLASSES, _settings(image_folder, batch_size=1), CPU).predictions
    large = predict_folder(clip_classifier, HAR_CLASSES, _settings(image_folder, batch_size=64), CPU).predictions
    pd.testing.assert_frame_equal(small, large, atol=1e-6)


def test_folder_of_only_bad_files_gives_no_predictions_and_every_reason(clip_classifier, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    result = predict_folder(clip_classifier, HAR_CLASSES, _settings(tmp_path), CPU)
    assert len(result.predictions) == 0 and list(result.predictions.columns) == prediction_columns(3)
    assert result.bad_files["image"].tolist() == ["empty.jpg"]


def test_top_k_larger_than_the_classes_is_an_error(clip_classifier, image_folder):
    with pytest.raises(InferenceConfigError, match="inference.top_k is 16 but the model has only 15 classes"):
        predict_folder(clip_classifier, HAR_CLASSES, _settings(image_folder, top_k=16), CPU)
