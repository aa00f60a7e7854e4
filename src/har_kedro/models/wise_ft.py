"""WiSE-FT: weight-space ensembles of the zero-shot and the fine-tuned model.

Wortsman et al., "Robust fine-tuning of zero-shot models" (CVPR 2022): the model with weights
``(1 - α) θ_zero-shot + α θ_fine-tuned`` is often better than either end, in and out of distribution,
and costs nothing to train. Here α is chosen on val from a grid and the curve is kept for the report.

The interpolation is ``torch.lerp``, exact at both ends (α = 0 gives the zero-shot weights bit for bit,
α = 1 the fine-tuned ones). For LoRA the fine-tuned adapter's ``A`` matrices are kept and only ``B``
(zero at the start) is interpolated, so the adapter's weight delta ``B A`` is scaled by exactly α; mixing
``A`` too would make the delta quadratic in α. Written here because no library we use does this on
HuggingFace models with peft adapters (open_clip's WiSE-FT script works on its own state dicts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

# A-CLIP's EMA copy is training scaffolding: never used to predict, so neither saved nor mixed.
_SCAFFOLDING = ("ema.",)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of every parameter the classifier predicts with."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if not name.startswith(_SCAFFOLDING)}


@torch.no_grad()
def mix(model: nn.Module, zero_shot: Mapping[str, torch.Tensor], fine_tuned: Mapping[str, torch.Tensor], alpha: float) -> None:
    """Load ``(1 - alpha) zero_shot + alpha fine_tuned`` into ``model`` (LoRA: ``A`` fine-tuned, ``B`` mixed)."""
    params = dict(model.named_parameters())
    for name, end in fine_tuned.items():
        start = zero_shot[name]
        if alpha == 1 or "lora_A" in name or torch.equal(start, end):
            value = end
        elif alpha == 0:
            value = start
        else:
            value = torch.lerp(start.float(), end.float(), float(alpha)).to(end.dtype)
        params[name].copy_(value.to(params[name].device))


@dataclass(frozen=True)
class WiseFtCurve:
    """Top-1 on val and test at each α, and the α with the best val accuracy (ties: the largest α)."""

    alphas: list[float]
    val_accuracy: list[float]
    test_accuracy: list[float]
    chosen_alpha: float
    applied: bool
    # Top-1 at each α on every evaluation set (ingestion.evaluation_sets), by set name.
    evaluation_accuracy: dict[str, list[float]] = field(default_factory=dict)

    def record(self) -> dict[str, object]:
        return asdict(self)


def wise_ft_curve(
    model: nn.Module,
    zero_shot: Mapping[str, torch.Tensor],
    alphas: Sequence[float],
    accuracy: Callable[[str], float],
    apply: bool,
    evaluation_sets: Sequence[str] = (),
) -> WiseFtCurve:
    """Evaluate every α on val, test and ``evaluation_sets`` (``accuracy(split)`` scores ``model`` as it is loaded) and
    leave ``model`` at the chosen α when ``apply``, else at its own fine-tuned weights."""
    fine_tuned = snapshot(model)
    scores: dict[str, list[float]] = {split: [] for split in ("val", "test", *evaluation_sets)}
    for alpha in alphas:
        mix(model, zero_shot, fine_tuned, alpha)
        for split, values in scores.items():
            values.append(accuracy(split))
    val, test = scores.pop("val"), scores.pop("test")
    best = max(val)
    chosen = max(a for a, v in zip(alphas, val, strict=True) if v == best)
    mix(model, zero_shot, fine_tuned, chosen if apply else 1.0)
    return WiseFtCurve([float(a) for a in alphas], val, test, float(chosen), apply, scores)
