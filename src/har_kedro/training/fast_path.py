"""The GPU fast path: where the uint8 cache lives, how batches reach the device, and speed-only model settings.

Nothing here changes what an epoch computes (beyond float rounding): the same samples reach the
model in the same order, augmented by the same random numbers. What changes is how much the host
and the device wait for each other. On CUDA a blocking host→device copy, an ``.item()`` or a
``float(tensor)`` makes the CPU wait until every queued kernel has run; while it waits it cannot
queue the next step, and while it then slices, pins and copies the next batch the GPU idles. So:

* ``cache_on_device`` (:func:`resolve_cache_mode`, :class:`BatchFeed`):
  ``device``: the uint8 train/val arrays are copied to the GPU once; each epoch's sample order goes
  up in one non-blocking copy and every micro-batch is gathered on the device (no host work per step).
  ``stream``: a background thread gathers the next micro-batches' rows straight into pinned host
  buffers while the GPU works; each goes up with one non-blocking copy (for caches too big for the GPU).
  ``host``: CPU and MPS runs: rows are sliced and handed over as before, so a CPU run is unchanged.
* ``tf32`` (:func:`set_tf32`): fp32 matmuls and convolutions on TF32 tensor cores (what autocast leaves
  in fp32: the loss, the head).
* ``activation_checkpointing`` (:func:`enable_activation_checkpointing`): Hugging Face's per-layer
  checkpointing with ``use_reentrant=False``; the reentrant variant gives LoRA adapters no gradient
  when the layer input does not require one.
* ``compile`` / ``compile_mode`` (:func:`compile_vision_layers`): ``torch.compile`` of each vision
  encoder layer ("regional" compilation: the identical layers share one compiled graph, so compiling
  costs about one layer, and A-CLIP's online and EMA towers, which call the layers directly, get it too).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from har_kedro.config.training import CACHE_MODES, COMPILE_MODES, TrainConfig
from har_kedro.models.backbones import Backbone
from har_kedro.models.classifier import ImageClassifier
from har_kedro.models.device import upload
from har_kedro.models.factory import build_classifier

logger = logging.getLogger(__name__)

# ``cache_on_device: auto`` keeps the arrays on the GPU only while they take at most this share of
# the memory free before training; the rest is left to weights, optimizer state and activations.
DEVICE_CACHE_FRACTION = 0.25
# Micro-batches the ``stream`` mode gathers ahead of the one being trained on.
PREFETCH_DEPTH = 2
_UPLOAD_CHUNK_BYTES = 64 * 2**20
_Model = TypeVar("_Model", bound=nn.Module)

__all__ = [
    "CACHE_MODES",
    "COMPILE_MODES",
    "BatchFeed",
    "DeviceCacheError",
    "apply_speed_settings",
    "compile_vision_layers",
    "enable_activation_checkpointing",
    "gather_rows",
    "nbytes",
    "resolve_cache_mode",
    "set_tf32",
    "training_classifier",
]


class DeviceCacheError(ValueError):
    """``cache_on_device: true`` was asked for but the cache does not fit in the GPU's free memory."""


def nbytes(inputs: np.ndarray | torch.Tensor) -> int:
    if isinstance(inputs, torch.Tensor):
        return inputs.numel() * inputs.element_size()
    return int(inputs.nbytes)


def resolve_cache_mode(setting: bool | str, device: torch.device, size_bytes: int) -> str:
    """``device``, ``stream`` or ``host`` for a cache of ``size_bytes`` on ``device`` (see the module docstring).

    Off CUDA it is always ``host``: there is no separate device memory to fill and nothing to overlap.
    """
    if device.type != "cuda":
        return "host"
    if setting is False:
        return "stream"
    free, _total = torch.cuda.mem_get_info(device)
    if setting is True:
        if size_bytes > free:
            raise DeviceCacheError(
                f"cache_on_device is true but the train and val images need {size_bytes / 2**30:.1f} GiB and "
                f"{device} has {free / 2**30:.1f} GiB free: set cache_on_device: auto (streams them from pinned memory) or false."
            )
        return "device"
    return "device" if size_bytes <= DEVICE_CACHE_FRACTION * free else "stream"


# --------------------------------------------------------------------------- moving data


def gather_rows(inputs: np.ndarray | torch.Tensor, index: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
    """Rows ``index`` of a host array or tensor as a tensor, written into ``out`` when given (one copy)."""
    if isinstance(inputs, torch.Tensor):
        rows = torch.from_numpy(np.asarray(index, dtype=np.int64)).to(inputs.device)
        if out is None:
            return inputs.index_select(0, rows)
        return torch.index_select(inputs, 0, rows, out=out)
    if out is None:
        return torch.from_numpy(np.ascontiguousarray(inputs[index]))
    # mode="clip" avoids numpy's buffered bounds check; the indices come from a permutation of range(len).
    np.take(inputs, index, axis=0, out=out.numpy(), mode="clip")
    return out


def to_device_once(inputs: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """The whole array on ``device``, copied in chunks of about 64 MiB (a memory-mapped cache is never read whole into RAM)."""
    if isinstance(inputs, torch.Tensor) and inputs.device == device:
        return inputs
    dtype = inputs.dtype if isinstance(inputs, torch.Tensor) else torch.from_numpy(np.empty(0, dtype=inputs.dtype)).dtype
    out = torch.empty(tuple(inputs.shape), dtype=dtype, device=device)
    row_bytes = max(1, nbytes(inputs) // max(len(inputs), 1))
    rows = max(1, _UPLOAD_CHUNK_BYTES // row_bytes)
    for start in range(0, len(inputs), rows):
        part = inputs[start : start + rows]
        part = part if isinstance(part, torch.Tensor) else torch.from_numpy(np.require(part, requirements=["C", "W"]))
        out[start : start + len(part)].copy_(part)
    return out


class BatchFeed:
    """The training split's micro-batches, ``(inputs, labels)`` on the device, in the order the loop trains them.

    ``mode`` is what :func:`resolve_cache_mode` chose. ``pin`` (default: on CUDA) puts the ``stream``
    mode's host buffers in pinned memory; it exists so the prefetching logic can be tested on a CPU.
    """

    def __init__(
        self,
        inputs: np.ndarray | torch.Tensor,
        labels: np.ndarray | Sequence[int],
        device: torch.device,
        mode: str = "host",
        prefetch: int = PREFETCH_DEPTH,
        pin: bool | None = None,
    ) -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"BatchFeed mode is {mode!r}; use one of {list(CACHE_MODES)}.")
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}.")
        self.mode = mode
        self.device = device
        self.prefetch = prefetch
        self.pin = device.type == "cuda" if pin is None else pin
        self.labels = np.asarray(labels, dtype=np.int64)
        self.inputs = to_device_once(inputs, device) if mode == "device" else inputs
        self._device_labels = torch.from_numpy(self.labels).to(device) if mode == "device" else None
        if mode != "host":
            logger.info(
                "Training inputs (%.2f GiB): %s", nbytes(inputs) / 2**30,
                f"kept on {device}" if mode == "device" else f"streamed to {device} from pinned memory, {prefetch} micro-batches ahead",
            )

    def place(self, inputs: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Another split's inputs (validation) where this feed keeps its own: on the device in ``device`` mode."""
        return to_device_once(inputs, self.device) if self.mode == "device" else inputs

    def epoch(self, steps: Sequence[Sequence[np.ndarray]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One ``(inputs, labels)`` per micro-batch index array of ``steps`` (optimizer steps of micro-batches)."""
        micro = [np.asarray(index) for step in steps for index in step]
        if self.mode == "device":
            return self._from_device(micro)
        if self.mode == "stream":
            return self._streamed(micro)
        return self._from_host(micro)

    def _from_host(self, micro: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in micro:
            inputs = gather_rows(self.inputs, index)
            labels = torch.from_numpy(self.labels[index])
            yield inputs.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def _from_device(self, micro: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        assert self._device_labels is not None and isinstance(self.inputs, torch.Tensor)
        order = np.concatenate(micro) if micro else np.empty(0, dtype=np.int64)
        rows = upload(torch.from_numpy(order.astype(np.int64, copy=False)), self.device)  # one copy per epoch
        start = 0
        for index in micro:
            part = rows[start : start + len(index)]
            start += len(index)
            yield self.inputs.index_select(0, part), self._device_labels.index_select(0, part)

    def _gather(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows and labels of one micro-batch in (pinned) host buffers; runs on the prefetch thread."""
        dtype = self.inputs.dtype if isinstance(self.inputs, torch.Tensor) else torch.from_numpy(np.empty(0, dtype=self.inputs.dtype)).dtype
        inputs = torch.empty((len(index), *self.inputs.shape[1:]), dtype=dtype, pin_memory=self.pin)
        gather_rows(self.inputs, index, inputs)
        labels = torch.empty(len(index), dtype=torch.int64, pin_memory=self.pin)
        labels.numpy()[:] = self.labels[index]
        return inputs, labels

    def _streamed(self, micro: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="har-prefetch")
        pending: deque[Future[tuple[torch.Tensor, torch.Tensor]]] = deque()
        try:
            for index in micro[: self.prefetch]:
                pending.append(pool.submit(self._gather, index))
            queued = len(pending)
            while pending:
                inputs, labels = pending.popleft().result()
                if queued < len(micro):
                    pending.append(pool.submit(self._gather, micro[queued]))
                    queued += 1
                # Pinned host memory: the copies are queued and the host goes on at once.
                yield inputs.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- model settings


def set_tf32(enabled: bool) -> None:
    """TF32 tensor cores for fp32 CUDA matmuls and convolutions (``ieee`` restores full fp32)."""
    precision = "tf32" if enabled else "ieee"
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision


def _hf_models(model: nn.Module) -> list[nn.Module]:
    """The Hugging Face models inside ``model`` (the backbone of an ``ImageClassifier``), outermost only."""
    from transformers import PreTrainedModel

    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        inside_found = any(name.startswith(f"{outer}.") for outer in found) or ("" in found)
        if isinstance(module, PreTrainedModel) and not inside_found:
            found[name] = module
    return list(found.values())


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Checkpoint every encoder layer of the backbone (non-reentrant); returns how many models it was turned on in.

    Only layers run in training mode are checkpointed, so evaluation is unaffected. A-CLIP's EMA
    tower, a copy made before this is called and run without gradients, is left as it is.
    """
    models = _hf_models(model)
    for hf_model in models:
        kwargs = {"use_reentrant": False}
        if hasattr(hf_model, "activation_checkpointing_enable"):
            hf_model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:  # transformers 5 releases before the rename
            hf_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return len(models)


def _vision_layers(model: nn.Module) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for name, module in model.named_modules():
        if (name == "vision_model.encoder" or name.endswith(".vision_model.encoder")) and hasattr(module, "layers"):
            layers.extend(module.layers)
    return layers


def compile_vision_layers(model: nn.Module, mode: str = "default", backend: str = "inductor") -> int:
    """``torch.compile`` each vision encoder layer in place (parameter names unchanged); returns the layer count.

    ``mode`` only applies to the inductor backend; tests pass ``backend="eager"`` to check the graph
    capture without waiting for code generation.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode is {mode!r}; use one of {list(COMPILE_MODES)}.")
    options: dict[str, Any] = {"backend": backend}
    if backend == "inductor":
        options["mode"] = mode
    layers = _vision_layers(model)
    for layer in layers:
        layer.compile(**options)
    return len(layers)


def apply_speed_settings(model: _Model, config: TrainConfig, device: torch.device, compile_backend: str = "inductor") -> _Model:
    """TF32 (CUDA only), activation checkpointing and ``torch.compile`` as ``config`` asks; returns ``model``."""
    if device.type == "cuda":
        set_tf32(config.tf32)
    if config.activation_checkpointing:
        enable_activation_checkpointing(model)
    if config.compile:
        count = compile_vision_layers(model, config.compile_mode, compile_backend)
        logger.info("torch.compile (%s, mode %s) on %d vision encoder layers", compile_backend, config.compile_mode, count)
    return model


def training_classifier(
    backbone: Backbone,
    class_names: Sequence[str],
    class_prompts: Mapping[str, Sequence[str]],
    config: TrainConfig,
    device: torch.device,
    image_size: int,
) -> ImageClassifier:
    """:func:`~har_kedro.models.factory.build_classifier` with the run's speed settings (after A-CLIP's EMA copy)."""
    model = build_classifier(backbone, class_names, class_prompts, config, device, image_size)
    return apply_speed_settings(model, config, device)
