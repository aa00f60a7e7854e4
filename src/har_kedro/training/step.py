"""One micro-batch's forward pass and loss, as a module so DistributedDataParallel can wrap it.

DDP only synchronises gradients of work done inside its ``forward``; the training loop calls a
classifier's ``embed``/``class_side`` (or A-CLIP's ``training_loss``), not ``forward``. This
module gathers that work into one ``forward`` so the same call serves one process (unwrapped)
and several (wrapped by :meth:`har_kedro.training.distributed.Ranks.wrap`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from har_kedro.models.losses import compute_loss

ClassSide = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class TrainStep(nn.Module):
    """``forward(inputs, labels, generator, gather)`` → ``(loss, embeddings, (classes, scale, bias)[, targets])``.

    With ``gather`` (several processes) the embeddings and labels of every process are gathered
    before the loss, so the loss and the returned embeddings are those of the whole micro-batch.
    Models with their own objective (A-CLIP's ``training_loss``) get ``gather`` and apply it themselves;
    one whose classes are not the labels' (image-caption pretraining: the batch's own captions) returns
    the ``targets`` its train accuracy is scored against as a fourth item.
    """

    def __init__(self, model: nn.Module, loss: str, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.options = {"label_smoothing": label_smoothing} if loss == "cross_entropy" else {}

    def forward(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, ...]:
        custom = getattr(self.model, "training_loss", None)
        if custom is not None:
            return custom(inputs, labels, generator, gather=gather)
        embeddings = self.model.embed(inputs, generator)
        classes, scale, bias = self.model.class_side()
        if gather is not None:
            embeddings, labels = gather(embeddings), gather(labels)
        loss = compute_loss(self.loss, embeddings.float(), classes.float(), labels, scale, bias, **self.options)
        return loss, embeddings, (classes, scale, bias)
