"""The model namespaces the project trains, compares and serves: one training template per name.

Kept here, in the settings layer, so that anything can name the models without importing the
pipelines (which pull in torch and transformers).
"""

MODELS: tuple[str, ...] = ("clip", "aclip", "siglip")

# The backbones the ``pretraining`` pipeline can pretrain, one namespace each (``pretraining.<target>``), and
# which of them a model fine-tunes from when its ``model.from_pretraining`` is true.
PRETRAINING_TARGETS: tuple[str, ...] = ("clip", "siglip")
PRETRAINED_FOR: dict[str, str] = {"clip": "clip", "aclip": "clip", "siglip": "siglip"}
