"""The store's hot writes, each written once in SQLAlchemy Core: a worker's claim, the
batched writer's rows, a fire's runs, a run's new state, and the reads made inside their
transactions.

``_compile`` compiles them for each dialect with the command line's queries into
``_compiled``; ``Store`` binds their values through ``_driver`` before a transaction begins
and hands the driver ready SQL inside it. A flow run's claim and final state are the
store's hottest writes, and every process writing a SQLite store queues behind whoever
holds its write lock: executed by SQLAlchemy, each statement was compiled (or looked up),
its values converted and its rows processed inside the transaction, which held the lock
about three times as long as the driver needed (see ``docs/benchmarks.md``).

An insert binds every column of its table but an autoincrement key: a column a row leaves
out takes the schema's default, as ``_compile`` read it, so rows with different columns
share one statement. An update's SET list is the columns the row gives (``Query.sets``).
Values a statement carries are written into its SQL (``fixed``, or a fixed ``IN`` list).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Column,
    Insert,
    Table,
    Update,
    bindparam,
    exists,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)

from gnomon.states import ACTIVE_TYPES, HELD_NAMES, StateName, StateType
from gnomon.store._schema import (
    CLAIMED_RUN,
    deployments,
    flow_runs,
    run_logs,
    run_states,
    task_runs,
    without_final_state,
)
from gnomon.store._statements import SQL, Build, Query, query

WRITES: dict[str, Query] = {}


def _write(
    name: str,
    *options: str,
    sets: Table | None = None,
    dialects: tuple[str, ...] | None = None,
) -> Callable[[Build], Build]:
    return query(WRITES, name, *options, sets=sets, dialects=dialects)


def fixed(value: Any, column: Column[Any]) -> Any:
    """``value`` for ``column``, written into the statement's SQL rather than bound."""
    return literal(value, column.type, literal_execute=True)


def _every_column(table: Table) -> dict[str, Any]:
    """An insert's values: every column of ``table`` but an autoincrement key, each bound
    by its name."""
    key = table.autoincrement_column
    return {column.name: bindparam(column.name) for column in table.columns if column is not key}


def _insert(table: Table) -> Insert:
    """An INSERT of ``_every_column``; ``inline``: nothing is read back (no ``RETURNING
    id``)."""
    return table.insert().values(_every_column(table)).inline()


# The batched writer's rows.


@_write("insert_flow_run")
def _insert_flow_run(_: frozenset[str]) -> SQL:
    return _insert(flow_runs)


@_write("insert_task_run")
def _insert_task_run(_: frozenset[str]) -> SQL:
    return _insert(task_runs)


@_write("insert_state")
def _insert_state(_: frozenset[str]) -> SQL:
    return _insert(run_states)


@_write("insert_log")
def _insert_log(_: frozenset[str]) -> SQL:
    return _insert(run_logs)


@_write("update_flow_run", "unfinished", "active", "newest", sets=flow_runs)
def _update_flow_run(variant: frozenset[str]) -> SQL:
    """Columns of the flow run ``row_id``. ``unfinished``: only if it has no final state
    (every write of a state that may be final, see ``without_final_state``); ``active``:
    only if it is Scheduled, Pending, Running or Paused in its process (``HELD_NAMES``);
    ``newest``: only if no later generation of its nominal time exists (a deployment's
    retry reopening a run an operator has retried meanwhile would run two at once)."""
    statement = update(flow_runs).where(flow_runs.c.id == bindparam("row_id"))
    if "unfinished" in variant:
        statement = statement.where(without_final_state(flow_runs))
    if "active" in variant:
        statement = statement.where(active_run(flow_runs))
    if "newest" in variant:
        later = flow_runs.alias("later")
        statement = statement.where(
            ~exists().where(
                later.c.deployment_name == flow_runs.c.deployment_name,
                later.c.scheduled_for == flow_runs.c.scheduled_for,
                later.c.generation > flow_runs.c.generation,
            )
        )
    return statement


def active_run(table: Table) -> Any:
    """SQL: the run in ``table`` is Scheduled, Pending, Running, or Paused in its process."""
    return or_(
        table.c.state_type.in_(sorted(ACTIVE_TYPES)), table.c.state_name.in_(sorted(HELD_NAMES))
    )


@_write("update_task_run", sets=task_runs)
def _update_task_run(_: frozenset[str]) -> SQL:
    return update(task_runs).where(task_runs.c.id == bindparam("row_id"))


# A worker's claim.


@_write("claim")
def _claim(_: frozenset[str]) -> SQL:
    """Start the flow run ``row_id`` if it is Scheduled or Pending: Running, its first
    attempt, by ``worker_pid``; returns its ``CLAIMED_RUN`` columns (``_schema``) as claimed."""
    return _claim_update()


@_write("claim_recorded", dialects=("postgresql",))
def _claim_recorded(_: frozenset[str]) -> SQL:
    """``claim`` and the Running state it records (``run_states``, at its start time) in
    one statement: a data-modifying WITH, which PostgreSQL has and SQLite has not. Run on
    its own (autocommit), a claim is then one round trip to the server."""
    claimed = _claim_update().cte("claimed")
    s = run_states.c
    running = select(
        claimed.c.id,
        claimed.c.start_time,
        fixed(StateType.RUNNING, s.type),
        fixed(StateName.RUNNING, s.name),
        claimed.c.run_count,
    )
    columns = ["flow_run_id", "timestamp", "type", "name", "attempt"]
    recorded = insert(run_states).from_select(columns, running).cte("recorded")
    return select(claimed).add_cte(recorded)


def _claim_update() -> Update:
    c = flow_runs.c
    return (
        update(flow_runs)
        .where(
            c.id == bindparam("row_id"), c.state_type.in_([StateType.SCHEDULED, StateType.PENDING])
        )
        .values(
            state_type=fixed(StateType.RUNNING, c.state_type),
            state_name=fixed(StateName.RUNNING, c.state_name),
            state_message=null(),
            updated=bindparam("updated"),
            start_time=bindparam("start_time"),
            # One more: a resumed suspended run counts its runs on (a retry resets it to 0).
            run_count=c.run_count + 1,
            worker_pid=bindparam("worker_pid"),
        )
        .returning(*CLAIMED_RUN)
    )


# A fire's runs.


@_write("create_run")
def _create_run(_: frozenset[str]) -> SQL:
    """A run of a fire, unless a run has its (deployment, nominal time) or its id: ``ON
    CONFLICT DO NOTHING``, which SQLite writes as PostgreSQL does."""
    # Imported here: the PostgreSQL dialect costs the command line ~25 ms it rarely needs.
    from sqlalchemy.dialects import postgresql

    return (
        postgresql.insert(flow_runs)
        .values(_every_column(flow_runs))
        .on_conflict_do_nothing()
        .inline()
    )


@_write("paused_among")
def _paused_among(_: frozenset[str]) -> SQL:
    """Which of the deployments ``names`` are paused."""
    return select(deployments.c.name).where(
        deployments.c.name.in_(bindparam("names", expanding=True)),
        deployments.c.paused.is_(True),
    )


@_write("runs_among")
def _runs_among(_: frozenset[str]) -> SQL:
    """Which of the flow runs ``ids`` exist."""
    return select(flow_runs.c.id).where(flow_runs.c.id.in_(bindparam("ids", expanding=True)))


@_write("record_fire")
def _record_fire(_: frozenset[str]) -> SQL:
    """A deployment's newest nominal fire time."""
    return (
        update(deployments)
        .where(deployments.c.name == bindparam("name"))
        .values(last_fire=bindparam("last_fire"))
    )
