"""Deployments: the config file's models, loading it with every problem named, and syncing
its deployments into the store.

``load_config()`` reads the TOML config (``[daemon]``, ``[[deployments]]``, ``[[notify]]``,
``include``) and returns the valid deployments and notification targets with every problem
found; ``sync_deployments()`` registers the deployments in the store, which keeps anchors,
fire times and pause flags across restarts.
"""

from gnomon.deployments._load import (
    ConfigProblem,
    LoadResult,
    load_config,
    load_config_or_raise,
)
from gnomon.deployments._models import (
    Catchup,
    ContainmentMode,
    DaemonConfig,
    Deployment,
    GnomonConfig,
    NotifyEvent,
    NotifyTarget,
    Overlap,
    Policies,
    stored_schedule,
)
from gnomon.deployments._sync import Comparison, Drift, SyncResult, compare, sync_deployments

__all__ = [
    "Catchup",
    "Comparison",
    "ConfigProblem",
    "ContainmentMode",
    "DaemonConfig",
    "Deployment",
    "Drift",
    "GnomonConfig",
    "LoadResult",
    "NotifyEvent",
    "NotifyTarget",
    "Overlap",
    "Policies",
    "SyncResult",
    "compare",
    "load_config",
    "load_config_or_raise",
    "stored_schedule",
    "sync_deployments",
]
