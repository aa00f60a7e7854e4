"""FLYP (Goyal et al., "Finetune like you pretrain", CVPR 2023): fine-tune with the pre-training objective.

Each training step pairs every image with ONE prompt of its class, drawn uniformly per image from
that class's prompts, and trains both towers (and both projections) with CLIP's contrastive loss
between the batch's images and those texts, at the head's learned temperature (initialised from the
checkpoint's own ``logit_scale``). Same-class pairs are positives (:func:`paired_contrastive_loss`).

The prompts are drawn from the training loop's CPU generator, the one augmentation draws from, so a
seed gives the same prompts, and a resumed run, whose checkpoint holds that generator's state,
continues with the prompts an uninterrupted run would have drawn. The text tower runs once per
micro-batch over every class prompt (15 classes × a few prompts); each image's text is a row of that.

Evaluation and prediction are the ``ImageClassifier``'s with class prompts: the zero-shot head of the
*current* text tower (per class, the mean of its normalised prompt embeddings). The saved model is
therefore rebuilt as a plain ``ImageClassifier`` with the class prompts (``ModelSpec.train_text``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from har_kedro.config.augment import AugmentConfig
from har_kedro.models.backbones import Backbone
from har_kedro.models.classifier import ClassHead, ImageClassifier, draw_in_groups
from har_kedro.models.losses import paired_contrastive_loss

ClassSide = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class FlypClassifier(ImageClassifier):
    """An ``ImageClassifier`` whose training objective is FLYP's image–prompt contrastive loss."""

    def __init__(
        self,
        backbone: Backbone,
        head: ClassHead,
        augment: AugmentConfig,
        class_prompts: Mapping[str, Sequence[str]],
        class_names: Sequence[str],
        image_size: int | None = None,
    ) -> None:
        super().__init__(backbone, head, augment, image_size=image_size, class_prompts=class_prompts, class_names=class_names)
        counts = torch.tensor(self._prompt_counts, dtype=torch.long)
        # Class c's prompts are rows [start[c], start[c] + count[c]) of prompt_features().
        self.register_buffer("_prompt_start", torch.cumsum(counts, 0) - counts, persistent=False)
        self.register_buffer("_prompt_count", counts, persistent=False)

    def sample_prompts(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B,)`` rows of :meth:`prompt_features`: for each image, one prompt of its class, uniformly at random.

        Drawn on the CPU from ``generator`` (the global one when ``None``), as augmentation draws.
        """
        return draw_in_groups(self._prompt_start, self._prompt_count, labels, generator)

    def training_loss(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, ClassSide]:
        """FLYP's loss for one micro-batch, the normalised image embeddings, and the (prompt-ensembled) class side.

        With several processes ``gather`` joins every process's image embeddings, sampled texts and
        labels before the loss: each text row is gathered like its image row, so the gather's gradient
        rule (training/distributed.py) gives the text tower the one-process gradient too.
        """
        embeddings = self.embed(images, generator)
        prompts = self.prompt_features()
        texts = prompts[self.sample_prompts(labels, generator)]
        _, scale, bias = self.head.class_side()
        classes = self.class_embeddings(prompts.detach())  # for the epoch's train accuracy only
        if gather is not None:
            embeddings, texts, labels = gather(embeddings), gather(texts), gather(labels)
        loss = paired_contrastive_loss(embeddings.float(), texts.float(), labels, scale)
        return loss, embeddings, (classes, scale, bias)
