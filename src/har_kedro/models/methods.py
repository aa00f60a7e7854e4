"""Which parameters each fine-tuning method trains, and at which learning rate.

Every parameter belongs to one of four groups (vision, text, projection, head) so that
two-tier learning rates are a matter of multipliers in the parameters file. The
backbone's own ``logit_scale``/``logit_bias`` stay frozen: the head carries its own.

Within the vision tower each parameter also has a *depth*, counted in blocks from the top
(:func:`vision_depth`): layer-wise lr decay scales its lr by ``layer_decay ** depth`` and staged
unfreezing (:func:`frozen_parameters`) trains the shallow ones first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from torch import nn

from har_kedro.config.training import GROUPS, METHODS
from har_kedro.config.unfreeze import UnfreezeSettings

_PROJECTION_PREFIXES = ("model.visual_projection", "model.text_projection", "model.vision_model.head.")
_VISION_LAYER = re.compile(r"model\.vision_model\.encoder\.layers\.(\d+)\.")
_VISION_BOTTOM = ("model.vision_model.embeddings.", "model.vision_model.pre_layrnorm.")


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


def vision_layer_count(names: Iterable[str]) -> int:
    """The number of vision encoder blocks, read from the parameter names (``...encoder.layers.{i}.``)."""
    return max((int(m.group(1)) + 1 for name in names if (m := _VISION_LAYER.match(name))), default=0)


def vision_depth(name: str, num_layers: int) -> int:
    """Blocks between a parameter and the top of the vision tower (BEiT/ELECTRA layer-wise decay).

    Encoder block ``i`` (0 = bottom) is at depth ``num_layers - i``; the embeddings (and CLIP's
    ``pre_layrnorm``) at ``num_layers + 1``; everything above the last block (``post_layernorm``,
    the projection, SigLIP's pooling head, the classifier head) and every non-vision parameter at 0.
    """
    if parameter_group(name) != "vision":
        return 0
    match = _VISION_LAYER.match(name)
    if match:
        return num_layers - int(match.group(1))
    return num_layers + 1 if name.startswith(_VISION_BOTTOM) else 0


def frozen_parameters(names: Iterable[str], num_layers: int, schedule: UnfreezeSettings | None, epoch: int) -> set[str]:
    """Which of ``names`` (the method's trainable parameters) staged unfreezing keeps frozen at ``epoch``."""
    if schedule is None:
        return set()
    depth = schedule.unfrozen_depth(epoch, num_layers)
    return {name for name in names if vision_depth(name, num_layers) > depth}


def _group_name(group: str, depth: int, num_layers: int, layered: bool) -> str:
    """``vision_layer3``, ``vision_embeddings``, ``vision_top`` with layer decay; else the group itself."""
    if not layered or group != "vision":
        return group
    if depth > num_layers:
        return "vision_embeddings"
    return f"vision_layer{num_layers - depth}" if depth else "vision_top"


def optimizer_groups(
    model: nn.Module, lr: float, weight_decay: float, multipliers: Mapping[str, float] | None = None, layer_decay: float | None = None,
) -> list[dict[str, object]]:
    """AdamW groups per (group, decay): no decay on biases, norms, scales and embeddings-as-vectors.

    With ``layer_decay`` the vision groups split further by depth (:func:`vision_depth`), each at
    ``lr × multiplier × layer_decay ** depth``; text, projection and head keep their multipliers.
    """
    multipliers = {**{g: 1.0 for g in GROUPS}, **(multipliers or {})}
    unknown = sorted(set(multipliers) - set(GROUPS))
    if unknown:
        raise ValueError(f"lr_multipliers has unknown groups {unknown}; use {list(GROUPS)}")
    named = list(model.named_parameters())
    num_layers = vision_layer_count(name for name, _ in named)
    buckets: dict[tuple[str, int, bool], list[nn.Parameter]] = {}
    for name, parameter in named:
        if not parameter.requires_grad:
            continue
        group = parameter_group(name) or "head"
        depth = vision_depth(name, num_layers) if layer_decay is not None else 0
        decay = parameter.ndim >= 2 and name != "head.weight"
        buckets.setdefault((group, depth, decay), []).append(parameter)
    return [
        {
            "params": params, "lr": lr * multipliers[group] * (layer_decay or 1.0) ** depth, "weight_decay": weight_decay if decay else 0.0,
            "name": f"{_group_name(group, depth, num_layers, layer_decay is not None)}{'' if decay else '_no_decay'}",
        }
        for (group, depth, decay), params in sorted(buckets.items())
    ]
