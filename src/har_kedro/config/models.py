"""The model namespaces the project trains, compares and serves: one training template per name.

Kept here, in the settings layer, so that anything can name the models without importing the
pipelines (which pull in torch and transformers).
"""

MODELS: tuple[str, ...] = ("clip", "aclip", "siglip")
