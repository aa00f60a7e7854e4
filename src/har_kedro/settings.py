"""Project settings: configuration loader and hooks.

Parameters are split per pipeline (``parameters_<pipeline>.yml``) and ``conf/demo`` only
overrides what the offline demo changes, so ``base_env``/``default_run_env`` keep Kedro's
standard meaning: ``base`` is the real configuration, ``local`` the user's private one.
"""

import os
import warnings

# MLflow decides at import whether it sends usage telemetry (it does unless told): set before the hooks
# import it. Users can still opt in by setting the variable themselves.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # not "Creating initial MLflow database tables..." on stderr
# `kedro mlflow ui` inherits this environment. MLflow's server otherwise starts a job runner and seven
# worker processes for its GenAI jobs (scorers, trace roll-ups), which this project never submits: eight
# extra interpreters and seconds of start-up for nothing. Set it to true to get them back.
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")

from kedro.config import OmegaConfigLoader  # noqa: E402
from omegaconf.resolvers import oc  # noqa: E402

from har_kedro.hooks import InputVersionsHook, MissingInputsHook, OfflineHooks, TrackingHook  # noqa: E402
from har_kedro.tracking import sqlite_uri, tracking_enabled  # noqa: E402

# kedro-mlflow defines an MLflow pyfunc model class, and MLflow warns on import that its `predict` lacks
# type hints, inside its own "once" filter that no filter of ours can outrank. We use no such model:
# import it here, before Kedro loads the plugin, and swallow that import's warnings only.
with warnings.catch_warnings(record=True):
    import kedro_mlflow.mlflow  # noqa: E402, F401

# Kedro's own config loader still calls an omegaconf API that warns on every run; the
# warning is not actionable for users of this project.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)

HOOKS = (OfflineHooks(), MissingInputsHook(), InputVersionsHook(), TrackingHook())
# HAR_KEDRO_TRACKING=off: kedro-mlflow's hooks are not loaded at all, so nothing reaches MLflow
# (docs/tracking.md); everything the catalog holds is the same either way.
# (Kedro matches the distribution's name as its metadata spells it: kedro_mlflow.)
DISABLE_HOOKS_FOR_PLUGINS = () if tracking_enabled() else ("kedro_mlflow", "kedro-mlflow")

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # conf/demo and conf/local override single keys of a parameter group, not whole groups.
    "merge_strategy": {"parameters": "soft"},
    # ${oc.env:NAME,default} in parameters too (Kedro allows it only in credentials by default):
    # conf/smoke reads the real-photo sample's folder from HAR_REAL_SAMPLE.
    # ${har.sqlite:data/mlflow/mlflow.db} in mlflow.yml: the tracking database beside the data.
    "custom_resolvers": {"oc.env": oc.env, "har.sqlite": sqlite_uri},
}
