"""Typed training settings read from ``parameters_training.yml``, with errors that name the key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from har_kedro.models.losses import LOSSES
from har_kedro.models.methods import GROUPS, METHODS

AMP_MODES = ("auto", "bf16", "fp16", "off")


class TrainingConfigError(ValueError):
    """A training parameter is missing, unknown or out of range; the message names it."""


@dataclass(frozen=True)
class TrainConfig:
    method: str = "full"
    loss: str = "cross_entropy"
    epochs: int = 10
    lp_epochs: int = 5  # first (linear-probe) stage of lp_ft
    max_steps: int | None = None  # stop each stage after this many optimizer steps (smoke runs); null = every step
    batch_size: int = 64  # per forward pass
    effective_batch_size: int = 256  # per optimizer step, reached by gradient accumulation
    eval_batch_size: int = 256
    lr: float = 1e-5
    probe_lr: float = 1e-3  # linear_probe and the first stage of lp_ft
    lr_multipliers: dict[str, float] = field(default_factory=lambda: {"vision": 1.0, "text": 0.1, "projection": 1.0, "head": 10.0})
    weight_decay: float = 0.05
    warmup_ratio: float = 0.1
    grad_clip: float | None = 1.0
    label_smoothing: float = 0.0
    early_stopping_patience: int = 3  # epochs without val-accuracy gain; 0 turns it off
    amp: str = "auto"
    device: str = "auto"
    train_text: bool = False
    train_projection: bool = True
    image_size: int | None = None  # model input size; None = the image cache's size
    # Head temperature/bias at the start; None = the checkpoint's own (right for pretrained
    # models; randomly initialised tiny models need SigLIP's log(10) / -10 to learn quickly).
    logit_scale_init: float | None = None
    logit_bias_init: float | None = None
    augment: dict[str, Any] = field(default_factory=dict)
    lora: dict[str, Any] = field(default_factory=dict)
    # A-CLIP attentive-mask training (models/aclip.py) when set; null for plain fine-tuning.
    aclip: dict[str, Any] | None = None
    resume: bool = False
    keep_checkpoints: int = 2
    progress: bool = True
    # Several processes (GPUs, machines; training/distributed.py): {num_processes, num_machines, ...}.
    distributed: dict[str, Any] = field(default_factory=dict)
    # GPU fast path (training/fast_path.py): speed only, none of these changes what an epoch computes.
    cache_on_device: bool | str = "auto"  # auto | true | false; always a no-op on CPU
    compile: bool = False  # torch.compile each vision encoder layer
    compile_mode: str = "default"
    activation_checkpointing: bool = False
    tf32: bool = True
    log_every_steps: int = 50  # progress-bar loss reads (each one waits for the device)

    @property
    def accumulation_steps(self) -> int:
        return self.effective_batch_size // self.batch_size

    @classmethod
    def from_params(cls, params: Mapping[str, Any], where: str = "training") -> TrainConfig:
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise TrainingConfigError(f"{where} has unknown keys {unknown}; allowed keys are {sorted(allowed)}.")
        config = cls(**dict(params))
        config.validate(where)
        return config

    def validate(self, where: str = "training") -> None:
        def fail(message: str) -> None:
            raise TrainingConfigError(f"{where}.{message}")

        if self.method not in METHODS:
            fail(f"method is '{self.method}'; use one of {list(METHODS)}.")
        if self.loss not in LOSSES:
            fail(f"loss is '{self.loss}'; use one of {sorted(LOSSES)}.")
        for name in ("epochs", "batch_size", "effective_batch_size", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                fail(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) or self.max_steps < 1):
            fail(f"max_steps must be a positive integer or null, got {self.max_steps!r}.")
        if self.method == "lp_ft" and (not isinstance(self.lp_epochs, int) or self.lp_epochs < 1):
            fail(f"lp_epochs must be a positive integer for lp_ft, got {self.lp_epochs!r}.")
        if self.effective_batch_size % self.batch_size:
            fail(f"effective_batch_size ({self.effective_batch_size}) must be a multiple of batch_size ({self.batch_size}).")
        for name in ("lr", "probe_lr"):
            if not getattr(self, name) > 0:
                fail(f"{name} must be > 0, got {getattr(self, name)!r}.")
        if not 0 <= self.warmup_ratio < 1:
            fail(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}.")
        if self.amp not in AMP_MODES:
            fail(f"amp is '{self.amp}'; use one of {list(AMP_MODES)}.")
        unknown_groups = sorted(set(self.lr_multipliers) - set(GROUPS))
        if unknown_groups:
            fail(f"lr_multipliers has unknown groups {unknown_groups}; use {list(GROUPS)}.")
        if self.grad_clip is not None and self.grad_clip <= 0:
            fail(f"grad_clip must be > 0 or null, got {self.grad_clip!r}.")
        if self.early_stopping_patience < 0 or self.keep_checkpoints < 1:
            fail("early_stopping_patience must be >= 0 and keep_checkpoints >= 1.")
        if self.train_text and self.method != "full":
            fail(f"train_text needs method full (got {self.method}): the other methods keep the text side fixed.")
        if self.aclip is not None:
            from har_kedro.models.aclip import ACLIP_METHODS, AclipConfigError, AclipSettings

            if self.method not in ACLIP_METHODS:
                fail(f"method is '{self.method}' but A-CLIP (the aclip block) trains the vision tower: use one of {list(ACLIP_METHODS)}, or set aclip: null.")
            if self.loss != "contrastive":
                fail(f"loss is '{self.loss}' but A-CLIP's image-text term is the contrastive loss: set loss: contrastive (weights go in aclip.weights).")
            try:
                AclipSettings.from_params(self.aclip, where=f"{where}.aclip")
            except AclipConfigError as error:
                raise TrainingConfigError(str(error)) from None
        from har_kedro.training.distributed import DistributedConfigError, DistributedSettings

        try:
            DistributedSettings.from_params(self.distributed, where=f"{where}.distributed").check_fits(self.device, self.batch_size, f"{where}.distributed")
        except DistributedConfigError as error:
            raise TrainingConfigError(str(error)) from None
        from har_kedro.training.fast_path import fast_path_problem

        problem = fast_path_problem(self)
        if problem:
            fail(problem)
