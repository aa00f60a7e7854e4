"""ModelSpec: the one description of a trained classifier that training writes and inference reads."""

from __future__ import annotations

import json

import pytest

from har_kedro.config.lora import LoraSettings
from har_kedro.config.model_spec import SPEC_FORMAT, ModelSpec, ModelSpecError

SPEC = ModelSpec(
    backbone="data/06_models/tiny_clip", family="clip", method="lora", loss="contrastive",
    class_names=("calling", "clapping"), image_size=32, image_mean=(0.5, 0.5, 0.5), image_std=(0.25, 0.25, 0.25),
    lora=LoraSettings(rank=4, alpha=8.0, targets=("q_proj", "v_proj")), train_text=True,
    class_prompts={"calling": ("a photo of a person calling.",), "clapping": ("someone clapping.",)},
)


def test_the_json_form_round_trips():
    data = json.loads(json.dumps(SPEC.to_dict()))
    assert data["format"] == SPEC_FORMAT and data["lora"]["targets"] == ["q_proj", "v_proj"]
    assert ModelSpec.from_dict(data) == SPEC


def test_the_untyped_config_of_earlier_versions_still_loads():
    legacy = {
        "backbone": "b", "family": "siglip", "method": "lora", "loss": "sigmoid", "class_names": ["a", "b"],
        "image_size": 224, "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "train_text": False, "class_prompts": None,
        "lora": {"rank": 16, "alpha": 32.0, "dropout": 0.0, "targets": ["q_proj"], "towers": ["vision"], "extra": {}},
    }
    spec = ModelSpec.from_dict(legacy)
    assert spec.lora == LoraSettings(rank=16, alpha=32.0, targets=("q_proj",)) and spec.class_names == ("a", "b")


@pytest.mark.parametrize(("change", "named"), [({"colour": "red"}, "unknown keys ['colour']"), ({"family": None}, None)])
def test_a_spec_this_version_cannot_rebuild_is_refused_by_name(change, named):
    data = SPEC.to_dict() | change
    if named is None:  # a missing key
        data.pop("family")
        named = "missing ['family']"
    with pytest.raises(ModelSpecError, match=named.replace("[", r"\[").replace("]", r"\]")):
        ModelSpec.from_dict(data, where="model_config.json")
