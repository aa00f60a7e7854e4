"""The trained classifier as one ONNX graph (pixels in, logits and probabilities out), checked against PyTorch.

Serving should need neither PyTorch nor transformers nor this project: the exported graph holds
the whole eval path — uint8 to float, the resize from the decode size to the model's input size
(antialiased bilinear, as in evaluation), the normalisation, the vision tower and the class head
with its temperature and bias — and the ONNX metadata records the class names and the pixel
format. The class embeddings are computed once at export, so the text tower is not in the graph.

Export uses PyTorch's ``torch.export``-based exporter (``dynamo=True``, onnxscript): the older
TorchScript exporter cannot translate the antialiased resize (``aten::_upsample_bilinear2d_aa``).
LoRA adapters are folded into the weights first by default, which gives a plain ViT graph.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from har_kedro.inference.predict import predict_probabilities
from har_kedro.inference.settings import OnnxSettings
from har_kedro.models.backbones import image_features
from har_kedro.models.classifier import ImageClassifier
from har_kedro.models.losses import class_logits
from har_kedro.models.predict import predict_logits
from har_kedro.models.augment import prepare_eval_batch

logger = logging.getLogger(__name__)

INPUT_NAME = "pixels"
OUTPUT_NAMES = ("logits", "probabilities")
METADATA_FORMAT = "har_kedro.onnx_classifier/1"
# Loggers that narrate every export step or warn about unrelated optional packages (torchvision).
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir", "torch.fx.experimental.symbolic_shapes")


class OnnxExportError(RuntimeError):
    """The classifier could not be exported; the message says which and what to try."""


def has_lora(module: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(m, LoraLayer) for m in module.modules())


def merge_lora(classifier: ImageClassifier) -> ImageClassifier:
    """A copy of ``classifier`` whose LoRA adapters are added into the base weights and removed.

    The copy computes the same function (up to float rounding) as plain linear layers, which
    export to a smaller, faster graph; ``classifier`` itself is left untouched.
    """
    from peft.tuners.lora import LoraLayer

    merged = copy.deepcopy(classifier)
    names = [name for name, module in merged.named_modules() if isinstance(module, LoraLayer)]
    for name in names:
        layer = merged.get_submodule(name)
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(merged.get_submodule(parent_name) if parent_name else merged, child, layer.get_base_layer())
    return merged


class ServingClassifier(nn.Module):
    """``pixels -> (logits, probabilities)`` with everything but decoding inside.

    ``pixels="uint8"``: ``(B, S, S, 3)`` uint8 as :func:`~har_kedro.data.decoding.decode_square`
    returns (S = the decode size; resized to the model's size inside when they differ).
    ``pixels="float"``: ``(B, 3, H, W)`` float32 already normalised with the model's mean/std
    at its input size, like a HuggingFace image processor's ``pixel_values``.
    """

    def __init__(self, classifier: ImageClassifier, pixels: str = "uint8") -> None:
        super().__init__()
        self.model = classifier.model
        self._backbone = classifier.backbone  # a plain dataclass: image_features() needs it
        self.image_size = int(classifier.image_size)
        self.mean = tuple(float(v) for v in classifier.backbone.image_mean)
        self.std = tuple(float(v) for v in classifier.backbone.image_std)
        self.pixels = pixels
        with torch.no_grad():
            classes, scale, bias = classifier.class_side()
        self.register_buffer("classes", classes.detach().float().clone())
        self.register_buffer("scale", scale.detach().float().clone())
        self.register_buffer("bias", bias.detach().float().clone() if bias is not None else torch.zeros(()))
        self.has_bias = bias is not None

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pixels == "uint8":
            pixels = prepare_eval_batch(pixels, self.mean, self.std, self.image_size, pixels.device)
        embeddings = F.normalize(image_features(self._backbone, pixels).float(), dim=-1)
        logits = class_logits(embeddings, self.classes, self.scale, self.bias if self.has_bias else None)
        return logits, torch.softmax(logits, dim=-1)


def example_input(pixels: str, input_size: int, image_size: int, batch: int = 2) -> torch.Tensor:
    """A batch in the serving format (2 images: a batch of 1 would let the exporter fix the batch size)."""
    generator = torch.Generator().manual_seed(0)
    if pixels == "uint8":
        return torch.randint(0, 256, (batch, input_size, input_size, 3), dtype=torch.uint8, generator=generator)
    return torch.randn(batch, 3, image_size, image_size, generator=generator)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    try:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            # torch.export's own pytree code calls an API it has deprecated; nothing a user can act on.
            warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*", category=FutureWarning)
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def on_host(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` if it is on the CPU, else a CPU copy: export and the parity check run on the host and leave
    a model trained or served on a GPU where it is."""
    if all(t.device.type == "cpu" for t in itertools.chain(model.parameters(), model.buffers())):
        return model
    return copy.deepcopy(model).cpu()


def export_onnx(
    classifier: ImageClassifier,
    class_names: Sequence[str],
    input_size: int,
    settings: OnnxSettings,
    metadata: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialized ONNX model of ``classifier`` (left in eval mode) with a dynamic batch axis.

    ``input_size`` is the side of the uint8 images fed in (the decode size); ``metadata`` is
    added to the model's ``metadata_props`` next to the class names, sizes and pixel format.
    """
    import onnx

    source = merge_lora(classifier) if settings.merge_lora and has_lora(classifier) else classifier
    serving = ServingClassifier(on_host(source), settings.pixels).eval()
    if len(class_names) != serving.classes.shape[0]:
        raise ValueError(f"{len(class_names)} class names for a head of {serving.classes.shape[0]} classes; pass the trained model's class_names.")
    example = example_input(settings.pixels, input_size, serving.image_size)
    batch = torch.export.Dim("batch", min=1)
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                serving, (example,), dynamo=True, verbose=False, opset_version=settings.opset,
                input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), dynamic_shapes={"pixels": {0: batch}},
            )
    except Exception as exc:  # noqa: BLE001 - every exporter failure gets the same one-sentence message
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OnnxExportError(
            f"ONNX export of the {serving._backbone.family} classifier failed ({type(exc).__name__}: {first_line}); "
            f"try inference.onnx.merge_lora: true or another inference.onnx.opset, or leave the onnx nodes out "
            f"(kedro run ... --tags=predict)."
        ) from exc
    proto = program.model_proto
    properties = {
        "format": METADATA_FORMAT,
        "class_names": list(class_names),
        "pixels": settings.pixels,
        "input_size": input_size if settings.pixels == "uint8" else serving.image_size,
        "model_image_size": serving.image_size,
        "image_mean": list(serving.mean),
        "image_std": list(serving.std),
        "family": serving._backbone.family,
        "lora_merged": bool(settings.merge_lora and has_lora(classifier)),
        **dict(metadata or {}),
    }
    onnx.helper.set_model_props(proto, {key: json.dumps(value) for key, value in properties.items()})
    return proto.SerializeToString()


def onnx_metadata(onnx_model: bytes) -> dict[str, Any]:
    """The ``metadata_props`` :func:`export_onnx` wrote, JSON-decoded."""
    import onnx

    proto = onnx.load_from_string(onnx_model)
    return {prop.key: json.loads(prop.value) for prop in proto.metadata_props}


def run_onnx(onnx_model: bytes, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, probabilities)`` of the exported model under onnxruntime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    logits, probabilities = session.run(list(OUTPUT_NAMES), {INPUT_NAME: pixels})
    return np.asarray(logits), np.asarray(probabilities)


def serving_input(classifier: ImageClassifier, images: np.ndarray, pixels: str) -> np.ndarray:
    """What the exported model takes for uint8 ``(N, S, S, 3)`` ``images``."""
    if pixels == "uint8":
        return np.ascontiguousarray(images, dtype=np.uint8)
    mean, std = classifier.backbone.image_mean, classifier.backbone.image_std
    return prepare_eval_batch(images, mean, std, classifier.image_size, "cpu").numpy()


def parity_report(
    onnx_model: bytes, classifier: ImageClassifier, images: np.ndarray, settings: OnnxSettings, batch_size: int = 64
) -> dict[str, Any]:
    """How far onnxruntime's outputs are from PyTorch's on the same uint8 images, and whether that is within tolerance.

    The PyTorch side is the inference path itself (the rebuilt classifier, adapters unmerged,
    fp32 on the CPU), so the report covers the export wrapper and the LoRA merge as well.
    """
    import onnxruntime  # optional at import time: only the parity check needs it

    report: dict[str, Any] = {
        "images": int(len(images)),
        "tolerance": float(settings.tolerance),
        "pixels": settings.pixels,
        "opset": settings.opset,
        "lora_merged": bool(settings.merge_lora and has_lora(classifier)),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
    }
    if not len(images):
        logger.warning("ONNX parity: no decodable image to compare on; the check did not run.")
        return {**report, "max_abs_diff_probabilities": None, "max_abs_diff_logits": None, "top1_agreement": None, "passed": False}
    cpu = torch.device("cpu")
    classifier = on_host(classifier).eval()
    torch_logits = predict_logits(classifier, images, batch_size, cpu, amp="off").numpy()
    torch_probabilities = predict_probabilities(classifier, images, batch_size, cpu, amp="off")
    onnx_logits, onnx_probabilities = run_onnx(onnx_model, serving_input(classifier, images, settings.pixels))
    diff = float(np.abs(onnx_probabilities - torch_probabilities).max())
    report.update(
        max_abs_diff_probabilities=diff,
        max_abs_diff_logits=float(np.abs(onnx_logits - torch_logits).max()),
        top1_agreement=float((onnx_probabilities.argmax(1) == torch_probabilities.argmax(1)).mean()),
        passed=bool(diff <= settings.tolerance),
    )
    log = logger.info if report["passed"] else logger.warning
    log("ONNX parity on %d images: max |p_onnx - p_torch| = %.2e (tolerance %.0e): %s",
        len(images), diff, settings.tolerance, "pass" if report["passed"] else "FAIL")
    return report
