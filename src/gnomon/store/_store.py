"""The store: persisted flow runs, task runs, their states and logs, and concurrency slots.

``get_store()`` gives the process's ``Store`` for the configured database, migrating the
database on first use. Run and state rows are recorded through its batched writer
(``insert_task_run``, ``add_state``, ...) and committed within ``flush_interval``, or at once
by ``flush()``; reads and the few synchronous writes go straight to the database.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, cast

from gnomon.store import _migrate
from gnomon.store._artifacts import ArtifactQueries
from gnomon.store._backfills import BackfillQueries
from gnomon.store._breaches import BreachQueries
from gnomon.store._cluster import ClusterQueries
from gnomon.store._control import ControlQueries
from gnomon.store._db import DEFAULT_POOL_SIZE, create_engine, file_identity, sqlite_path
from gnomon.store._maintenance import MaintenanceQueries
from gnomon.store._overview import OverviewQueries
from gnomon.store._pauses import PauseQueries
from gnomon.store._prune import PruneQueries
from gnomon.store._queries import Row
from gnomon.store._scheduled import ScheduledRunQueries
from gnomon.store._variables import VariableQueries
from gnomon.store._writer import BatchWriter

if TYPE_CHECKING:
    from gnomon._settings import Settings
    from gnomon.store.abc import (
        ControlStore,
        DeploymentStore,
        PruneStore,
        RunStore,
        ScheduleStore,
        VariableStore,
    )
    from gnomon.store.rows import FlowRunChanges, NewFlowRun, NewLog, NewState, NewTaskRun


class Store(
    ScheduledRunQueries,
    ControlQueries,
    OverviewQueries,
    ArtifactQueries,
    VariableQueries,
    PauseQueries,
    BreachQueries,
    MaintenanceQueries,
    BackfillQueries,
    PruneQueries,
    ClusterQueries,
):
    """One database: its engine, its batched writer, and the queries over it.

    Creating a store migrates its database to the newest schema if it is behind, and
    refuses one a newer gnomon migrated (``StoreSchemaTooNew``); it creates a SQLite
    database that does not exist only if ``create``, and never afterwards (see
    ``create_engine``). A daemon's worker passes ``create=False``, ``migrate=False``: its
    daemon made the database and checked its schema, a missing one was deleted under it,
    and a revision newer since then is another host's gnomon, upgraded mid rolling upgrade,
    whose additive migration this code works beside as its daemon does. After
    ``os.fork()`` the child's store starts with new connections and an empty batch.
    """

    def __init__(
        self,
        url: str,
        flush_interval: float = 0.05,
        *,
        create: bool = True,
        migrate: bool = True,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        from gnomon._space import SpaceFloor, floor_from_env

        self.url = url
        engine = create_engine(url, create=create, pool_size=pool_size)
        try:
            if migrate:
                _migrate.ensure_current(engine)
            else:  # reached now all the same: a missing SQLite file is StoreFileGone here
                engine.connect().close()
        except BaseException:
            engine.dispose()  # its connections, not left to the garbage collector
            raise
        super().__init__(BatchWriter(engine, flush_interval))
        path = sqlite_path(url)
        # Under the daemon: below the free-space floor, log lines are not stored (see
        # gnomon._space), so runs and their states still fit.
        self._log_room = SpaceFloor(path.parent, floor_from_env()) if path is not None else None
        # The SQLite file as opened (device, inode): a daemon checks that its path still
        # names this file (daemon._storefile).
        self.database_file = sqlite_path(url)
        self.opened_file = None if self.database_file is None else file_identity(self.database_file)

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    # Batched writes: recorded now, committed by the writer thread (see flush()). Each
    # typed row is the plain dict of column values the writer binds (cast, not copied).

    def insert_flow_run(self, row: NewFlowRun) -> None:
        """Queue a new flow run row."""
        self._writer.insert_flow_run(cast(Row, row))

    def update_flow_run(self, id: str, **values: Any) -> None:
        """Queue new values for columns of flow run ``id``."""
        self._writer.update_flow_run(id, **values)

    def insert_task_run(self, row: NewTaskRun) -> None:
        """Queue a new task run row."""
        self._writer.insert_task_run(cast(Row, row))

    def update_task_run(self, id: str, **values: Any) -> None:
        """Queue new values for columns of task run ``id``."""
        self._writer.update_task_run(id, **values)

    def settle_flow_run(self, id: str, values: FlowRunChanges, state: NewState) -> None:
        """Queue flow run ``id``'s new state: ``values`` for its columns and its ``run_states``
        row, committed together (a refused final state leaves no history row)."""
        self._writer.settle_flow_run(id, cast(Row, values), cast(Row, state))

    def add_state(self, row: NewState) -> None:
        """Queue a ``run_states`` row."""
        self._writer.add_state(cast(Row, row))

    def add_log(self, row: NewLog) -> None:
        """Queue a ``run_logs`` row (dropped while the store's disk is below the floor)."""
        if self._log_room is None or self._log_room.room():
            self._writer.add_log(cast(Row, row))

    def flush(self, timeout: float | None = None) -> None:
        """Commit every row recorded so far and wait for it; raises ``StoreWriteError``."""
        self._writer.flush(timeout)

    def close(self) -> None:
        """Flush, stop the writer thread and close the connections."""
        self._writer.close()
        self._writer.close_connections()
        self.engine.dispose()


if TYPE_CHECKING:
    # Never run: mypy fails here, naming the method, if ``Store`` stops satisfying a role
    # declared in ``abc``.
    _store = cast(Store, None)
    _run_store: RunStore = _store
    _schedule_store: ScheduleStore = _store
    _deployment_store: DeploymentStore = _store
    _control_store: ControlStore = _store
    _variable_store: VariableStore = _store
    _prune_store: PruneStore = _store


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()
_current: tuple[Settings, Store] | None = None


def _new_lock_in_child() -> None:
    # Another thread may have held the lock at fork(); in the child it would stay held.
    global _stores_lock
    _stores_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def get_store(*, create: bool = True, migrate: bool = True) -> Store:
    """The process's store for the configured database (``GNOMON_DATABASE_URL``/``HOME``);
    ``create=False`` fails with ``StoreFileGone`` rather than create a SQLite file, and
    ``migrate=False`` opens the schema as it is (a daemon's worker: see ``Store``)."""
    from gnomon._settings import get_settings

    global _current
    settings = get_settings()
    current = _current
    if current is not None and current[0] is settings:
        return current[1]
    store = store_at(
        settings.effective_database_url,
        settings.flush_interval,
        create=create,
        migrate=migrate,
        pool_size=settings.database_pool_size,
    )
    with _stores_lock:
        _current = (settings, store)
    return store


def store_at(
    url: str,
    flush_interval: float = 0.05,
    *,
    create: bool = True,
    migrate: bool = True,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> Store:
    """The process's store for the database at ``url`` (one per URL), without reading the
    settings: the command line finds the URL with ``gnomon._location.store_location``."""
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = Store(
                url, flush_interval, create=create, migrate=migrate, pool_size=pool_size
            )
    return store


def reset_store() -> None:
    """Close and forget the process's stores (tests that change ``GNOMON_HOME`` call this)."""
    global _current
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
        _current = None
    for store in stores:
        store.close()


def upgrade(url: str | None = None) -> None:
    """Migrate the database at ``url`` (default: the configured one) to the newest schema."""
    _migrate.upgrade(url or _configured_url())


def current_revision(url: str | None = None) -> str | None:
    """The schema revision of the database at ``url``; None if it was never migrated."""
    return _migrate.current_revision(url or _configured_url())


def _configured_url() -> str:
    from gnomon._settings import get_settings

    return get_settings().effective_database_url
