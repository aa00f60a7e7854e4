"""How a trained classifier is rebuilt: the typed spec saved beside its weights (``model_config.json``).

Training writes a :class:`TrainedModel` (the trained tensors plus a :class:`ModelSpec`); the
catalog stores it; inference hands it to :func:`har_kedro.models.factory.rebuild_classifier`.
The spec is the single description those three agree on, read and written only here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from har_kedro.config.lora import LoraSettings

if TYPE_CHECKING:
    import torch

SPEC_FORMAT = 2  # 1: the untyped dict of 0.x (read too; its ``lora`` block carried an unused ``extra`` key)


class ModelSpecError(ValueError):
    """A ``model_config.json`` lacks a key or holds one this version does not know; the message names it."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything besides the trained tensors that rebuilding the classifier needs."""

    backbone: str  # HuggingFace id or local directory the classifier was trained from
    family: str  # clip | siglip
    method: str
    loss: str
    class_names: tuple[str, ...]
    image_size: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    lora: LoraSettings | None = None  # set for method lora
    train_text: bool = False
    class_prompts: Mapping[str, tuple[str, ...]] | None = None  # set when the text tower was trained

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (lists, not tuples), with the format number."""
        data = asdict(self)
        data["lora"] = None if self.lora is None else {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.lora).items()}
        data["class_names"] = list(self.class_names)
        data["image_mean"], data["image_std"] = list(self.image_mean), list(self.image_std)
        data["class_prompts"] = None if self.class_prompts is None else {k: list(v) for k, v in self.class_prompts.items()}
        return {"format": SPEC_FORMAT, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "model_config.json") -> ModelSpec:
        values = {k: v for k, v in data.items() if k != "format"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        missing = sorted(f.name for f in fields(cls) if f.default is MISSING and f.name not in values)
        if unknown or missing:
            raise ModelSpecError(f"{where} does not describe a model this version can rebuild (unknown keys {unknown}, missing {missing}); retrain the model.")
        lora = values.get("lora")
        values["lora"] = None if lora is None else LoraSettings.from_params({k: v for k, v in lora.items() if k != "extra"}, where=f"{where}: lora")
        prompts = values.get("class_prompts")
        values["class_prompts"] = None if prompts is None else {k: tuple(v) for k, v in prompts.items()}
        for key in ("class_names", "image_mean", "image_std"):
            values[key] = tuple(values[key])
        return cls(**values)


@dataclass
class TrainedModel:
    """The trained part of a classifier (head, adapters or all weights) and the spec that rebuilds it."""

    state: dict[str, torch.Tensor]
    spec: ModelSpec
