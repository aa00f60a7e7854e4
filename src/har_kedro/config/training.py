"""The ``training`` block of a model's parameters, typed all the way down and validated once.

:meth:`TrainConfig.from_params` is the only parser: the training node calls it on the raw
``params:<model>.training`` mapping, and everything below the node receives typed objects
(:class:`AugmentConfig`, :class:`LoraSettings`, :class:`AclipSettings`, :class:`UnfreezeSettings`,
:class:`DistributedSettings`).
Errors name the key at fault (``clip.training.lora.rank ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from har_kedro.config.aclip import ACLIP_METHODS, AclipSettings
from har_kedro.config.augment import AugmentConfig
from har_kedro.config.distributed import DistributedSettings
from har_kedro.config.errors import TrainingConfigError, known_keys
from har_kedro.config.lora import LoraSettings
from har_kedro.config.unfreeze import UNFREEZE_METHODS, UnfreezeSettings
from har_kedro.config.wise_ft import WiseFtSettings

METHODS = ("zero_shot", "linear_probe", "lora", "full", "lp_ft", "flyp")
FINE_TUNE_METHODS = ("lora", "full", "lp_ft", "flyp")  # the methods with a fine-tuning stage over images
GROUPS = ("vision", "text", "projection", "head")  # parameter groups, each with its own lr multiplier
LOSS_NAMES = ("cross_entropy", "contrastive", "sigmoid")
AMP_MODES = ("auto", "bf16", "fp16", "off")
CACHE_MODES = ("device", "stream", "host")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

__all__ = [
    "AMP_MODES", "CACHE_MODES", "COMPILE_MODES", "FINE_TUNE_METHODS", "GROUPS", "LOSS_NAMES", "METHODS", "TrainConfig", "TrainingConfigError",
]


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
    # Layer-wise lr decay (full, lp_ft): vision parameters at depth k from the top get lr x multiplier x
    # layer_decay**k (models/methods.py, vision_depth); null = off.
    layer_decay: float | None = None
    warmup_ratio: float = 0.1
    grad_clip: float | None = 1.0
    label_smoothing: float = 0.0
    early_stopping_patience: int = 3  # epochs without val-accuracy gain; 0 turns it off
    amp: str = "auto"
    device: str = "auto"
    train_text: bool = False  # full: fine-tune the text tower too; flyp always does (either value is accepted)
    train_projection: bool = True
    image_size: int | None = None  # model input size; None = the image cache's size
    # Head temperature/bias at the start; None = the checkpoint's own (right for pretrained
    # models; randomly initialised tiny models need SigLIP's log(10) / -10 to learn quickly).
    logit_scale_init: float | None = None
    logit_bias_init: float | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    # A-CLIP attentive-mask training (models/aclip.py) when set; null for plain fine-tuning.
    aclip: AclipSettings | None = None
    # Staged unfreezing of the vision tower from the top (full, lp_ft; config/unfreeze.py); null = off.
    unfreeze: UnfreezeSettings | None = None
    resume: bool = False
    keep_checkpoints: int = 2
    progress: bool = True
    # Evaluate the untrained zero-shot head on val and test before training (the report's baseline).
    # Two evaluation passes: off for quick runs (conf/smoke); the zero_shot method always evaluates.
    zero_shot_baseline: bool = True
    # Fit a temperature on the trained model's val predictions (one more val pass; models/calibration.py):
    # the report's ECE after temperature scaling. Off for quick runs (conf/smoke).
    calibrate: bool = True
    # WiSE-FT (config/wise_ft.py, models/wise_ft.py): evaluate mixes of the zero-shot and the fine-tuned
    # weights after training, one val and one test pass per alpha; null = off.
    wise_ft: WiseFtSettings | None = None
    # Several processes (GPUs, machines; training/distributed.py): {num_processes, num_machines, ...}.
    distributed: DistributedSettings = field(default_factory=DistributedSettings)
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

    @property
    def trains_text(self) -> bool:
        """Whether the text tower is trained: ``train_text`` with ``full``, and always with ``flyp``."""
        return self.train_text or self.method == "flyp"

    @classmethod
    def from_params(cls, params: Mapping[str, Any], where: str = "training") -> TrainConfig:
        """Parse and validate the raw parameters mapping; the nested blocks become their typed settings."""
        values = known_keys(cls, params, where)
        try:
            values["augment"] = AugmentConfig.from_params(values.get("augment"))
        except ValueError as error:
            raise TrainingConfigError(f"{where}.{error}") from None
        values["lora"] = LoraSettings.from_params(values.get("lora"), where=f"{where}.lora")
        if values.get("aclip") is not None:
            values["aclip"] = AclipSettings.from_params(values["aclip"], where=f"{where}.aclip")
        if values.get("wise_ft") is not None:
            values["wise_ft"] = WiseFtSettings.from_params(values["wise_ft"], where=f"{where}.wise_ft")
        if values.get("unfreeze") is not None:
            values["unfreeze"] = UnfreezeSettings.from_params(values["unfreeze"], where=f"{where}.unfreeze")
        values["distributed"] = DistributedSettings.from_params(values.get("distributed"), where=f"{where}.distributed")
        config = cls(**values)
        config.validate(where)
        return config

    def validate(self, where: str = "training") -> None:
        problem = self._method_problem() or self._schedule_problem() or self._basic_problem() or self._fast_path_problem()
        if problem:
            raise TrainingConfigError(f"{where}.{problem}")
        self.distributed.check_fits(self.device, self.batch_size, f"{where}.distributed")

    def _basic_problem(self) -> str | None:
        for name in ("epochs", "batch_size", "effective_batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                return f"{name} must be a positive integer, got {value!r}."
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) or self.max_steps < 1):
            return f"max_steps must be a positive integer or null, got {self.max_steps!r}."
        if self.effective_batch_size % self.batch_size:
            return f"effective_batch_size ({self.effective_batch_size}) must be a multiple of batch_size ({self.batch_size})."
        for name in ("lr", "probe_lr"):
            if not getattr(self, name) > 0:
                return f"{name} must be > 0, got {getattr(self, name)!r}."
        if not 0 <= self.warmup_ratio < 1:
            return f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}."
        if self.amp not in AMP_MODES:
            return f"amp is '{self.amp}'; use one of {list(AMP_MODES)}."
        unknown_groups = sorted(set(self.lr_multipliers) - set(GROUPS))
        if unknown_groups:
            return f"lr_multipliers has unknown groups {unknown_groups}; use {list(GROUPS)}."
        if self.grad_clip is not None and self.grad_clip <= 0:
            return f"grad_clip must be > 0 or null, got {self.grad_clip!r}."
        if self.early_stopping_patience < 0 or self.keep_checkpoints < 1:
            return "early_stopping_patience must be >= 0 and keep_checkpoints >= 1."
        for key in ("zero_shot_baseline", "calibrate"):
            if not isinstance(getattr(self, key), bool):
                return f"{key} must be true or false, got {getattr(self, key)!r}."
        return None

    def _method_problem(self) -> str | None:
        if self.method not in METHODS:
            return f"method is '{self.method}'; use one of {list(METHODS)}."
        if self.loss not in LOSS_NAMES:
            return f"loss is '{self.loss}'; use one of {sorted(LOSS_NAMES)}."
        if self.method == "lp_ft" and (not isinstance(self.lp_epochs, int) or self.lp_epochs < 1):
            return f"lp_epochs must be a positive integer for lp_ft, got {self.lp_epochs!r}."
        if self.train_text and self.method not in ("full", "flyp"):
            return f"train_text needs method full (got {self.method}): the other methods keep the text side fixed (flyp always trains it)."
        if self.method == "flyp":
            return self._flyp_problem()
        if self.aclip is not None and self.method not in ACLIP_METHODS:
            return f"method is '{self.method}' but A-CLIP (the aclip block) trains the vision tower: use one of {list(ACLIP_METHODS)}, or set aclip: null."
        if self.aclip is not None and self.loss != "contrastive":
            return f"loss is '{self.loss}' but A-CLIP's image-text term is the contrastive loss: set loss: contrastive (weights go in aclip.weights)."
        return None

    def _schedule_problem(self) -> str | None:
        """Layer-wise lr decay and staged unfreezing: which methods and settings they combine with."""
        decay = self.layer_decay
        if decay is not None and self.method not in UNFREEZE_METHODS:
            return f"layer_decay needs method full or lp_ft, which train the vision blocks (got {self.method}): set layer_decay: null or change the method."
        if decay is not None and (isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1):
            return f"layer_decay must be in (0, 1], got {decay!r}."
        if self.unfreeze is None:
            return None
        if self.method not in UNFREEZE_METHODS:
            return f"unfreeze needs method full or lp_ft, which train the vision blocks (got {self.method}): set unfreeze: null or change the method."
        if self.aclip is not None:
            return "unfreeze does not combine with aclip (its EMA tower follows the parameters trained at the first step): set unfreeze: null or aclip: null."
        if self.distributed.enabled:
            return (
                f"unfreeze does not combine with distributed.num_processes {self.distributed.num_processes} (DDP expects a gradient "
                "for every parameter it wraps): set unfreeze: null or num_processes: 1."
            )
        return None

    def _flyp_problem(self) -> str | None:
        """FLYP's objective is fixed: CLIP's contrastive loss, both towers and both projections trained."""
        if self.aclip is not None:
            return "aclip is set but method flyp has its own objective (images against their class prompts): set aclip: null, or use method full or lora for A-CLIP."
        if self.loss != "contrastive":
            return f"loss is '{self.loss}' but flyp fine-tunes with CLIP's contrastive (pre-training) loss: set loss: contrastive."
        if not self.train_projection:
            return "train_projection is false but flyp trains both towers and both projections, as in pre-training: set train_projection: true."
        return None

    def _fast_path_problem(self) -> str | None:
        cache = self.cache_on_device
        if not (isinstance(cache, bool) or cache == "auto"):
            return f"cache_on_device is {cache!r}; use auto, true or false."
        for name in ("compile", "activation_checkpointing", "tf32"):
            if not isinstance(getattr(self, name), bool):
                return f"{name} must be true or false, got {getattr(self, name)!r}."
        if self.compile_mode not in COMPILE_MODES:
            return f"compile_mode is {self.compile_mode!r}; use one of {list(COMPILE_MODES)}."
        steps = self.log_every_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            return f"log_every_steps must be a positive integer, got {steps!r}."
        return None
