import pytest

from har_kedro.data.errors import DataInputError
from har_kedro.inference.settings import (
    InferenceConfigError,
    InferenceSettings,
    OnnxSettings,
)

PREPROCESSING = {"image_size": 64, "resample": "bicubic"}


def test_decode_settings_default_to_preprocessing_and_can_be_overridden():
    settings = InferenceSettings.from_params({"images_dir": "x"}, PREPROCESSING)
    assert (settings.image_size, settings.resample) == (64, "bicubic")
    assert settings.onnx == OnnxSettings()
    own = InferenceSettings.from_params({"images_dir": "x", "image_size": 32, "resample": "nearest", "onnx": {"pixels": "float"}}, PREPROCESSING)
    assert (own.image_size, own.resample, own.onnx.pixels) == (32, "nearest", "float")


def test_the_shipped_parameters_are_valid():
    import yaml

    from tests.pipelines.conftest import REPO

    base = yaml.safe_load((REPO / "conf/base/parameters_inference.yml").read_text())["inference"]
    demo = yaml.safe_load((REPO / "conf/demo/parameters_inference.yml").read_text())["inference"]
    assert InferenceSettings.from_params(base, PREPROCESSING).images_dir == "data/01_raw/har/test"
    assert InferenceSettings.from_params(base | demo, PREPROCESSING).images_dir == "data/demo/01_raw/har/train"


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"images_dir": "x", "topk": 3}, "['topk']"),
        ({"images_dir": "x", "top_k": 0}, "inference.top_k"),
        ({"images_dir": "x", "batch_size": "8"}, "inference.batch_size"),
        ({"images_dir": "x", "resample": "cubic"}, "inference.resample"),
        ({"images_dir": "x", "image_size": 4}, "inference.image_size"),
        ({"images_dir": "x", "amp": "fp8"}, "inference.amp"),
        ({"images_dir": "x", "num_workers": -1}, "inference.num_workers"),
        ({"images_dir": "x", "onnx": {"pixels": "rgb"}}, "inference.onnx.pixels"),
        ({"images_dir": "x", "onnx": {"opset": 13}}, "inference.onnx.opset"),
        ({"images_dir": "x", "onnx": {"tolerance": 0}}, "inference.onnx.tolerance"),
        ({"images_dir": "x", "onnx": {"parity": 3}}, "['parity']"),
    ],
)
def test_bad_values_name_the_key(params, names):
    with pytest.raises(InferenceConfigError, match=f".*{names.replace('[', '.').replace(']', '.')}.*"):
        InferenceSettings.from_params(params, PREPROCESSING)


def test_empty_images_dir_names_the_parameter():
    with pytest.raises(DataInputError, match="inference.images_dir is empty"):
        InferenceSettings.from_params({"images_dir": " "}, PREPROCESSING)
