"""The store against real SQLite files: migrations, the batched writer, reads, slots, and
many processes sharing one database."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from conftest import all_states, create_run, logs_of, subflows
from gnomon._settings import get_settings, reset_settings
from gnomon.exceptions import ConcurrencySlotAcquisitionError
from gnomon.states import StateType
from gnomon.store import (
    HEAD_REVISION,
    AuditAction,
    LogQuery,
    Store,
    StoreWriteError,
    _db,
    current_revision,
    get_store,
    reset_store,
    upgrade,
)
from gnomon.store._db import create_engine, read_engine
from gnomon.store._driver import Bound
from gnomon.store._migrate import alembic_config
from gnomon.store._scheduled import pause_changes
from gnomon.store._schema import audit_log, metadata, run_states, task_runs
from gnomon.store.rows import ClaimedRun

pytestmark = pytest.mark.backends

SRC = Path(__file__).resolve().parent.parent / "src"
TABLES = {
    "flow_runs",
    "task_runs",
    "run_states",
    "run_logs",
    "concurrency_limits",
    "concurrency_slots",
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> Iterator[Path]:
    """A fresh GNOMON_HOME (not created yet) with the settings and store singletons reset;
    the database is the ``backend``'s (on PostgreSQL, a fresh one)."""
    home = tmp_path / "home"
    monkeypatch.setenv("GNOMON_HOME", str(home))
    monkeypatch.setenv("GNOMON_FLUSH_INTERVAL", "0.05")
    monkeypatch.delenv("GNOMON_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./gnomon.toml of the caller's
    reset_settings()
    reset_store()
    yield home
    reset_store()
    reset_settings()


@pytest.fixture
def slow_flush(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush interval long enough that only an explicit flush() writes during a test."""
    monkeypatch.setenv("GNOMON_FLUSH_INTERVAL", "5")
    reset_settings()


@pytest.fixture
def store(home: Path) -> Store:
    return get_store()


@pytest.fixture
def url(home: Path) -> str:
    return get_settings().effective_database_url


@pytest.fixture
def fresh_engine(url: str) -> Iterator[Engine]:
    """An engine of its own: sees only what the writer has committed."""
    engine = create_engine(url)
    yield engine
    engine.dispose()


def new_id() -> str:
    return uuid.uuid4().hex


def flow_run(**values: Any) -> dict[str, Any]:
    return {"id": new_id(), "name": "run", "flow_name": "flow", "created": now(), **values}


def task_run(flow_run_id: str, **values: Any) -> dict[str, Any]:
    row = {"id": new_id(), "flow_run_id": flow_run_id, "task_key": "k", "name": "task"}
    return {**row, "created": now(), **values}


def state(flow_run_id: str, task_run_id: str | None, type_: str) -> dict[str, Any]:
    return {"flow_run_id": flow_run_id, "task_run_id": task_run_id, "type": type_, "name": type_}


def now() -> datetime:
    return datetime.now(UTC)


def count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.01)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Callable[[Engine], list[tuple[str, int]]]:
    """Every SQL statement an engine runs from then on, with the number of rows it binds:
    those SQLAlchemy executes, and the compiled ones the store hands its driver directly."""
    seen: list[tuple[str, int]] = []
    execute = Bound.execute

    def compiled(self: Bound, connection: Any) -> Any:
        seen.append((" ".join(self.sql.split()), len(self.parameters)))
        return execute(self, connection)

    monkeypatch.setattr(Bound, "execute", compiled)

    def watch(engine: Engine) -> list[tuple[str, int]]:
        @event.listens_for(engine, "before_cursor_execute")
        def record(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
            seen.append((" ".join(sql.split()), len(params) if many else 1))

        return seen

    return watch


# Migrations.


@pytest.mark.sqlite_only
def test_first_use_creates_the_database_with_every_table_at_head(home: Path) -> None:
    store = get_store()
    database = home / "gnomon.db"
    assert database.is_file()
    assert home.stat().st_mode & 0o777 == 0o700
    assert TABLES | {"alembic_version"} <= set(inspect(store.engine).get_table_names())
    assert current_revision(store.url) == HEAD_REVISION


def test_head_revision_is_the_newest_migration(url: str) -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config(url)).get_current_head() == HEAD_REVISION


def test_migrations_create_exactly_the_schema_the_code_declares(url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    assert differences == []


@pytest.mark.empty_database
def test_upgrade_twice_changes_nothing_and_keeps_data(url: str) -> None:
    assert current_revision(url) is None
    upgrade(url)
    store = get_store()
    create_run(store, flow_run(id="a" * 32))
    upgrade(url)
    assert current_revision(url) == HEAD_REVISION
    assert store.read_flow_run("a" * 32) is not None


@pytest.mark.empty_database
def test_a_database_at_the_first_revision_is_upgraded_in_place_keeping_its_runs(
    url: str,
) -> None:
    from alembic import command

    command.upgrade(alembic_config(url), "0001")
    assert current_revision(url) == "0001"
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO flow_runs (id, name, flow_name, run_count, created) "
                    "VALUES ('old', 'old-run', 'etl', 1, '2026-01-01 00:00:00.000000')"
                )
            )
    finally:
        engine.dispose()

    store = get_store()  # first use migrates to head

    assert current_revision(url) == HEAD_REVISION
    row = store.read_flow_run("old")
    assert row is not None
    assert (row.name, row.deployment_name, row.scheduled_for) == ("old-run", None, None)


@pytest.mark.empty_database
def test_limits_and_slots_of_revision_0013_keep_working_after_the_decay_migration(
    url: str,
) -> None:
    """0014 adds the decay and the rate-limit slots' release time: a limit from before has
    no decay, a slot from before is held until released, and a 0013 daemon's inserts
    (without the new columns) still succeed."""
    from alembic import command

    command.upgrade(alembic_config(url), "0013")
    old_limit = (
        "INSERT INTO concurrency_limits (name, slot_limit, created, updated) "
        "VALUES ('{}', 1, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')"
    )
    old_slot = (
        "INSERT INTO concurrency_slots (limit_name, holder, occupy, acquired_at) "
        "VALUES ('{}', 'elsewhere:1:old', 1, '2026-01-01 00:00:00.000000')"
    )
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(old_limit.format("db")))
            connection.execute(text(old_slot.format("db")))
        store = get_store()  # first use migrates to head
        assert current_revision(url) == HEAD_REVISION
        with engine.begin() as connection:  # what a daemon of 0013 writes
            connection.execute(text(old_limit.format("api")))
            connection.execute(text(old_slot.format("api")))
    finally:
        engine.dispose()

    rows = {
        row.name: (row.slot_limit, row.slot_decay_per_second) for row in store.read_limit_rows()
    }
    assert rows == {"api": (1, 0.0), "db": (1, 0.0)}
    assert store.count_active_slots() == {"api": 1, "db": 1}
    assert store.try_acquire_slots(["db"], 1, "h:1:new") is False  # the old slot is held
    assert store.release_slots("elsewhere:1:old") == 2
    assert store.try_acquire_slots(["db"], 1, "h:1:new") is True


@pytest.mark.empty_database
def test_the_decay_migration_downgrades_dropping_rate_limit_slots_only(url: str) -> None:
    from alembic import command

    upgrade(url)
    store = get_store()
    store.set_concurrency_limit("api", 2, slot_decay_per_second=0.01)
    assert store.try_acquire_slots(["api"], 1, "h:1:rate", rate_limit=True)
    assert store.try_acquire_slots(["api"], 1, "h:1:held")
    command.downgrade(alembic_config(url), "0013")
    reset_store()
    assert current_revision(url) == "0013"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            holders = connection.execute(text("SELECT holder FROM concurrency_slots")).scalars()
            assert list(holders) == ["h:1:held"]
            columns = {
                column["name"] for column in inspect(connection).get_columns("concurrency_limits")
            }
            assert "slot_decay_per_second" not in columns
    finally:
        engine.dispose()


@pytest.mark.empty_database
def test_deployments_of_revision_0014_keep_their_pause_which_ends_when_resumed(url: str) -> None:
    """0016 adds when a pause ends by itself and the file's last synced ``paused``: a
    deployment paused before has neither (its pause lasts until resumed), and downgrading
    drops both, keeping the pause."""
    from alembic import command

    command.upgrade(alembic_config(url), "0014")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO deployments (name, flow, schedule_kind, schedule, active, paused,"
                    " paused_by, registered_at, updated) VALUES ('job', 'm:f', 'interval', '1m',"
                    " :yes, :yes, 'alice', :now, :now)"
                ),
                {"yes": True, "now": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        store = get_store()  # first use migrates to head
        row = store.read_deployment("job")
        assert row is not None
        assert (row.paused, row.paused_by, row.paused_until, row.config_paused) == (
            True,
            "alice",
            None,
            None,
        )
        assert store.read_schedule_states()["job"].paused_until is None
        command.downgrade(alembic_config(url), "0014")
        reset_store()
        with engine.connect() as connection:
            columns = {column["name"] for column in inspect(connection).get_columns("deployments")}
            paused = connection.execute(text("SELECT paused FROM deployments")).scalar()
    finally:
        engine.dispose()
    assert {"paused_until", "config_paused"}.isdisjoint(columns)
    assert paused


@pytest.mark.sqlite_only
def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(store: Store) -> None:
    with store.engine.connect() as connection:
        pragma = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        }
    assert pragma == {
        "journal_mode": "wal",
        "busy_timeout": 30000,
        "foreign_keys": 1,
        "synchronous": 1,
    }


def _writers_lock_free(url: str) -> bool:
    """Whether another open file description could take the SQLite writers' flock now."""
    import fcntl

    fd = os.open(f"{make_url(url).database}.writers", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing also releases a lock taken here
    return True


@pytest.mark.sqlite_only
def test_a_write_transaction_holds_the_writers_lock_exactly_until_it_ends(
    fresh_engine: Engine, url: str
) -> None:
    with fresh_engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE scratch (x INTEGER)")
        assert not _writers_lock_free(url)
    assert _writers_lock_free(url)

    def roll_back() -> None:
        with fresh_engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO scratch VALUES (1)")
            raise ValueError("roll back")

    with pytest.raises(ValueError, match="roll back"):
        roll_back()
    assert _writers_lock_free(url)
    with read_engine(fresh_engine).connect() as connection:  # deferred reads take no turn
        connection.exec_driver_sql("SELECT count(*) FROM scratch").scalar()
        assert _writers_lock_free(url)


@pytest.mark.sqlite_only
def test_a_second_writer_waits_for_the_first_then_sees_its_commit(
    fresh_engine: Engine,
) -> None:
    with fresh_engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE scratch (x INTEGER)")
    first_holds, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with fresh_engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO scratch VALUES (1)")
            first_holds.set()
            release.wait(10)

    def second() -> None:
        with fresh_engine.begin() as connection:
            seen.append(connection.exec_driver_sql("SELECT count(*) FROM scratch").scalar_one())

    holder = threading.Thread(target=first)
    holder.start()
    assert first_holds.wait(10)
    waiter = threading.Thread(target=second)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # queued behind the first writer
    assert not seen
    release.set()
    holder.join(10)
    waiter.join(10)
    assert seen == [1]


@pytest.mark.sqlite_only
def test_a_nested_write_in_one_thread_fails_on_the_busy_timeout_rather_than_hanging(
    fresh_engine: Engine,
) -> None:
    outcome: list[BaseException | None] = []

    def nested() -> None:
        with fresh_engine.begin() as outer:
            outer.exec_driver_sql("CREATE TABLE scratch (x INTEGER)")
            inner = fresh_engine.connect()
            inner.connection.dbapi_connection.execute("PRAGMA busy_timeout = 100")
            try:
                inner.begin()
                outcome.append(None)
            except BaseException as error:
                outcome.append(error)
            finally:
                inner.close()

    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "a nested write waited for its own thread's lock"
    assert isinstance(outcome[0], OperationalError)
    assert "database is locked" in str(outcome[0])


# The batched writer.


def test_insert_and_updates_in_one_batch_become_one_insert_with_final_values(
    slow_flush: None, store: Store, statements: Callable[[Engine], list[tuple[str, int]]]
) -> None:
    run = flow_run()
    task = task_run(run["id"], state_type="PENDING")
    store.insert_flow_run(run)
    store.insert_task_run(task)
    store.update_task_run(task["id"], state_type="RUNNING", run_count=1)
    store.update_task_run(task["id"], state_type="COMPLETED", end_time=now())
    seen = statements(store.engine)
    store.flush()
    writes = [sql for sql, _ in seen if not sql.startswith(("BEGIN", "SELECT"))]
    assert [sql.split(" (")[0] for sql in writes] == [
        "INSERT INTO flow_runs",
        "INSERT INTO task_runs",
    ]
    row = store.read_task_run(task["id"])
    assert row is not None
    assert (row.state_type, row.run_count) == ("COMPLETED", 1)
    assert row.end_time is not None


def test_updates_of_stored_runs_are_merged_and_grouped_by_columns(
    slow_flush: None, store: Store, statements: Callable[[Engine], list[tuple[str, int]]]
) -> None:
    run = flow_run()
    tasks = [task_run(run["id"]) for _ in range(3)]
    store.insert_flow_run(run)
    for task in tasks:
        store.insert_task_run(task)
    store.flush()
    seen = statements(store.engine)
    for task in tasks:
        store.update_task_run(task["id"], state_type="RUNNING")
        store.update_task_run(task["id"], state_name="Running")
    store.update_flow_run(run["id"], state_type="RUNNING")
    store.flush()
    updates = sorted((sql.split(" SET ")[0], rows) for sql, rows in seen if "UPDATE" in sql)
    assert updates == [("UPDATE flow_runs", 1), ("UPDATE task_runs", 3)]
    for row in store.read_task_runs(run["id"]):
        assert (row.state_type, row.state_name) == ("RUNNING", "Running")


@pytest.mark.parametrize(
    ("commit", "writer"), [("flush", "gnomon-store-writer"), ("commit_now", "MainThread")]
)
def test_flush_makes_rows_visible_to_other_connections(
    commit: str, writer: str, slow_flush: None, store: Store, fresh_engine: Engine
) -> None:
    """flush() has the writer thread commit at once; commit_now() commits in the caller's."""
    run = flow_run()
    store.insert_flow_run(run)
    store.insert_task_run(task_run(run["id"]))
    store.add_state(state(run["id"], None, "PENDING"))
    store.add_log({"flow_run_id": run["id"], "level": 20, "message": "hello"})
    assert count(fresh_engine, "flow_runs") == 0
    threads: set[str] = set()
    event.listen(  # the pool's: the writes bypass SQLAlchemy's Connection
        store.engine, "checkout", lambda *_: threads.add(threading.current_thread().name)
    )
    getattr(store, commit)()  # the writer thread on its own would wait 5 s
    tables = ("flow_runs", "task_runs", "run_states", "run_logs")
    assert {table: count(fresh_engine, table) for table in tables} == dict.fromkeys(tables, 1)
    assert threads == {writer}


def test_rows_are_written_within_the_flush_interval_without_flush(
    store: Store, fresh_engine: Engine
) -> None:
    store.insert_flow_run(flow_run())
    wait_until(lambda: count(fresh_engine, "flow_runs") == 1)


def test_flush_with_nothing_recorded_returns_at_once(slow_flush: None, store: Store) -> None:
    store.flush(timeout=0.001)  # would raise StoreWriteError if it waited for a write


def test_commit_now_never_lets_an_earlier_batch_overwrite_a_later_state(store: Store) -> None:
    """The writer thread may be committing an older batch when commit_now starts: the final
    state must still be the one that stands."""
    for _ in range(100):
        run = flow_run(state_name="Pending")
        store.insert_flow_run(run)
        store.commit_now()
        store.update_flow_run(run["id"], state_name="Running")
        flusher = threading.Thread(target=store.flush)
        flusher.start()  # the writer thread takes the Running batch
        store.update_flow_run(run["id"], state_name="Completed")
        store.commit_now()
        flusher.join()
        assert store.read_flow_run(run["id"]).state_name == "Completed"


def test_a_run_is_claimed_once_with_its_start_worker_and_running_state(store: Store) -> None:
    run = flow_run(state_type="SCHEDULED", state_name="Scheduled", run_count=0)
    store.insert_flow_run(run)
    store.flush()
    at = now()

    claimed = store.claim_flow_run(run["id"], at, worker_pid=4242)

    assert claimed is not None
    stored = store.read_flow_run(run["id"])
    assert (stored.state_type, stored.state_name, stored.worker_pid) == (
        "RUNNING",
        "Running",
        4242,
    )
    # What the worker needs to run it, as stored: it reads nothing back.
    assert claimed == ClaimedRun(
        **{name: getattr(stored, name) for name in ClaimedRun.__match_args__}
    )
    assert (claimed.id, claimed.start_time, claimed.run_count) == (run["id"], at, 1)
    [running] = store.read_states(flow_run_id=run["id"])
    assert (running.name, running.timestamp, running.attempt) == ("Running", at, 1)
    assert store.claim_flow_run(run["id"], worker_pid=99) is None
    assert store.read_flow_run(run["id"]).worker_pid == 4242
    assert store.claim_flow_run(new_id()) is None


def test_datetimes_come_back_as_the_same_instant_in_aware_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    created = datetime(2024, 6, 1, 14, 30, 15, 123456, tzinfo=paris)
    naive_utc = datetime(2024, 6, 1, 12, 45)
    run = flow_run(created=created, start_time=naive_utc)
    store.insert_flow_run(run)
    store.flush()
    row = store.read_flow_run(run["id"])
    assert row is not None
    assert row.created == created
    assert row.created.tzinfo is UTC
    assert row.created.hour == 12
    assert row.start_time == naive_utc.replace(tzinfo=UTC)
    assert row.start_time.tzinfo is UTC


def test_a_row_the_store_rejects_is_dropped_and_the_rest_of_its_batch_is_written(
    slow_flush: None, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    orphan = task_run(new_id())  # its flow run is never stored: a foreign key violation
    parent = flow_run()
    sibling = task_run(parent["id"])
    store.insert_task_run(orphan)
    store.insert_flow_run(parent)
    store.insert_task_run(sibling)
    with caplog.at_level(logging.ERROR, logger="gnomon.store"):
        store.flush()
    assert store.read_task_run(orphan["id"]) is None
    assert store.read_flow_run(parent["id"]) is not None
    assert store.read_task_run(sibling["id"]) is not None
    assert any("dropped a task_runs row" in record.getMessage() for record in caplog.records)
    later = flow_run()
    store.insert_flow_run(later)
    store.flush()
    assert store.read_flow_run(later["id"]) is not None


def lockable_store(monkeypatch: pytest.MonkeyPatch, busy_timeout_ms: int) -> tuple[Store, Path]:
    """A new store whose writes give up on a lock after ``busy_timeout_ms``, and its file,
    for another connection to lock; migrated and connected before that."""
    monkeypatch.setattr(_db, "BUSY_TIMEOUT_MS", busy_timeout_ms)
    reset_store()
    store = get_store()
    store.read_runs()
    path = _db.sqlite_path(store.url)
    assert path is not None
    return store, path


@pytest.mark.parametrize("commit", ["flush", "commit_now"])
@pytest.mark.sqlite_only
def test_a_locked_database_makes_flush_raise_and_the_rows_are_written_once_free(
    commit: str, slow_flush: None, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, path = lockable_store(monkeypatch, busy_timeout_ms=50)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        row = flow_run()
        store.insert_flow_run(row)
        with pytest.raises(StoreWriteError, match="locked"):
            getattr(store, commit)()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.flush()
    assert store.read_flow_run(row["id"]) is not None
    reset_store()


@pytest.mark.sqlite_only
def test_a_store_that_stays_unavailable_logs_one_traceback_then_a_line_per_retry(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An outage of minutes retries every few seconds: the first failure is logged with its
    traceback, each retry in one line, and the recovery once."""
    store, path = lockable_store(monkeypatch, busy_timeout_ms=20)
    blocker = sqlite3.connect(path, isolation_level=None)
    with caplog.at_level(logging.INFO, logger="gnomon.store"):
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            row = flow_run()
            store.insert_flow_run(row)
            wait_until(lambda: _write_failures(caplog) >= 4)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        store.flush()
    assert store.read_flow_run(row["id"]) is not None
    failures = [r for r in caplog.records if "store write failed" in r.getMessage()]
    assert failures[0].exc_info is not None
    assert all(r.exc_info is None for r in failures[1:])
    assert "failed again" in failures[1].getMessage()
    assert "locked" in failures[1].getMessage()
    [recovered] = [r for r in caplog.records if "work again" in r.getMessage()]
    assert f"after {len(failures)} failed attempts" in recovered.getMessage()
    reset_store()


def _write_failures(caplog: pytest.LogCaptureFixture) -> int:
    return sum("store write failed" in r.getMessage() for r in caplog.records)


def test_threads_recording_and_flushing_at_once_lose_nothing(store: Store) -> None:
    run = flow_run()
    store.insert_flow_run(run)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for n in range(200):
                task = task_run(run["id"])
                store.insert_task_run(task)
                store.add_state(state(run["id"], task["id"], "PENDING"))
                store.update_task_run(task["id"], state_type="COMPLETED")
                if n % 25 == 0:
                    store.flush()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.flush()
    assert errors == []
    rows = store.read_task_runs(run["id"])
    assert len(rows) == 800
    assert {row.state_type for row in rows} == {"COMPLETED"}
    assert len(all_states(store, run["id"])) == 800


def test_a_process_that_exits_without_flush_still_stores_its_rows(
    home: Path, fresh_engine: Engine
) -> None:
    code = """
        from datetime import UTC, datetime
        from gnomon.store import get_store

        run = {"id": "e" * 32, "name": "n", "flow_name": "f", "created": datetime.now(UTC)}
        get_store().insert_flow_run(run)
    """
    result = run_python(code, home, GNOMON_FLUSH_INTERVAL="5")
    assert result.returncode == 0, result.stderr
    assert count(fresh_engine, "flow_runs") == 1


def test_a_forked_child_starts_with_an_empty_batch_and_own_connections(
    slow_flush: None, store: Store, fresh_engine: Engine
) -> None:
    store.insert_flow_run(flow_run(name="before"))
    store.flush()  # the parent's kept connections are open when it forks
    parent_run = flow_run()
    store.insert_flow_run(parent_run)  # pending in the parent when it forks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12: fork with threads
        pid = os.fork()
    if pid == 0:
        status = 1
        try:
            child = get_store()
            # Its own connections, none of the parent's: SQLite forbids using those.
            assert child._writer.batches._pooled is None
            assert child._writer.direct._pooled is None
            child.insert_flow_run(flow_run(name="child"))
            child.flush()
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.flush()
    names = sorted(row.name for row in store.read_runs())
    assert names == ["before", "child", "run"]


# Reads.


def test_flow_runs_are_listed_newest_first_and_by_parent(store: Store) -> None:
    start = now()
    parent = flow_run(created=start)
    children = [
        flow_run(parent_flow_run_id=parent["id"], created=start + timedelta(seconds=n))
        for n in (1, 2)
    ]
    for row in (parent, *children):
        store.insert_flow_run(row)
    store.flush()
    assert [r.id for r in store.read_runs()] == [
        children[1]["id"],
        children[0]["id"],
        parent["id"],
    ]
    assert [r.id for r in store.read_runs(limit=1)] == [children[1]["id"]]
    listed = subflows(store, parent["id"])
    assert [r.id for r in listed] == [children[1]["id"], children[0]["id"]]
    assert store.read_flow_run(new_id()) is None


def test_audit_entries_page_newest_first_by_a_cursor_and_filter_by_actor_action_target(
    store: Store,
) -> None:
    # Two entries share a time, so a page may end between them: the cursor is (time, id).
    start = now()
    entries = [
        (start, "alice", "pause", "etl"),
        (start + timedelta(seconds=1), "bob", "resume", "etl"),
        (start + timedelta(seconds=1), "alice", "pause", "crm"),
        (start + timedelta(seconds=2), "bob", "run", "abcd1234"),
        (start + timedelta(seconds=3), "alice", "resume", "crm"),
    ]
    with store.engine.begin() as connection:
        for at, actor, action, target in entries:
            connection.execute(
                audit_log.insert(),
                {
                    "timestamp": at,
                    "actor": actor,
                    "origin": "cli",
                    "action": action,
                    "target": target,
                },
            )
    everything = store.read_audit()
    assert [(e.actor, e.action, e.target) for e in everything] == [
        (actor, action, target) for _, actor, action, target in reversed(entries)
    ]
    pages, before = [], None
    while True:
        page = store.read_audit(limit=2, before=before)
        if not page:
            break
        pages.append([entry.id for entry in page])
        before = (page[-1].timestamp, page[-1].id)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [entry_id for page in pages for entry_id in page] == [entry.id for entry in everything]
    alice = store.read_audit(actor="alice")
    assert [e.target for e in alice] == ["crm", "crm", "etl"]
    assert [e.actor for e in store.read_audit(action=AuditAction.RESUME)] == ["alice", "bob"]
    assert [e.action for e in store.read_audit(target="etl")] == ["resume", "pause"]
    both = store.read_audit(actor="alice", target="crm", before=(alice[0].timestamp, alice[0].id))
    assert [e.action for e in both] == ["pause"]
    assert store.read_audit(actor="nobody") == []


def test_a_deployments_finished_runs_are_those_that_started_and_ended_newest_first(
    store: Store,
) -> None:
    start = now()

    def run(minutes: int, state: StateType, name: str, **values: Any) -> dict[str, Any]:
        at = start + timedelta(minutes=minutes)
        return flow_run(
            created=at, deployment_name="etl", state_type=state, state_name=name, **values
        )

    ended = {"start_time": start, "end_time": start + timedelta(seconds=5)}
    completed = run(1, StateType.COMPLETED, "Completed", **ended)
    failed = run(2, StateType.FAILED, "TimedOut", **ended)
    skipped = run(3, StateType.CANCELLED, "Skipped", end_time=start)
    running = run(4, StateType.RUNNING, "Running", start_time=start)
    other = {**run(5, StateType.COMPLETED, "Completed", **ended), "deployment_name": "crm"}
    for row in (completed, failed, skipped, running, other):
        store.insert_flow_run(row)
    store.flush()
    finished = store.read_finished_runs("etl", 10)
    assert [row.id for row in finished] == [failed["id"], completed["id"]]
    assert [row.id for row in store.read_finished_runs("etl", 1)] == [failed["id"]]


def test_states_of_a_flow_run_exclude_its_tasks_unless_asked(store: Store) -> None:
    run = flow_run()
    task = task_run(run["id"])
    store.insert_flow_run(run)
    store.insert_task_run(task)
    for row in (
        state(run["id"], None, "PENDING"),
        state(run["id"], task["id"], "RUNNING"),
        state(run["id"], None, "RUNNING"),
        state(run["id"], task["id"], "COMPLETED"),
    ):
        store.add_state(row)
    store.flush()
    assert [s.type for s in store.read_states(flow_run_id=run["id"])] == [
        "PENDING",
        "RUNNING",
    ]
    assert [s.type for s in store.read_states(task_run_id=task["id"])] == [
        "RUNNING",
        "COMPLETED",
    ]
    assert len(all_states(store, run["id"])) == 4
    assert [t.id for t in store.read_task_runs(run["id"])] == [task["id"]]
    assert [(s.task_run_id, s.type) for s in store.read_task_states([task["id"]])] == [
        (task["id"], "RUNNING"),
        (task["id"], "COMPLETED"),
    ]
    assert store.read_task_states([]) == []


def test_a_runs_task_runs_are_read_a_page_at_a_time_and_counted_by_state(store: Store) -> None:
    run = flow_run()
    store.insert_flow_run(run)
    start = now()
    tasks = [
        task_run(run["id"], created=start + timedelta(seconds=n), state_name=name)
        for n, name in enumerate(["Completed", "Failed", "Completed", None, "Completed"])
    ]
    for task in tasks:
        store.insert_task_run(task)
    other = flow_run()
    store.insert_flow_run(other)
    store.insert_task_run(task_run(other["id"], state_name="Failed"))  # another run's
    store.flush()
    ids = [task["id"] for task in tasks]
    assert [t.id for t in store.read_task_runs(run["id"], 1, 2)] == ids[1:3]
    assert [t.id for t in store.read_task_runs(run["id"], 4, 10)] == ids[4:]
    assert [t.id for t in store.read_task_runs(run["id"])] == ids
    assert store.count_task_states(run["id"]) == {"Completed": 3, "Failed": 1, "?": 1}
    assert store.count_task_states(other["id"]) == {"Failed": 1}
    assert store.count_task_states(flow_run()["id"]) == {}


def test_logs_can_be_followed_after_an_id_and_filtered_by_task(store: Store) -> None:
    run = flow_run()
    task = task_run(run["id"])
    store.insert_flow_run(run)
    store.insert_task_run(task)
    for n in range(5):
        store.add_log(
            {
                "flow_run_id": run["id"],
                "task_run_id": task["id"] if n % 2 else None,
                "level": 20,
                "message": f"line {n}",
                "extra": {"n": n},
            }
        )
    store.flush()
    logs = logs_of(store, flow_run_id=run["id"])
    assert [log.message for log in logs] == [f"line {n}" for n in range(5)]
    assert logs[0].extra == {"n": 0}
    assert logs[0].timestamp.tzinfo is UTC
    after = LogQuery(flow_run_id=run["id"], after_id=logs[2].id)
    later = store.search_logs(after, 1, newest=False)
    assert [log.message for log in later] == ["line 3"]
    by_task = logs_of(store, task_run_id=task["id"])
    assert [log.message for log in by_task] == ["line 1", "line 3"]


def test_deleting_a_flow_run_deletes_its_task_runs_states_and_logs(store: Store) -> None:
    run = flow_run()
    task = task_run(run["id"])
    store.insert_flow_run(run)
    store.insert_task_run(task)
    store.add_state(state(run["id"], task["id"], "PENDING"))
    store.add_log({"flow_run_id": run["id"], "level": 20, "message": "m"})
    store.flush()
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM flow_runs"))
    for table in ("task_runs", "run_states", "run_logs"):
        assert count(store.engine, table) == 0


# Concurrency limits and slots.


def test_concurrency_limits_can_be_set_changed_listed_and_deleted(store: Store) -> None:
    store.set_concurrency_limit("db", 2)
    store.set_concurrency_limit("tag:io", 5)
    store.set_concurrency_limit("db", 3)
    assert store.read_concurrency_limits(["db"]).get("db") == 3
    assert store.read_concurrency_limits(["missing"]).get("missing") is None
    assert store.read_concurrency_limits() == {"db": 3, "tag:io": 5}
    assert store.delete_concurrency_limit("db") is True
    assert store.delete_concurrency_limit("db") is False
    assert store.read_concurrency_limits() == {"tag:io": 5}
    with pytest.raises(ValueError, match="concurrency limit 'db': limit must be >= 0, got -1"):
        store.set_concurrency_limit("db", -1)
    store.set_concurrency_limit("api", 4, slot_decay_per_second=0.5)
    assert [
        (row.name, row.slot_limit, row.slot_decay_per_second) for row in store.read_limit_rows()
    ] == [
        ("api", 4, 0.5),
        ("tag:io", 5, 0.0),
    ]
    with pytest.raises(ValueError, match="slot_decay_per_second is a finite number"):
        store.set_concurrency_limit("api", 4, slot_decay_per_second=-0.5)


def test_slots_are_taken_on_every_limit_or_on_none(store: Store) -> None:
    store.set_concurrency_limit("wide", 2)
    store.set_concurrency_limit("narrow", 1)
    assert store.try_acquire_slots(["wide", "narrow", "unlimited"], 1, "h:1:a") is True
    assert store.try_acquire_slots(["wide", "narrow"], 1, "h:1:b") is False
    assert slot_holders(store) == ["h:1:a", "h:1:a"]  # nothing taken on "wide" for b
    assert store.try_acquire_slots(["wide"], 1, "h:1:b") is True
    assert store.try_acquire_slots(["wide"], 1, "h:1:c") is False
    assert store.try_acquire_slots(["unlimited"], 5, "h:1:c") is True
    assert store.release_slots("h:1:a") == 2
    assert store.try_acquire_slots(["wide", "narrow"], 1, "h:1:c") is True
    assert store.try_acquire_slots(["wide"], 3, "h:1:d") is False  # larger than the limit


def test_rate_limit_slots_free_themselves_and_outlive_their_dead_process(store: Store) -> None:
    store.set_concurrency_limit("api", 2, slot_decay_per_second=1000)  # a slot lasts 1 ms
    store.set_concurrency_limit("db", 1)
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    assert process.wait() == 0  # exited and reaped: its pid names no process now
    gone = f"{socket.gethostname()}:{process.pid}:t"
    assert store.try_acquire_slots(["api"], 2, gone, rate_limit=True)
    assert store.try_acquire_slots(["db"], 1, gone)
    assert store.reap_stale_slots() == 1  # the held "db" slot only
    assert sorted(slot_holders(store)) == [gone, gone]
    deadline = time.monotonic() + 20
    while not store.try_acquire_slots(["api"], 2, "h:1:a", rate_limit=True):
        assert time.monotonic() < deadline, "rate-limit slots never freed themselves"
        time.sleep(0.01)
    assert slot_holders(store) == ["h:1:a", "h:1:a"]  # the expired rows were deleted
    with pytest.raises(ConcurrencySlotAcquisitionError, match="no decay on 'db'"):
        store.try_acquire_slots(["db", "api"], 1, "h:1:b", rate_limit=True)


def test_deleting_a_limit_frees_its_slots(store: Store) -> None:
    store.set_concurrency_limit("db", 1)
    assert store.try_acquire_slots(["db"], 1, "h:1:a")
    store.delete_concurrency_limit("db")
    assert slot_holders(store) == []


def test_threads_racing_for_slots_never_exceed_the_limit(store: Store) -> None:
    store.set_concurrency_limit("db", 3)
    for round_ in range(5):
        acquired = race_for_slots(store, [f"h:1:{round_}-{n}" for n in range(12)])
        assert acquired.count(True) == 3
        assert len(slot_holders(store)) == 3
        for holder in set(slot_holders(store)):
            store.release_slots(holder)


def race_for_slots(store: Store, holders: list[str]) -> list[bool]:
    """One thread per holder, released together, each trying for a slot of "db"."""
    barrier = threading.Barrier(len(holders))
    acquired: list[bool] = []
    errors: list[BaseException] = []

    def contend(holder: str) -> None:
        barrier.wait(timeout=10)
        try:
            acquired.append(store.try_acquire_slots(["db"], 1, holder))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=contend, args=(holder,)) for holder in holders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return acquired


def test_slots_of_dead_processes_on_this_host_are_reaped(store: Store) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    assert process.wait() == 0  # exited and reaped: its pid names no process now
    host = socket.gethostname()
    store.set_concurrency_limit("db", 10)
    holders = [f"{host}:{process.pid}:t", f"{host}:{os.getpid()}:t", f"elsewhere:{process.pid}:t"]
    for holder in holders:
        assert store.try_acquire_slots(["db"], 1, holder)
    assert store.reap_stale_slots() == 1
    assert sorted(slot_holders(store)) == sorted(holders[1:])


def slot_holders(store: Store) -> list[str]:
    with store.engine.connect() as connection:
        return list(connection.execute(text("SELECT holder FROM concurrency_slots")).scalars())


# Many processes, one database file.

WRITER = """
    import uuid
    from datetime import UTC, datetime
    from gnomon.store import get_store

    store = get_store()
    run_id = uuid.uuid4().hex
    run = {"id": run_id, "name": "n", "flow_name": "f", "created": datetime.now(UTC)}
    store.insert_flow_run(run)
    for n in range(200):
        task_id = uuid.uuid4().hex
        row = {"id": task_id, "flow_run_id": run_id, "task_key": "k", "name": "t"}
        store.insert_task_run({**row, "created": datetime.now(UTC), "state_type": "PENDING"})
        for type_ in ("PENDING", "RUNNING", "COMPLETED"):
            store.update_task_run(task_id, state_type=type_)
            store.add_state({"flow_run_id": run_id, "task_run_id": task_id, "type": type_})
        if n % 20 == 19:
            store.flush()
    store.flush()
"""


@pytest.mark.slow
def test_eight_processes_writing_at_once_store_every_row(
    home: Path, url: str, fresh_engine: Engine
) -> None:
    upgrade(url)
    # A 1 ms flush interval: each process commits hundreds of small transactions.
    results = run_together(WRITER, home, processes=8, GNOMON_FLUSH_INTERVAL="0.001")
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "locked" not in result.stderr
    with fresh_engine.connect() as connection:
        per_run = connection.execute(
            select(task_runs.c.flow_run_id, func.count())
            .where(task_runs.c.state_type == "COMPLETED")
            .group_by(task_runs.c.flow_run_id)
        ).all()
        states = connection.execute(select(func.count()).select_from(run_states)).scalar()
    assert sorted(n for _, n in per_run) == [200] * 8
    assert states == 8 * 200 * 3


@pytest.mark.empty_database
@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_eight_processes_first_using_a_new_database_at_once_all_succeed(
    home: Path, url: str, fresh_engine: Engine, attempt: int
) -> None:
    code = """
        from datetime import UTC, datetime
        from gnomon.store import get_store
        run = {"id": uuid.uuid4().hex, "name": "n", "flow_name": "f", "created": datetime.now(UTC)}
        first = {"state_type": "SCHEDULED", "state_name": "Scheduled", "deployment_name": None}
        get_store().create_runs([{**run, **first}])
    """
    results = run_together("import uuid\n" + textwrap.dedent(code), home, processes=8)
    for result in results:
        assert result.returncode == 0, result.stderr
    assert current_revision(url) == HEAD_REVISION
    assert count(fresh_engine, "flow_runs") == 8


def python_env(home: Path, **env: str) -> dict[str, str]:
    environment = {**os.environ, "GNOMON_HOME": str(home), **env}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SRC), environment.get("PYTHONPATH")])
    )
    return environment


def run_python(code: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter against the state directory ``home``."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=python_env(home, **env),
        check=False,
    )


def run_together(
    code: str, home: Path, processes: int, **env: str
) -> list[subprocess.CompletedProcess[str]]:
    """Run ``code`` in several interpreters, released at the same moment once all started.

    Each child imports what it needs, reports ready and waits for a line on stdin, so the
    interesting part starts in all of them together rather than staggered by start-up time.
    """
    prelude = "import sys\nimport gnomon.store\nprint('ready', flush=True)\nsys.stdin.readline()\n"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", prelude + textwrap.dedent(code)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(home, **env),
        )
        for _ in range(processes)
    ]
    results = []
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            stdout, stderr = child.communicate(timeout=90)
            results.append(
                subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
            )
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    return results


@pytest.mark.parametrize("table", ["run_states", "run_logs"])
@pytest.mark.sqlite_only
def test_task_run_lookups_use_an_index_that_leaves_out_flow_level_rows(
    table: str, store: Store
) -> None:
    """A flow run's own states and logs (most rows a daemon writes) cost no index entry."""
    with store.engine.connect() as connection:
        plan = connection.exec_driver_sql(
            f"EXPLAIN QUERY PLAN SELECT * FROM {table} WHERE task_run_id = ?", ("x" * 32,)
        ).fetchall()
        [index_sql] = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = ?", (f"ix_{table}_task_run_id",)
        ).fetchone()
    assert f"USING INDEX ix_{table}_task_run_id" in " ".join(str(row[-1]) for row in plan)
    assert index_sql.endswith("WHERE task_run_id IS NOT NULL")


@pytest.mark.sqlite_only
def test_the_daemons_poll_for_changed_deployments_reads_an_index_not_the_table(
    store: Store,
) -> None:
    """Polled every second: with 10,000 deployments a table scan was an idle daemon's CPU."""
    compiled = pause_changes(now()).compile(store.engine)
    values = tuple(str(compiled.params[name]) for name in compiled.positiontup or [])
    with store.engine.connect() as connection:
        plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, values)
        details = " ".join(str(row[-1]) for row in plan.fetchall())
    assert "USING INDEX ix_deployments_updated" in details


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://app:hunter2@db:5432/gnomon", "postgresql+psycopg://app:***@db:5432/gnomon"),
        ("postgresql+psycopg://app@db/gnomon?password=hunter2", "postgresql+psycopg://app@db/gnomon?password=***"),
        ("postgresql://db/gnomon?sslpassword=hunter2&sslmode=require", "postgresql://db/gnomon?sslpassword=***&sslmode=require"),
        ("postgresql+psycopg:///gnomon?host=/run/pg&password=hunter2", "postgresql+psycopg:///gnomon?host=/run/pg&password=***"),
        ("postgresql://app@db/gnomon?application_name=cron@host1", "postgresql://app@db/gnomon?application_name=cron@host1"),
        ("postgresql://app:p%40ss@db/gnomon", "postgresql://app:***@db/gnomon"),
    ],
)  # fmt: skip
def test_a_store_is_named_to_operators_without_any_of_its_passwords(url: str, shown: str) -> None:
    from gnomon.store import store_name

    assert store_name(url) == shown


def test_recent_runs_are_the_newest_of_each_deployment_newest_first(store: Store) -> None:
    start = now()
    made: dict[str, list[str]] = {}
    for name, count in (("a", 5), ("b", 1), ("c", 3)):
        for n in range(count):
            run = flow_run(deployment_name=name, created=start + timedelta(seconds=n))
            store.insert_flow_run(run)
            made.setdefault(name, []).append(run["id"])
    store.flush()
    # 150 names: more than one statement's worth (RECENT_CHUNK), most without runs.
    names = ["a", "b", *(f"idle-{n}" for n in range(147)), "c"]
    recent = store.read_recent_states(names, 2)
    assert [r.id for r in recent["a"]] == made["a"][:-3:-1]
    assert [r.id for r in recent["b"]] == made["b"]
    assert [r.id for r in recent["c"]] == made["c"][:-3:-1]
    assert recent["idle-7"] == []
    assert set(recent) == set(names)
