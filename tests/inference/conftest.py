"""Tiny classifiers and a folder of new images (good, broken and hidden files) for the inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from har_kedro.config.training import TrainConfig
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.prompts import build_class_prompts
from har_kedro.models.backbones import load_backbone
from har_kedro.models.classifier import ImageClassifier
from har_kedro.models.factory import build_classifier
from tests.helpers import encode, photo_crop
from tests.models.conftest import tiny_backbones  # noqa: F401  (shared session fixture)

PROMPTS = build_class_prompts(HAR_CLASSES)
GOOD = ["Image_1.jpg", "Image_2.png", "Image_10.jpg", "nested/Image_3.jpg"]
BAD = {"Image_4.jpg": "corrupt_image", "Image_5.jpg": "empty_file", "Image_6.jpg": "not_an_image"}


def make_classifier(backbone_dir: str, method: str = "full", loss: str = "cross_entropy", image_size: int = 32, seed: int = 0) -> ImageClassifier:
    """A tiny classifier as the runner builds it; LoRA adapters get random non-zero weights, as after training.

    Fresh LoRA adapters are zero (B = 0) and would change nothing, so a merge or export bug
    involving them could not show; random B makes every adapter matter.
    """
    config = TrainConfig.from_params({"method": method, "loss": loss, "lora": {"rank": 4, "alpha": 8.0, "dropout": 0.0}})
    classifier = build_classifier(load_backbone(backbone_dir), HAR_CLASSES, PROMPTS, config, torch.device("cpu"), image_size)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in classifier.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    return classifier.eval()


def write_image_folder(root: Path) -> Path:
    """``GOOD`` images of different sizes and formats (one in a subfolder), the ``BAD`` files, and hidden ones."""
    (root / "nested").mkdir(parents=True)
    sizes = [(60, 40), (33, 50), (48, 48), (70, 35)]
    for index, (name, (width, height)) in enumerate(zip(GOOD, sizes, strict=True)):
        fmt = "PNG" if name.endswith(".png") else "JPEG"
        (root / name).write_bytes(encode(photo_crop(index, width, height), fmt))
    truncated = encode(photo_crop(9, 64, 64), "JPEG")
    (root / "Image_4.jpg").write_bytes(truncated[: len(truncated) // 2])
    (root / "Image_5.jpg").write_bytes(b"")
    (root / "Image_6.jpg").write_text("not an image\n", encoding="utf-8")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "Image_7.jpg").write_bytes(encode(photo_crop(7, 40, 40), "JPEG"))
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "new_images")
