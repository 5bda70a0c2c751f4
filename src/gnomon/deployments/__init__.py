"""Deployments: the config file's models, loading it with every problem named, and syncing
its deployments into the store.

``load_config()`` reads the TOML config (``[daemon]``, ``[[deployments]]``, ``[[notify]]``,
``[[calendars]]``, ``[[maintenance]]``, ``include``) and returns the valid deployments and
notification targets with every problem found; ``sync_deployments()`` registers the
deployments in the store, which keeps anchors, fire times and pause flags across restarts;
``request_problems()`` checks a run request's parameters against a deployment's.

This is what other packages may use; the modules behind it are private. A name's module is
imported when the name is first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnomon._lazy import lazy_names

if TYPE_CHECKING:
    from gnomon.deployments._calendars import config_window_rows, stored_window, windows_for
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
        definition_hash,
        stored_schedule,
    )
    from gnomon.deployments._parameters import request_problems
    from gnomon.deployments._runenv import (
        POOL_LIMIT_PREFIX,
        RunPool,
        env_request,
        pool_limit,
        sync_pools,
    )
    from gnomon.deployments._sync import (
        CONFIG_SOURCE,
        SERVE_PREFIX,
        Comparison,
        Drift,
        SyncResult,
        compare,
        definition,
        describe_source,
        owner,
        record_takeovers,
        refusal_message,
        refuses,
        release_deployment,
        sync_deployments,
        takeover_message,
    )
    from gnomon.deployments._toml import deployments_toml

__all__ = [
    "CONFIG_SOURCE",
    "POOL_LIMIT_PREFIX",
    "SERVE_PREFIX",
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
    "RunPool",
    "SyncResult",
    "compare",
    "config_window_rows",
    "definition",
    "definition_hash",
    "deployments_toml",
    "describe_source",
    "env_request",
    "load_config",
    "load_config_or_raise",
    "owner",
    "pool_limit",
    "record_takeovers",
    "refusal_message",
    "refuses",
    "release_deployment",
    "request_problems",
    "stored_schedule",
    "stored_window",
    "sync_deployments",
    "sync_pools",
    "takeover_message",
    "windows_for",
]

_WHERE = {
    "CONFIG_SOURCE": "gnomon.deployments._sync",
    "POOL_LIMIT_PREFIX": "gnomon.deployments._runenv",
    "RunPool": "gnomon.deployments._runenv",
    "env_request": "gnomon.deployments._runenv",
    "pool_limit": "gnomon.deployments._runenv",
    "sync_pools": "gnomon.deployments._runenv",
    "SERVE_PREFIX": "gnomon.deployments._sync",
    "Catchup": "gnomon.deployments._models",
    "Comparison": "gnomon.deployments._sync",
    "ConfigProblem": "gnomon.deployments._load",
    "ContainmentMode": "gnomon.deployments._models",
    "DaemonConfig": "gnomon.deployments._models",
    "Deployment": "gnomon.deployments._models",
    "definition_hash": "gnomon.deployments._models",
    "Drift": "gnomon.deployments._sync",
    "GnomonConfig": "gnomon.deployments._models",
    "LoadResult": "gnomon.deployments._load",
    "NotifyEvent": "gnomon.deployments._models",
    "NotifyTarget": "gnomon.deployments._models",
    "Overlap": "gnomon.deployments._models",
    "Policies": "gnomon.deployments._models",
    "SyncResult": "gnomon.deployments._sync",
    "compare": "gnomon.deployments._sync",
    "config_window_rows": "gnomon.deployments._calendars",
    "stored_window": "gnomon.deployments._calendars",
    "windows_for": "gnomon.deployments._calendars",
    "definition": "gnomon.deployments._sync",
    "deployments_toml": "gnomon.deployments._toml",
    "describe_source": "gnomon.deployments._sync",
    "owner": "gnomon.deployments._sync",
    "record_takeovers": "gnomon.deployments._sync",
    "refusal_message": "gnomon.deployments._sync",
    "refuses": "gnomon.deployments._sync",
    "release_deployment": "gnomon.deployments._sync",
    "load_config": "gnomon.deployments._load",
    "load_config_or_raise": "gnomon.deployments._load",
    "request_problems": "gnomon.deployments._parameters",
    "stored_schedule": "gnomon.deployments._models",
    "sync_deployments": "gnomon.deployments._sync",
    "takeover_message": "gnomon.deployments._sync",
}


__getattr__, __dir__ = lazy_names(__name__, _WHERE)
