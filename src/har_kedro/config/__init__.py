"""Typed settings: the bottom layer of the package (it imports nothing else of har_kedro).

Each block of the parameters files has one frozen dataclass here, parsed and validated once, at
the node boundary, with errors that name the key. Everything below a node receives these
objects, never a dict of settings. :mod:`har_kedro.config.model_spec` is the typed description
of a trained classifier that training writes and inference reads.
"""

from har_kedro.config.aclip import AclipConfigError, AclipSettings
from har_kedro.config.augment import AugmentConfig
from har_kedro.config.distributed import DistributedConfigError, DistributedSettings
from har_kedro.config.errors import TrainingConfigError
from har_kedro.config.lora import LoraConfigError, LoraSettings
from har_kedro.config.model_spec import ModelSpec, ModelSpecError, TrainedModel
from har_kedro.config.training import TrainConfig
from har_kedro.config.unfreeze import UnfreezeConfigError, UnfreezeSettings

__all__ = [
    "AclipConfigError",
    "AclipSettings",
    "AugmentConfig",
    "DistributedConfigError",
    "DistributedSettings",
    "LoraConfigError",
    "LoraSettings",
    "ModelSpec",
    "ModelSpecError",
    "TrainConfig",
    "TrainedModel",
    "TrainingConfigError",
    "UnfreezeConfigError",
    "UnfreezeSettings",
]
