"""Project settings: configuration loader and hooks.

Parameters are split per pipeline (``parameters_<pipeline>.yml``) and ``conf/demo`` only
overrides what the offline demo changes, so ``base_env``/``default_run_env`` keep Kedro's
standard meaning: ``base`` is the real configuration, ``local`` the user's private one.
"""

from kedro.config import OmegaConfigLoader

from har_kedro.hooks import OfflineHooks

HOOKS = (OfflineHooks(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # conf/demo and conf/local override single keys of a parameter group, not whole groups.
    "merge_strategy": {"parameters": "soft"},
}
