"""ONNX export: onnxruntime matches PyTorch on the same images (tiny CLIP and SigLIP, LoRA merged or not)."""

import numpy as np
import pytest
import torch

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.inference.onnx_export import (
    export_onnx,
    has_lora,
    merge_lora,
    onnx_metadata,
    parity_report,
    run_onnx,
    serving_input,
)
from har_kedro.inference.settings import OnnxSettings
from har_kedro.models.predict import predict_logits
from tests.inference.conftest import make_classifier

CPU = torch.device("cpu")


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def _logits(classifier, images):
    return predict_logits(classifier, images, 16, CPU, "off")


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_merging_lora_keeps_the_function_and_the_original(tiny_backbones, family):
    classifier = make_classifier(tiny_backbones[family], method="lora", loss="sigmoid" if family == "siglip" else "cross_entropy")
    without_adapters = make_classifier(tiny_backbones[family], method="full", loss="sigmoid" if family == "siglip" else "cross_entropy")
    images = _images(6, 32)

    merged = merge_lora(classifier)

    assert has_lora(classifier) and not has_lora(merged)
    torch.testing.assert_close(_logits(merged, images), _logits(classifier, images), atol=1e-4, rtol=1e-4)
    # The adapters matter: without them the logits are different.
    assert (_logits(without_adapters, images) - _logits(classifier, images)).abs().max() > 1e-2


CASES = {
    # family, LoRA merged before export, pixel format, decode size (the model's is 32). Each export costs
    # seconds (torch.export), so two cases cover every value of each setting once; the demo run's
    # inference pipeline also exports its three fully fine-tuned models (uint8) and checks their parity.
    "clip-lora-merged-uint8-resized": ("clip", True, "uint8", 40),
    "siglip-lora-unmerged-float": ("siglip", False, "float", 32),
}


@pytest.mark.parametrize("case", list(CASES))
def test_onnxruntime_matches_pytorch(tiny_backbones, case):
    family, merge, pixels, decode_size = CASES[case]
    loss = "sigmoid" if family == "siglip" else "cross_entropy"
    classifier = make_classifier(tiny_backbones[family], method="lora", loss=loss)
    settings = OnnxSettings(pixels=pixels, merge_lora=merge, tolerance=1e-4)

    onnx_model = export_onnx(classifier, HAR_CLASSES, decode_size, settings, metadata={"resample": "bilinear"})

    images = _images(7, decode_size, seed=1)
    report = parity_report(onnx_model, classifier, images, settings)
    assert report["passed"] and report["max_abs_diff_probabilities"] <= 1e-4 and report["top1_agreement"] == 1.0
    assert report["images"] == 7 and report["lora_merged"] is merge and report["tolerance"] == 1e-4

    # Any batch size (the batch axis is dynamic), probabilities that are a softmax of the logits.
    for n in (1, 5):
        logits, probabilities = run_onnx(onnx_model, serving_input(classifier, images[:n], pixels))
        assert logits.shape == probabilities.shape == (n, len(HAR_CLASSES))
        np.testing.assert_allclose(probabilities, torch.softmax(torch.from_numpy(logits), 1).numpy(), atol=1e-6)

    metadata = onnx_metadata(onnx_model)
    assert metadata["class_names"] == list(HAR_CLASSES) and metadata["pixels"] == pixels and metadata["family"] == family
    assert metadata["input_size"] == (decode_size if pixels == "uint8" else 32) and metadata["resample"] == "bilinear"
    assert has_lora(classifier)  # exporting merged left the classifier itself untouched

    # The check can fail: the same export against another model's PyTorch outputs.
    other = make_classifier(tiny_backbones[family], method="lora", loss=loss, seed=7)
    assert not parity_report(onnx_model, other, images, settings)["passed"]


def test_parity_without_images_does_not_pass(tiny_backbones):
    classifier = make_classifier(tiny_backbones["clip"])
    report = parity_report(b"not used", classifier, _images(0, 32), OnnxSettings())
    assert report["passed"] is False and report["images"] == 0 and report["max_abs_diff_probabilities"] is None
