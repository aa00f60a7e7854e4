"""CLIP/SigLIP as a 15-way classifier whose head starts as the zero-shot text head.

Initialising the head from prompt-ensembled text embeddings means epoch 0 already scores
the zero-shot accuracy, and fine-tuning starts from what the text tower knows about the
actions instead of from random weights. Every classifier exposes the same two calls the
training loop needs: ``embed(inputs)`` (normalised image embeddings) and ``class_side()``
(normalised class embeddings, logit scale, optional bias).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from har_kedro.models.backbones import Backbone, image_features, text_features, tokenize
from har_kedro.config.augment import AugmentConfig
from har_kedro.models.augment import prepare_eval_batch, prepare_train_batch


@torch.no_grad()
def zero_shot_embeddings(backbone: Backbone, class_names: Sequence[str], class_prompts: Mapping[str, Sequence[str]]) -> torch.Tensor:
    """``(C, D)``: per class, the mean of its L2-normalised prompt embeddings, normalised again.

    Computed on the text tower's device and returned there.
    """
    missing = [name for name in class_names if not class_prompts.get(name)]
    if missing:
        raise ValueError(f"class_prompts has no prompts for {missing}; re-run the preprocessing pipeline")
    texts = [text for name in class_names for text in class_prompts[name]]
    was_training = backbone.model.training
    backbone.model.eval()
    features = F.normalize(text_features(backbone, texts).float(), dim=-1)
    backbone.model.train(was_training)
    out, start = [], 0
    for name in class_names:
        n = len(class_prompts[name])
        out.append(F.normalize(features[start : start + n].mean(dim=0), dim=-1))
        start += n
    return torch.stack(out)


def pretrained_logit_scale_and_bias(backbone: Backbone) -> tuple[float, float | None]:
    """The checkpoint's own temperature (and SigLIP bias): the scale the embeddings were trained at."""
    scale = float(backbone.model.logit_scale.detach().float().item())
    bias = getattr(backbone.model, "logit_bias", None)
    return scale, (float(bias.detach().float().item()) if bias is not None else None)


def draw_in_groups(start: torch.Tensor, count: torch.Tensor, groups: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each of ``groups``, one row of its slice ``[start[g], start[g] + count[g])``, uniformly at random.

    Drawn on the CPU from ``generator`` (the global one when ``None``), as augmentation draws, so a seed fixes
    the draws and a resumed run, whose checkpoint holds that generator, continues them. FLYP draws a prompt of
    each image's class with it (models/flyp.py), pretraining a caption of each image (models/pretrain.py).
    """
    uniform = torch.rand(groups.shape[0], generator=generator, dtype=torch.float64).to(groups.device)
    n = count[groups]
    within = torch.minimum((uniform * n).long(), n - 1)
    return start[groups] + within


class ClassHead(nn.Module):
    """Class embeddings plus log-temperature (and bias for sigmoid-trained models)."""

    def __init__(self, class_embeddings: torch.Tensor, logit_scale: float, logit_bias: float | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(F.normalize(class_embeddings.detach().float(), dim=-1).clone())
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(logit_bias))) if logit_bias is not None else None

    def class_side(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        scale = self.logit_scale.clamp(max=float(torch.log(torch.tensor(200.0)))).exp()
        return F.normalize(self.weight, dim=-1), scale, self.logit_bias


class FeatureClassifier(nn.Module):
    """The head alone, over image features cached once from a frozen backbone (linear probe)."""

    def __init__(self, head: ClassHead) -> None:
        super().__init__()
        self.head = head

    def embed(self, features: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.normalize(features.float(), dim=-1)

    def class_side(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return self.head.class_side()


class ImageClassifier(nn.Module):
    """Vision tower (+ optionally the text tower) and head over uint8 image batches.

    Augmentation and normalisation run here, on the model's device, so the data loader
    only slices the uint8 cache.
    """

    def __init__(
        self,
        backbone: Backbone,
        head: ClassHead,
        augment: AugmentConfig,
        image_size: int | None = None,
        class_prompts: Mapping[str, Sequence[str]] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.model = backbone.model
        self.head = head
        self.augment = augment
        self.image_size = image_size or backbone.image_size
        self.train_text = class_prompts is not None
        if self.train_text:
            assert class_names is not None
            texts = [t for name in class_names for t in class_prompts[name]]
            tokens = tokenize(backbone, texts)
            for key, value in tokens.items():
                self.register_buffer(f"_tokens_{key}", value, persistent=False)
            self._token_keys = tuple(tokens)
            self._prompt_counts = [len(class_prompts[name]) for name in class_names]
            head.weight.requires_grad_(False)

    def embed(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.head.weight.device
        mean, std = self.backbone.image_mean, self.backbone.image_std
        if self.training:
            pixels = prepare_train_batch(images, mean, std, self.image_size, self.augment, device, generator)
        else:
            pixels = prepare_eval_batch(images, mean, std, self.image_size, device)
        return F.normalize(image_features(self.backbone, pixels).float(), dim=-1)

    def class_side(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        embeddings, scale, bias = self.head.class_side()
        if not self.train_text:
            return embeddings, scale, bias
        return self.class_embeddings(self.prompt_features()), scale, bias

    def prompt_features(self) -> torch.Tensor:
        """``(P, D)``: every class prompt through the current text tower, L2-normalised, class by class."""
        tokens = {key: getattr(self, f"_tokens_{key}") for key in self._token_keys}
        output = self.model.get_text_features(**tokens)
        features = getattr(output, "pooler_output", output)
        return F.normalize(features.float(), dim=-1)

    def class_embeddings(self, prompt_features: torch.Tensor) -> torch.Tensor:
        """``(C, D)``: per class, the mean of its prompts' features, normalised again (prompt ensembling)."""
        per_class = torch.split(prompt_features, self._prompt_counts)
        return torch.stack([F.normalize(chunk.mean(dim=0), dim=-1) for chunk in per_class])
