"""The store's hot writes, compiled ahead of time and run on the driver's own connection
(``_writes``, ``_driver``): what they hand the driver is what SQLAlchemy would have written,
with the same defaults, conversions and errors, on both backends; and the driver's
transactions commit, roll back and keep their connection as the store relies on.

These reach the store's private modules: the driver path is the store's internals, and
the public methods built on it (claims, batches, fires) are tested in test_store.py."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from gnomon.store import Store, _db
from gnomon.store._calls import Call
from gnomon.store._db import DriverConnection, driver_transaction
from gnomon.store._driver import Bound, DriverQueries, driver_queries
from gnomon.store.rows import ClaimedRun, FlowRunRow

pytestmark = pytest.mark.backends


def queries(store: Store) -> DriverQueries:
    return driver_queries(store.engine.dialect.name)


def insert_runs(store: Store, *rows: dict[str, Any]) -> None:
    with driver_transaction(store.engine) as transaction:
        for bound in queries(store).bind_rows("insert_flow_run", rows):
            transaction.run(bound)


def stored_run(store: Store, letter: str) -> FlowRunRow:
    stored = store.read_flow_run(letter * 32)
    assert stored is not None
    return stored


def run(letter: str, **columns: Any) -> dict[str, Any]:
    return {"id": letter * 32, "name": "run", "flow_name": "flow", **columns}


def test_an_insert_fills_the_schemas_defaults_and_converts_json_and_times(store: Store) -> None:
    moment = datetime(2027, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    before = datetime.now(UTC)
    insert_runs(store, run("a", parameters={"n": 1, "tags": ["x"]}, expected_start_time=moment))

    stored = store.read_flow_run("a" * 32)
    assert stored is not None
    assert stored.parameters == {"n": 1, "tags": ["x"]}
    assert stored.expected_start_time == datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    assert stored.run_count == 0  # the column's default
    assert stored.force is False
    assert stored.created >= before  # made when the row was written
    assert stored.created.tzinfo is UTC
    assert stored.tags is None  # a JSON column left out is NULL, not the text 'null'


def test_rows_with_different_columns_share_one_insert(store: Store) -> None:
    rows = [run("b", flow_version="1"), run("c", tags=["t"])]
    [bound] = queries(store).bind_rows("insert_flow_run", rows)
    with driver_transaction(store.engine) as transaction:
        transaction.run(bound)

    assert stored_run(store, "b").flow_version == "1"
    assert stored_run(store, "c").tags == ["t"]


def test_an_update_sets_only_the_columns_a_row_gives(store: Store) -> None:
    insert_runs(store, run("d", flow_version="1", tags=["t"]))
    rows = [{"row_id": "d" * 32, "name": "renamed", "end_time": datetime(2027, 1, 1)}]
    [bound] = queries(store).bind_rows("update_flow_run", rows)
    with driver_transaction(store.engine) as transaction:
        assert transaction.count(bound) == 1

    stored = store.read_flow_run("d" * 32)
    assert stored is not None
    assert (stored.name, stored.flow_version, stored.tags) == ("renamed", "1", ["t"])
    assert stored.end_time == datetime(2027, 1, 1, tzinfo=UTC)  # naive: taken as UTC


def test_updates_setting_different_columns_are_separate_statements(store: Store) -> None:
    rows: list[dict[str, Any]] = [
        {"row_id": "e", "name": "x"},
        {"row_id": "f", "name": "y"},
        {"row_id": "g", "tags": []},
    ]
    bound = queries(store).bind_rows("update_flow_run", rows)
    assert [len(statement.parameters) for statement in bound] == [2, 1]
    assert [[row["row_id"] for row in statement.rows] for statement in bound] == [["e", "f"], ["g"]]


def test_a_column_the_table_does_not_have_is_refused_before_the_transaction(store: Store) -> None:
    with pytest.raises(ValueError, match="no_such_column"):
        queries(store).bind_rows("insert_flow_run", [run("h", no_such_column=1)])
    with pytest.raises(ValueError, match="no_such_column"):
        queries(store).bind_rows("update_task_run", [{"row_id": "h", "no_such_column": 1}])


def test_a_missing_value_for_a_required_parameter_is_an_error(store: Store) -> None:
    with pytest.raises(KeyError, match="row_id"):
        queries(store).bind(Call("claim", {"start_time": None, "updated": None, "worker_pid": 1}))


def test_a_compiled_write_raises_sqlalchemys_errors(store: Store) -> None:
    insert_runs(store, run("i"))
    with pytest.raises(IntegrityError):
        insert_runs(store, run("i"))


def test_returned_rows_read_back_as_python_values(store: Store) -> None:
    insert_runs(store, run("j", parameters={"x": [1]}, state_type="SCHEDULED"))
    now = datetime(2027, 5, 1, 8, 30, 0, 123456, tzinfo=UTC)
    claim = queries(store).bind(
        Call("claim", {"row_id": "j" * 32, "start_time": now, "updated": now, "worker_pid": 7})
    )
    with driver_transaction(store.engine) as transaction:
        [values] = queries(store).decode("claim", transaction.rows(claim))
    returned = ClaimedRun(*values)

    assert returned.parameters == {"x": [1]}
    assert returned.start_time == now
    assert returned.start_time.tzinfo is UTC
    assert returned.run_count == 1


def test_a_driver_transaction_commits_or_rolls_back_as_a_whole(store: Store) -> None:
    [first] = queries(store).bind_rows("insert_flow_run", [run("k")])
    [both] = queries(store).bind_rows("insert_flow_run", [run("k"), run("l")])

    def fail_half_way() -> None:
        with driver_transaction(store.engine) as transaction:
            transaction.run(first)
            raise RuntimeError("the caller failed half-way")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert store.read_flow_run("k" * 32) is None

    # The write turn was given back: the next transaction neither waits nor fails.
    with driver_transaction(store.engine) as transaction:
        transaction.run(both)
    assert store.read_flow_run("k" * 32) is not None
    assert store.read_flow_run("l" * 32) is not None


def test_a_driver_transaction_raises_the_drivers_errors_as_sqlalchemys(store: Store) -> None:
    error = {"sqlite": OperationalError, "postgresql": ProgrammingError}
    with (
        pytest.raises(error[store.engine.dialect.name], match="no_such_table"),
        driver_transaction(store.engine) as transaction,
    ):
        transaction.connection.cursor().execute("INSERT INTO no_such_table VALUES (1)")


def test_a_kept_connection_serves_one_transaction_after_another_until_one_fails(
    store: Store,
) -> None:
    [first_row] = queries(store).bind_rows("insert_flow_run", [run("m")])
    [second_row] = queries(store).bind_rows("insert_flow_run", [run("n")])
    kept = DriverConnection(store.engine)
    with kept.transaction() as first:
        first.run(first_row)
    with kept.transaction() as second:
        second.run(second_row)
    assert second.connection is first.connection

    with pytest.raises(IntegrityError), kept.transaction() as failing:
        failing.run(first_row)
    with kept.transaction() as after_failure:  # a fresh connection: the failed one is gone
        assert after_failure.connection is not first.connection
    assert store.read_flow_run("m" * 32) is not None

    kept.close()
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_transaction_never_waits_for_another_threads_hold_on_the_kept_connection(
    store: Store,
) -> None:
    kept = DriverConnection(store.engine)
    holding, release = threading.Event(), threading.Event()
    connections: list[Any] = []

    def hold() -> None:
        with kept.transaction() as transaction:
            connections.append(transaction.connection)
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    other = threading.Thread(target=lambda: insert_with(kept, connections))
    other.start()
    if store.engine.dialect.name == "postgresql":  # a server lets both write at once
        other.join(10)
        assert not other.is_alive()
    release.set()
    holder.join(10)
    other.join(10)

    assert connections[1] is not connections[0]  # a pooled connection of its own
    assert store.read_flow_run("p" * 32) is not None
    kept.close()


def insert_with(kept: DriverConnection, connections: list[Any]) -> None:
    [bound] = driver_queries(kept.engine.dialect.name).bind_rows("insert_flow_run", [run("p")])
    with kept.transaction() as transaction:
        connections.append(transaction.connection)
        transaction.run(bound)


@pytest.mark.postgresql_only
def test_a_kept_server_connection_the_server_dropped_is_replaced_before_a_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = DriverConnection(store.engine)
    with kept.transaction() as first:
        [[pid]] = first.rows(Bound("SELECT pg_backend_pid()", [[]], [{}]))
    with store.engine.connect() as other:  # the server ends the kept connection's session
        other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    monkeypatch.setattr(_db, "SERVER_CHECK_DELAY", 0.0)  # idle long enough to be checked

    [bound] = queries(store).bind_rows("insert_flow_run", [run("o")])
    with kept.transaction() as transaction:
        transaction.run(bound)

    assert transaction.connection is not first.connection
    assert store.read_flow_run("o" * 32) is not None
    kept.close()


@pytest.mark.sqlite_only
def test_a_statement_keeps_the_rows_asked_for_with_their_values() -> None:
    bound = Bound("SQL", [[1], [2], [3]], [{"n": 1}, {"n": 2}, {"n": 3}])
    kept = bound.keeping(lambda row: row["n"] != 2)
    assert kept == Bound("SQL", [[1], [3]], [{"n": 1}, {"n": 3}])


def test_a_boolean_column_takes_only_what_sqlalchemys_boolean_takes(store: Store) -> None:
    insert_runs(store, run("m", force=True), run("n", force=0))
    assert (stored_run(store, "m").force, stored_run(store, "n").force) == (True, False)
    for wrong in ("false", 2):
        with pytest.raises(TypeError, match="not a boolean"):
            insert_runs(store, run("o", force=wrong))
    assert store.read_flow_run("o" * 32) is None


@pytest.mark.sqlite_only
def test_a_kept_connection_that_cannot_open_its_spare_fails_as_unavailable_and_leaks_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keeping a SQLite connection opens a spare for reads; if that cannot be opened (no
    file descriptors left, say), the error is SQLAlchemy's (the writer keeps its rows
    and retries) and the connection taken for keeping goes back to the pool."""
    from gnomon.store._writer import _unavailable

    engine = _db.create_engine(f"sqlite:///{tmp_path / 'spare.db'}")
    pool = engine.pool
    original = engine.raw_connection
    original().close()  # one in the pool: the connection to keep is taken from it

    def refusing_new_ones() -> Any:
        if pool.checkedin() == 0:
            raise sqlite3.OperationalError("unable to open database file")
        return original()

    monkeypatch.setattr(engine, "raw_connection", refusing_new_ones)
    kept = DriverConnection(engine)
    with pytest.raises(OperationalError) as raised, kept.transaction():
        pass
    assert _unavailable(raised.value)
    assert pool.checkedout() == 0
    engine.dispose()
