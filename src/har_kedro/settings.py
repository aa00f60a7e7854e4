"""Project settings: configuration loader and hooks.

Parameters are split per pipeline (``parameters_<pipeline>.yml``) and ``conf/demo`` only
overrides what the offline demo changes, so ``base_env``/``default_run_env`` keep Kedro's
standard meaning: ``base`` is the real configuration, ``local`` the user's private one.
"""

import warnings

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from har_kedro.hooks import InputVersionsHook, MissingInputsHook, OfflineHooks

# Kedro's own config loader still calls an omegaconf API that warns on every run; the
# warning is not actionable for users of this project.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)

HOOKS = (OfflineHooks(), MissingInputsHook(), InputVersionsHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # conf/demo and conf/local override single keys of a parameter group, not whole groups.
    "merge_strategy": {"parameters": "soft"},
    # ${oc.env:NAME,default} in parameters too (Kedro allows it only in credentials by default):
    # conf/smoke reads the real-photo sample's folder from HAR_REAL_SAMPLE.
    "custom_resolvers": {"oc.env": oc.env},
}
