"""The store: persisted flow runs, task runs, their states and logs, deployments, concurrency
slots, the audit log and API tokens.

``get_store()`` gives the process's ``Store`` for the configured database, migrating it on
first use. ``Store`` plays every role declared in ``gnomon.store.abc`` (``RunStore``,
``ScheduleStore``, ``DeploymentStore``, ``ControlStore``): code outside the store names the
role it uses; the rows its reads return and its writes take are typed in
``gnomon.store.rows``. ``open_fast`` gives the command line's fast commands a
``FastControl`` without SQLAlchemy when it can. Importing this package imports nothing else
(each name loads its module on first use), so that path stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnomon._lazy import lazy_names

if TYPE_CHECKING:
    from gnomon.store._backfills import BackfillStep, TimeRun, backfill_generation
    from gnomon.store._backup import BackupExists, backup_database
    from gnomon.store._cluster import (
        Renewal,
        agreed_definitions,
        join_cluster,
        leave_cluster,
        renew_membership,
    )
    from gnomon.store._codecs import utcnow
    from gnomon.store._connect import SERVER_CONNECTION
    from gnomon.store._db import (
        EXTERNAL_CHECKPOINTS_ENV,
        bound_write_waits,
        bounded_wait_started,
        file_identity,
        sqlite_path,
    )
    from gnomon.store._fast import FastStore, open_fast
    from gnomon.store._faults import (
        read_only_file_system,
        refuse_unknown_revision,
        store_fault,
        store_name,
    )
    from gnomon.store._kinds import (
        NOTIFY_CHANNEL,
        REQUESTED_CAUSES,
        SCHEDULED_CAUSES,
        AuditAction,
        BackfillStatus,
        BreachKind,
        MaintenanceSource,
        Nudge,
        Origin,
        ReloadStatus,
        Reprocess,
        RunCause,
        TokenAccess,
        run_on_its_time,
    )
    from gnomon.store._prune import PruneCounts, ResultFile
    from gnomon.store._revision import HEAD_REVISION
    from gnomon.store._schema import RUN_BIN_SPANS
    from gnomon.store._store import (
        Store,
        current_revision,
        get_store,
        reset_store,
        store_at,
        upgrade,
    )
    from gnomon.store._vacuum import vacuum_database
    from gnomon.store._values import (
        Actor,
        LogQuery,
        RunCursor,
        in_time_order,
        pause_values,
        resumes_from,
    )
    from gnomon.store._writer import StoreWriteError
    from gnomon.store.abc import (
        ArtifactReader,
        BackfillStore,
        ControlStore,
        DeploymentStore,
        FastControl,
        PruneStore,
        RunStore,
        ScheduleStore,
        VariableStore,
    )

_LAZY = {
    "Renewal": "gnomon.store._cluster",
    "agreed_definitions": "gnomon.store._cluster",
    "join_cluster": "gnomon.store._cluster",
    "leave_cluster": "gnomon.store._cluster",
    "renew_membership": "gnomon.store._cluster",
    "ArtifactReader": "gnomon.store.abc",
    "Actor": "gnomon.store._values",
    "AuditAction": "gnomon.store._kinds",
    "BackupExists": "gnomon.store._backup",
    "BreachKind": "gnomon.store._kinds",
    "MaintenanceSource": "gnomon.store._kinds",
    "ControlStore": "gnomon.store.abc",
    "DeploymentStore": "gnomon.store.abc",
    "EXTERNAL_CHECKPOINTS_ENV": "gnomon.store._db",
    "FastControl": "gnomon.store.abc",
    "FastStore": "gnomon.store._fast",
    "HEAD_REVISION": "gnomon.store._revision",
    "LogQuery": "gnomon.store._values",
    "Origin": "gnomon.store._kinds",
    "Nudge": "gnomon.store._kinds",
    "NOTIFY_CHANNEL": "gnomon.store._kinds",
    "RUN_BIN_SPANS": "gnomon.store._schema",
    "PruneCounts": "gnomon.store._prune",
    "PruneStore": "gnomon.store.abc",
    "ReloadStatus": "gnomon.store._kinds",
    "ResultFile": "gnomon.store._prune",
    "RunCause": "gnomon.store._kinds",
    "RunCursor": "gnomon.store._values",
    "RunStore": "gnomon.store.abc",
    "REQUESTED_CAUSES": "gnomon.store._kinds",
    "SCHEDULED_CAUSES": "gnomon.store._kinds",
    "run_on_its_time": "gnomon.store._kinds",
    "BackfillStatus": "gnomon.store._kinds",
    "Reprocess": "gnomon.store._kinds",
    "BackfillStep": "gnomon.store._backfills",
    "TimeRun": "gnomon.store._backfills",
    "backfill_generation": "gnomon.store._backfills",
    "BackfillStore": "gnomon.store.abc",
    "SERVER_CONNECTION": "gnomon.store._connect",
    "ScheduleStore": "gnomon.store.abc",
    "VariableStore": "gnomon.store.abc",
    "Store": "gnomon.store._store",
    "StoreWriteError": "gnomon.store._writer",
    "TokenAccess": "gnomon.store._kinds",
    "backup_database": "gnomon.store._backup",
    "bound_write_waits": "gnomon.store._db",
    "bounded_wait_started": "gnomon.store._db",
    "current_revision": "gnomon.store._store",
    "file_identity": "gnomon.store._db",
    "get_store": "gnomon.store._store",
    "in_time_order": "gnomon.store._values",
    "open_fast": "gnomon.store._fast",
    "pause_values": "gnomon.store._values",
    "read_only_file_system": "gnomon.store._faults",
    "refuse_unknown_revision": "gnomon.store._faults",
    "reset_store": "gnomon.store._store",
    "resumes_from": "gnomon.store._values",
    "sqlite_path": "gnomon.store._db",
    "store_at": "gnomon.store._store",
    "store_fault": "gnomon.store._faults",
    "store_name": "gnomon.store._faults",
    "upgrade": "gnomon.store._store",
    "utcnow": "gnomon.store._codecs",
    "vacuum_database": "gnomon.store._vacuum",
}

__all__ = [
    "EXTERNAL_CHECKPOINTS_ENV",
    "HEAD_REVISION",
    "NOTIFY_CHANNEL",
    "REQUESTED_CAUSES",
    "RUN_BIN_SPANS",
    "SCHEDULED_CAUSES",
    "SERVER_CONNECTION",
    "Actor",
    "ArtifactReader",
    "AuditAction",
    "BackfillStatus",
    "BackfillStep",
    "BackfillStore",
    "BackupExists",
    "BreachKind",
    "ControlStore",
    "DeploymentStore",
    "FastControl",
    "FastStore",
    "LogQuery",
    "MaintenanceSource",
    "Nudge",
    "Origin",
    "PruneCounts",
    "PruneStore",
    "ReloadStatus",
    "Renewal",
    "Reprocess",
    "ResultFile",
    "RunCause",
    "RunCursor",
    "RunStore",
    "ScheduleStore",
    "Store",
    "StoreWriteError",
    "TimeRun",
    "TokenAccess",
    "VariableStore",
    "agreed_definitions",
    "backfill_generation",
    "backup_database",
    "bound_write_waits",
    "bounded_wait_started",
    "current_revision",
    "file_identity",
    "get_store",
    "in_time_order",
    "join_cluster",
    "leave_cluster",
    "open_fast",
    "pause_values",
    "read_only_file_system",
    "refuse_unknown_revision",
    "renew_membership",
    "reset_store",
    "resumes_from",
    "run_on_its_time",
    "sqlite_path",
    "store_at",
    "store_fault",
    "store_name",
    "upgrade",
    "utcnow",
    "vacuum_database",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
