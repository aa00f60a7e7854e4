"""Batched class logits of a classifier in eval mode: what evaluation, reporting and inference all need."""

from __future__ import annotations

import numpy as np
import torch

from har_kedro.models.device import autocast, autocast_dtype
from har_kedro.models.losses import class_logits


def take(inputs: np.ndarray | torch.Tensor, index: np.ndarray) -> torch.Tensor:
    """Rows ``index`` (sorted, so memory-mapped reads stay sequential) as a tensor."""
    if isinstance(inputs, torch.Tensor):
        return inputs[torch.from_numpy(index).to(inputs.device)]
    return torch.from_numpy(np.ascontiguousarray(inputs[index]))


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, inputs: np.ndarray | torch.Tensor, batch_size: int, device: torch.device, amp: str = "auto"
) -> torch.Tensor:
    """``(N, C)`` float32 class logits on the CPU, eval mode (no augmentation).

    ``model`` is any classifier with ``embed(inputs)`` and ``class_side()`` (models/classifier.py).
    """
    was_training = model.training
    model.eval()
    dtype = autocast_dtype(amp, device)
    outputs = []
    with autocast(device, dtype):
        classes, scale, bias = model.class_side()
        for start in range(0, len(inputs), batch_size):
            index = np.arange(start, min(start + batch_size, len(inputs)))
            embeddings = model.embed(take(inputs, index).to(device))
            outputs.append(class_logits(embeddings, classes, scale, bias).float().cpu())
    model.train(was_training)
    if not outputs:
        return torch.empty(0, 0)
    return torch.cat(outputs)
