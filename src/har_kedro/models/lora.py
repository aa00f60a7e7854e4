"""LoRA on the vision tower of HF CLIP/SigLIP, targeted so no adapter is silently dead.

Targets are given as module *names* (``q_proj`` …) and turned into one anchored regex over
``vision_model.encoder.layers.<i>.<…>``. A bare suffix list would also match SigLIP's
pooling head, whose ``nn.MultiheadAttention.out_proj`` is never called as a module (the
attention calls its weight functionally), so its LoRA weights would get no gradient.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from har_kedro.config.lora import LoraSettings

_TOWER_PREFIX = {"vision": r"vision_model\.encoder\.layers\.\d+", "text": r"text_model\.encoder\.layers\.\d+"}


def target_regex(targets: Sequence[str], towers: Sequence[str] = ("vision",)) -> str:
    """Regex (``re.fullmatch`` semantics, as peft uses) for the encoder-layer linears to adapt."""
    layers = "|".join(re.escape(t) for t in sorted(targets))
    prefix = "|".join(_TOWER_PREFIX[t] for t in towers)
    return rf"(?:.*\.)?(?:{prefix})\.(?:self_attn|mlp)\.(?:{layers})"


def apply_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """Inject LoRA adapters in place; only adapter weights are left trainable inside ``model``."""
    settings.validate()
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=target_regex(settings.targets, settings.towers),
        bias="none",
    )
    model = inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return model


def lora_parameter_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_parameters() if "lora_" in name]
