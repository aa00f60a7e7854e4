"""The one place classifiers are made: for training from typed settings, for inference from a saved spec.

Training (:func:`build_classifier`) and inference (:func:`rebuild_classifier`) both come here,
so inference never needs the training package to get its model back; :func:`trained_model`
writes the :class:`~har_kedro.config.model_spec.ModelSpec` that :func:`rebuild_classifier` reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from har_kedro.config.augment import AugmentConfig
from har_kedro.config.model_spec import ModelSpec, TrainedModel
from har_kedro.config.training import TrainConfig
from har_kedro.models.aclip import AclipClassifier
from har_kedro.models.backbones import Backbone, load_backbone
from har_kedro.models.classifier import ClassHead, ImageClassifier, pretrained_logit_scale_and_bias, zero_shot_embeddings
from har_kedro.models.flyp import FlypClassifier
from har_kedro.models.lora import apply_lora
from har_kedro.models.methods import set_trainable


def build_classifier(
    backbone: Backbone,
    class_names: Sequence[str],
    class_prompts: Mapping[str, Sequence[str]],
    config: TrainConfig,
    device: torch.device,
    image_size: int,
) -> ImageClassifier:
    """The classifier for ``config.method`` with its zero-shot head, trainable flags set, every tensor on ``device``.

    The backbone goes to ``device`` first and everything after is computed or created with it
    there (the zero-shot head from its text tower, LoRA adapters, A-CLIP's EMA copy); the last
    ``.to(device)`` then moves what was made on the host (the head's scalars, token buffers).
    """
    scale, bias = pretrained_logit_scale_and_bias(backbone)  # host reads, before the weights leave the host
    backbone.model.to(device)
    embeddings = zero_shot_embeddings(backbone, class_names, class_prompts)
    if config.loss == "sigmoid" and bias is None:
        bias = -10.0  # SigLIP's initial bias; CLIP checkpoints have none
    if config.logit_scale_init is not None:
        scale = float(config.logit_scale_init)
    if config.logit_bias_init is not None:
        bias = float(config.logit_bias_init)
    head = ClassHead(embeddings, scale, bias)
    if config.method == "lora":
        apply_lora(backbone.model, config.lora)
    common = dict(image_size=image_size, class_prompts=class_prompts if config.trains_text else None, class_names=class_names)
    model: ImageClassifier
    if config.aclip is not None:
        model = AclipClassifier(backbone, head, config.augment, config.aclip, label_smoothing=config.label_smoothing, **common)
    elif config.method == "flyp":
        model = FlypClassifier(backbone, head, config.augment, class_prompts, class_names, image_size=image_size)
    else:
        model = ImageClassifier(backbone, head, config.augment, **common)
    method = "full" if config.method == "lp_ft" else config.method
    set_trainable(model, method, train_text=config.trains_text, train_projection=config.train_projection)
    return model.to(device)


def trained_model(
    model: ImageClassifier,
    backbone_source: str,
    config: TrainConfig,
    class_names: Sequence[str],
    class_prompts: Mapping[str, Sequence[str]],
    image_size: int,
) -> TrainedModel:
    """What is saved of a trained classifier: its trained weights, copied to the host, and the spec that rebuilds it."""
    backbone = model.backbone
    spec = ModelSpec(
        backbone=backbone_source,
        family=backbone.family,
        method=config.method,
        loss=config.loss,
        class_names=tuple(class_names),
        image_size=image_size,
        image_mean=tuple(backbone.image_mean),
        image_std=tuple(backbone.image_std),
        lora=config.lora if config.method == "lora" else None,
        train_text=config.trains_text,  # flyp too: its class embeddings come from its fine-tuned text tower
        class_prompts={k: tuple(v) for k, v in class_prompts.items()} if config.trains_text else None,
    )
    # The classifier alone: A-CLIP's predictor and EMA tower are training scaffolding.
    state = {
        name: p.detach().cpu().contiguous()
        for name, p in model.named_parameters()
        if (p.requires_grad or name.startswith("head.")) and not name.startswith(("predictor.", "ema."))
    }
    return TrainedModel(state, spec)


def rebuild_classifier(trained: TrainedModel, device: torch.device | str = "cpu", backbone_source: str | None = None) -> ImageClassifier:
    """The trained classifier again, from its backbone and the saved trainable weights, in eval mode on ``device``.

    A model whose text tower was trained (``train_text``, ``flyp``) gets its class embeddings from the
    saved text tower and prompts, as it did in training; ``flyp`` evaluates like that, so it needs nothing else.
    """
    spec = trained.spec
    backbone = load_backbone(backbone_source or spec.backbone)
    dim = trained.state["head.weight"].shape[1]
    head = ClassHead(torch.zeros(len(spec.class_names), dim), 0.0, 0.0 if "head.logit_bias" in trained.state else None)
    if spec.method == "lora":
        apply_lora(backbone.model, spec.lora)
    model = ImageClassifier(
        backbone, head, AugmentConfig(), image_size=spec.image_size,
        class_prompts=spec.class_prompts if spec.train_text else None, class_names=list(spec.class_names),
    )
    params = dict(model.named_parameters())
    unexpected = sorted(set(trained.state) - set(params))
    if unexpected:
        raise ValueError(f"saved weights do not fit the rebuilt model (unexpected {unexpected[:3]}); was the backbone changed?")
    with torch.no_grad():
        for name, value in trained.state.items():
            params[name].copy_(value)
    model.eval().requires_grad_(False)
    return model.to(device)
