"""The scheduling daemon: loads deployments, fires runs on time into a warm worker pool,
and persists every decision. ``run_daemon`` runs it in the foreground; ``detach`` starts it
in the background and ``stop`` ends it; ``find_holder`` and ``read_status`` say whether one
runs on a store and how healthy it is, for the command line, and a command that may only
change the store while no daemon runs holds its ``DaemonLock`` meanwhile; ``prune_store``
is the housekeeping the daemon does by ``retain_runs`` / ``retain_logs``, for ``gnomon db
prune``.

This is what other packages may use; the modules behind it are private. A name's module is
imported when the name is first asked for: worker processes import ``gnomon.daemon._worker``
and should not pay for the scheduler and the config models they never use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnomon._lazy import lazy_names

if TYPE_CHECKING:
    from gnomon.daemon._backfills import backfill_times
    from gnomon.daemon._detach import (
        DaemonNotRunning,
        PidfileInUse,
        StartReport,
        detach,
        read_pidfile,
        stop,
    )
    from gnomon.daemon._health import HealthStatus, read_status
    from gnomon.daemon._lock import DaemonAlreadyRunning, DaemonLock, find_holder, lock_path
    from gnomon.daemon._main import run_daemon
    from gnomon.daemon._retention import PruneReport, Retention, prune_store
    from gnomon.daemon._served import ServedDeployments
    from gnomon.daemon._service import Daemon
    from gnomon.daemon._storefile import EXIT_STORE_GONE, StoreFileChanged

__all__ = [
    "EXIT_STORE_GONE",
    "Daemon",
    "DaemonAlreadyRunning",
    "DaemonLock",
    "DaemonNotRunning",
    "HealthStatus",
    "PidfileInUse",
    "PruneReport",
    "Retention",
    "ServedDeployments",
    "StartReport",
    "StoreFileChanged",
    "backfill_times",
    "detach",
    "find_holder",
    "lock_path",
    "prune_store",
    "read_pidfile",
    "read_status",
    "run_daemon",
    "stop",
]

_WHERE = {
    "backfill_times": "gnomon.daemon._backfills",
    "EXIT_STORE_GONE": "gnomon.daemon._storefile",
    "Daemon": "gnomon.daemon._service",
    "DaemonAlreadyRunning": "gnomon.daemon._lock",
    "DaemonLock": "gnomon.daemon._lock",
    "DaemonNotRunning": "gnomon.daemon._detach",
    "PidfileInUse": "gnomon.daemon._detach",
    "StartReport": "gnomon.daemon._detach",
    "detach": "gnomon.daemon._detach",
    "find_holder": "gnomon.daemon._lock",
    "lock_path": "gnomon.daemon._lock",
    "read_pidfile": "gnomon.daemon._detach",
    "PruneReport": "gnomon.daemon._retention",
    "Retention": "gnomon.daemon._retention",
    "prune_store": "gnomon.daemon._retention",
    "HealthStatus": "gnomon.daemon._health",
    "read_status": "gnomon.daemon._health",
    "run_daemon": "gnomon.daemon._main",
    "ServedDeployments": "gnomon.daemon._served",
    "StoreFileChanged": "gnomon.daemon._storefile",
    "stop": "gnomon.daemon._detach",
}


__getattr__, __dir__ = lazy_names(__name__, _WHERE)
