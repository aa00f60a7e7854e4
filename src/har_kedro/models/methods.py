"""Which parameters each fine-tuning method trains, and at which learning rate.

Every parameter belongs to one of four groups (vision, text, projection, head) so that
two-tier learning rates are a matter of multipliers in the parameters file. The
backbone's own ``logit_scale``/``logit_bias`` stay frozen: the head carries its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from har_kedro.config.training import GROUPS, METHODS

_PROJECTION_PREFIXES = ("model.visual_projection", "model.text_projection", "model.vision_model.head.")


def parameter_group(name: str) -> str | None:
    """The group of a parameter of an ``ImageClassifier``/``FeatureClassifier``; None if never trained."""
    if name.startswith(("head.", "predictor.")):  # the A-CLIP predictor is new too, like the head
        return "head"
    if name.startswith(_PROJECTION_PREFIXES):
        return "projection"
    if name.startswith("model.text_model."):
        return "text"
    if name.startswith("model.vision_model."):
        return "vision"
    return None


def set_trainable(model: nn.Module, method: str, train_text: bool = False, train_projection: bool = True) -> None:
    """Set ``requires_grad`` for ``method``; LoRA adapters must already be injected for ``lora``.

    ``flyp`` trains as CLIP pre-trains: both towers, both projections and the head's temperature
    (``train_text`` and ``train_projection`` are implied).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; use one of {list(METHODS)}")
    text_side = train_text or method == "flyp"
    for name, parameter in model.named_parameters():
        group = parameter_group(name)
        if method == "zero_shot" or group is None:
            trainable = False
        elif group == "head":
            # With a trainable text tower the class embeddings come from it, not from head.weight.
            trainable = not (text_side and name == "head.weight")
        elif method == "linear_probe":
            trainable = False
        elif method == "lora":
            trainable = "lora_" in name or (train_projection and _is_vision_projection(name))
        elif method == "flyp":
            trainable = True
        elif group == "projection":  # full, and the second stage of lp_ft
            trainable = train_text if "text_projection" in name else train_projection
        else:
            trainable = group == "vision" or (group == "text" and train_text)
        parameter.requires_grad_(trainable)


def _is_vision_projection(name: str) -> bool:
    return name.startswith(("model.visual_projection", "model.vision_model.head."))


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)``, counting each shared tensor once; A-CLIP's EMA copy is scaffolding, not counted."""
    seen: set[int] = set()
    trainable = total = 0
    for name, parameter in model.named_parameters():
        if name.startswith("ema.") or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    return trainable, total


def optimizer_groups(
    model: nn.Module, lr: float, weight_decay: float, multipliers: Mapping[str, float] | None = None
) -> list[dict[str, object]]:
    """AdamW groups per (group, decay): no decay on biases, norms, scales and embeddings-as-vectors."""
    multipliers = {**{g: 1.0 for g in GROUPS}, **(multipliers or {})}
    unknown = sorted(set(multipliers) - set(GROUPS))
    if unknown:
        raise ValueError(f"lr_multipliers has unknown groups {unknown}; use {list(GROUPS)}")
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        group = parameter_group(name) or "head"
        decay = parameter.ndim >= 2 and name != "head.weight"
        buckets.setdefault((group, decay), []).append(parameter)
    return [
        {"params": params, "lr": lr * multipliers[group], "weight_decay": weight_decay if decay else 0.0, "name": f"{group}{'' if decay else '_no_decay'}"}
        for (group, decay), params in sorted(buckets.items())
    ]
