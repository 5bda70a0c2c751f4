"""Prepared statements: what the store's hot writes hand the driver is what SQLAlchemy would
have executed, with the same defaults, conversions and errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError, InvalidRequestError, OperationalError

from gnomon.store import Store
from gnomon.store._db import DriverConnection, driver_transaction
from gnomon.store._prepared import prepare, result_row
from gnomon.store._schema import flow_runs


def test_an_insert_fills_python_defaults_and_converts_json_and_times(store: Store) -> None:
    moment = datetime(2027, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    row = {
        "id": "a" * 32,
        "name": "run",
        "flow_name": "flow",
        "parameters": {"n": 1, "tags": ["x"]},
        "state_type": "PENDING",
        "state_name": "Pending",
        "expected_start_time": moment,
    }
    statement = prepare(flow_runs.insert(), store.engine.dialect, tuple(row))
    with driver_transaction(store.engine) as connection:
        statement.execute(connection, statement.parameters([row]))

    stored = store.read_flow_run("a" * 32)
    assert stored is not None
    assert stored.parameters == {"n": 1, "tags": ["x"]}
    assert stored.expected_start_time == datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    assert stored.run_count == 0  # the column's default
    assert stored.created is not None
    assert stored.created.tzinfo is UTC


def test_a_prepared_statement_raises_sqlalchemys_errors(store: Store) -> None:
    row = {"id": "b" * 32, "name": "run", "flow_name": "flow"}
    statement = prepare(flow_runs.insert(), store.engine.dialect, tuple(row))
    with driver_transaction(store.engine) as connection:
        statement.execute(connection, statement.parameters([row]))
    with pytest.raises(IntegrityError), driver_transaction(store.engine) as connection:
        statement.execute(connection, statement.parameters([row]))


def test_returned_rows_read_back_as_python_values(store: Store) -> None:
    row = {"id": "c" * 32, "name": "run", "flow_name": "flow", "tags": ["t"]}
    insert = prepare(flow_runs.insert(), store.engine.dialect, tuple(row))
    rename = prepare(
        update(flow_runs)
        .where(flow_runs.c.id == bindparam("_id"))
        .values(name="renamed")
        .returning(flow_runs.c.id, flow_runs.c.tags, flow_runs.c.created),
        store.engine.dialect,
        (),
    )
    with driver_transaction(store.engine) as connection:
        insert.execute(connection, insert.parameters([row]))
        cursor = rename.execute(connection, rename.parameters([{"_id": "c" * 32}]))
        names = [column[0] for column in cursor.description]
        [values] = cursor.fetchall()

    returned = result_row(flow_runs, store.engine.dialect, names, values)
    assert returned["tags"] == ["t"]
    assert returned["created"].tzinfo is UTC
    assert store.read_flow_run("c" * 32).name == "renamed"  # type: ignore[index]


def test_an_update_binds_its_literal_values_and_named_parameters(store: Store) -> None:
    row = {"id": "d" * 32, "name": "run", "flow_name": "flow"}
    insert = prepare(flow_runs.insert(), store.engine.dialect, tuple(row))
    rename = prepare(
        update(flow_runs).where(flow_runs.c.id == bindparam("_id")).values(name="renamed"),
        store.engine.dialect,
        ("_id",),
    )
    with driver_transaction(store.engine) as connection:
        insert.execute(connection, insert.parameters([row]))
        rename.execute(connection, rename.parameters([{"_id": "d" * 32}]))

    assert store.read_flow_run("d" * 32).name == "renamed"  # type: ignore[index]


def test_a_missing_value_for_a_required_parameter_is_an_error(store: Store) -> None:
    rename = prepare(
        update(flow_runs).where(flow_runs.c.id == bindparam("_id")).values(name="n"),
        store.engine.dialect,
        ("_id",),
    )
    with pytest.raises(InvalidRequestError, match="'_id'"):
        rename.parameters([{}])


def test_a_statement_expanded_per_execution_cannot_be_prepared(store: Store) -> None:
    statement = update(flow_runs).where(flow_runs.c.id.in_(["x", "y"])).values(name="n")
    with pytest.raises(ValueError, match="expanded per execution"):
        prepare(statement, store.engine.dialect, ())


def test_a_driver_transaction_commits_or_rolls_back_as_a_whole(store: Store) -> None:
    rows = [{"id": x * 32, "name": "run", "flow_name": "flow"} for x in "de"]
    insert = prepare(flow_runs.insert(), store.engine.dialect, tuple(rows[0]))

    def fail_half_way() -> None:
        with driver_transaction(store.engine) as connection:
            insert.execute(connection, insert.parameters(rows[:1]))
            raise RuntimeError("the caller failed half-way")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert store.read_flow_run("d" * 32) is None

    # The write turn was given back: the next transaction neither waits nor fails.
    with driver_transaction(store.engine) as connection:
        insert.execute(connection, insert.parameters(rows))
    assert store.read_flow_run("d" * 32) is not None
    assert store.read_flow_run("e" * 32) is not None


def test_a_driver_transaction_raises_the_drivers_errors_as_sqlalchemys(store: Store) -> None:
    with (
        pytest.raises(OperationalError, match="no such table"),
        driver_transaction(store.engine) as connection,
    ):
        connection.execute("INSERT INTO no_such_table VALUES (1)")


def test_a_kept_connection_serves_one_transaction_after_another_until_one_fails(
    store: Store,
) -> None:
    rows = [{"id": x * 32, "name": "run", "flow_name": "flow"} for x in "fg"]
    insert = prepare(flow_runs.insert(), store.engine.dialect, tuple(rows[0]))
    kept = DriverConnection(store.engine)
    with kept.transaction() as first:
        insert.execute(first, insert.parameters(rows[:1]))
    with kept.transaction() as second:
        insert.execute(second, insert.parameters(rows[1:]))
    assert second is first

    with pytest.raises(IntegrityError), kept.transaction() as connection:
        insert.execute(connection, insert.parameters(rows[:1]))
    with kept.transaction() as after_failure:  # a fresh connection: the failed one is gone
        assert after_failure is not first
    assert store.read_flow_run("f" * 32) is not None

    kept.close()
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_only_a_sqlite_connection_is_kept(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # A server's connection may be dropped between transactions: checked out for each, the
    # pool's pre-ping replaces it.
    monkeypatch.setattr(store.engine.dialect, "name", "postgresql")
    row = {"id": "h" * 32, "name": "run", "flow_name": "flow"}
    insert = prepare(flow_runs.insert(), store.engine.dialect, tuple(row))
    kept = DriverConnection(store.engine)
    with kept.transaction() as connection:
        insert.execute(connection, insert.parameters([row]))

    assert kept._pooled is None
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert store.read_flow_run("h" * 32) is not None
