"""Contrastive image-caption pretraining of a CLIP or SigLIP backbone, as a module the training loop trains.

This is how CLIP and SigLIP were made, at any scale: each image is paired with one of its captions, and
the two towers learn to score matching pairs above the others in the batch, with CLIP's InfoNCE
(``loss: contrastive``) or SigLIP's pairwise sigmoid loss (``loss: sigmoid``), at a learned temperature
(and bias). Two choices about captions, both so that the loss never asks to push a true description away:

* An image with several captions is paired with one of them per step, drawn uniformly from the loop's CPU
  generator (the one augmentation draws from), so a seed fixes the draws and a resumed run continues them.
* Identical caption texts share one caption id (``data/caption_cache.py``); two images in a batch that
  carry the same text are positives for each other, in both directions, as same-class pairs are in
  fine-tuning (:func:`~har_kedro.models.losses.paired_contrastive_loss`, ``paired_sigmoid_loss``).

The module is an :class:`~har_kedro.models.classifier.ImageClassifier` whose "classes" are the held-out
captions: evaluation (and the loop's val accuracy) is image-to-caption retrieval top-1 over every val
caption. The temperature and bias train in the head and go back into the backbone when it is saved
(:meth:`CaptionPretrainer.pretrained_backbone`), so the saved model is a plain HF checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from har_kedro.config.augment import AugmentConfig
from har_kedro.models.backbones import Backbone, tokenize
from har_kedro.models.classifier import ClassHead, ImageClassifier, draw_in_groups, pretrained_logit_scale_and_bias
from har_kedro.models.losses import paired_contrastive_loss, paired_sigmoid_loss

ClassSide = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
PRETRAIN_LOSSES = ("contrastive", "sigmoid")


def _first_rows(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For a batch of caption ids: the first row of each distinct id, and each row's index among them."""
    unique, inverse = torch.unique(ids, return_inverse=True)
    rows = torch.arange(len(ids), device=ids.device)
    first = torch.full((len(unique),), len(ids), dtype=torch.long, device=ids.device).scatter_reduce(0, inverse, rows, "amin")
    return first, inverse


class CaptionPretrainer(ImageClassifier):
    """Both towers of ``backbone`` trained on (image, caption) pairs; the val captions are its classes."""

    def __init__(
        self,
        backbone: Backbone,
        captions: Sequence[str],
        caption_index: tuple[np.ndarray, np.ndarray, np.ndarray],
        val_captions: Sequence[int],
        loss: str,
        augment: AugmentConfig,
        image_size: int | None = None,
        logit_scale: float | None = None,
        logit_bias: float | None = None,
    ) -> None:
        if loss not in PRETRAIN_LOSSES:
            raise ValueError(f"pretraining loss is '{loss}'; use one of {list(PRETRAIN_LOSSES)}")
        scale, bias = pretrained_logit_scale_and_bias(backbone)
        bias = logit_bias if logit_bias is not None else (bias if bias is not None else (-10.0 if loss == "sigmoid" else None))
        head = ClassHead(torch.zeros(len(val_captions), backbone.embed_dim), scale if logit_scale is None else logit_scale, bias)
        names = [str(i) for i in val_captions]
        super().__init__(backbone, head, augment, image_size, {str(i): [captions[i]] for i in val_captions}, names)
        self.loss = loss
        tokens = tokenize(backbone, list(captions))
        for key, value in tokens.items():
            self.register_buffer(f"_caption_{key}", value, persistent=False)
        self._caption_keys = tuple(tokens)
        start, count, ids = (torch.as_tensor(np.array(a, dtype=np.int64)) for a in caption_index)  # copies: the cache is read-only
        self.register_buffer("_start", start, persistent=False)
        self.register_buffer("_count", count, persistent=False)
        self.register_buffer("_ids", ids, persistent=False)

    def sample_captions(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B,)`` caption ids: for each training image (by index), one of its captions, uniformly at random."""
        return self._ids[draw_in_groups(self._start, self._count, images, generator)]

    def caption_features(self, ids: torch.Tensor) -> torch.Tensor:
        """``(len(ids), D)`` L2-normalised text embeddings of the captions ``ids`` (each distinct one encoded once)."""
        first, inverse = _first_rows(ids)
        distinct = ids[first]
        tokens = {key: getattr(self, f"_caption_{key}")[distinct] for key in self._caption_keys}
        output = self.model.get_text_features(**tokens)
        features = F.normalize(getattr(output, "pooler_output", output).float(), dim=-1)
        return features[inverse]

    def training_loss(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, ClassSide, torch.Tensor]:
        """The loss of one micro-batch of training images (``labels``: their indices), the image embeddings,
        the batch's distinct captions as the class side, and each image's target among them (train accuracy)."""
        embeddings = self.embed(images, generator)
        ids = self.sample_captions(labels, generator)
        texts = self.caption_features(ids)
        _, scale, bias = self.head.class_side()
        if gather is not None:  # several processes: every text row gathered like its image row
            embeddings, texts, ids = gather(embeddings), gather(texts), gather(ids)
        if self.loss == "sigmoid":
            assert bias is not None
            loss = paired_sigmoid_loss(embeddings.float(), texts.float(), ids, scale, bias)
        else:
            loss = paired_contrastive_loss(embeddings.float(), texts.float(), ids, scale)
        first, targets = _first_rows(ids)
        return loss, embeddings, (texts.detach()[first], scale, bias), targets

    def pretrained_backbone(self) -> Backbone:
        """The backbone with the learned temperature (and bias) written back into the model's own ``logit_scale``."""
        model = self.backbone.model
        with torch.no_grad():
            model.logit_scale.copy_(self.head.logit_scale.detach().to(model.logit_scale.dtype))
            if self.head.logit_bias is not None and getattr(model, "logit_bias", None) is not None:
                model.logit_bias.copy_(self.head.logit_bias.detach().to(model.logit_bias.dtype))
        return self.backbone
