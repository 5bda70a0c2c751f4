"""The queries of ``abc.FastControl`` (what ``gnomon pause``, ``runs list`` and ``logs``
ask), each written once in SQLAlchemy Core; and how a query is declared (``Query``), for
these and for the store's hot writes (``_writes``).

``Store`` executes these statements (``Queries._rows``); ``python -m gnomon.store._compile``
compiles every variant of each for SQLite and PostgreSQL into ``_compiled``, which
``FastStore`` runs on the bare driver. A query's optional parts (a filter given or not)
are its *options*: every combination is one variant, built by the same function, so a
filter that is left out is not in the SQL at all and each variant uses its own index.
Values are bound by name (``bindparam``), never inlined, so each variant compiles once;
a list (the state filter's) is an expanding parameter, spread into ``IN (...)`` per call.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Insert,
    Select,
    String,
    Table,
    Update,
    bindparam,
    column,
    desc,
    func,
    or_,
    select,
    table,
    tuple_,
    update,
)

from gnomon.store._calls import Call
from gnomon.store._schema import audit_log, deployments, flow_runs, run_logs
from gnomon.store._values import pause_values

# What a query is: a select, or an insert or update that returns nothing.
SQL = Select[Any] | Insert | Update
Build = Callable[[frozenset[str]], SQL]


@dataclass(frozen=True)
class Query:
    """A query: the function building its statement for a variant, and its options.

    ``sets``: the statement is an UPDATE of that table whose SET list is whichever of its
    columns (but its key) a row gives, bound by their names: ``build`` leaves the SET list
    out, and ``_compile`` writes each column's assignment for ``_driver`` to join.
    ``dialects``: the only dialects it is compiled for (by SQLAlchemy's names), if not all.
    """

    build: Build
    options: tuple[str, ...] = ()
    sets: Table | None = None
    dialects: tuple[str, ...] | None = None

    def variants(self) -> Iterator[frozenset[str]]:
        """Every variant: each combination of the options."""
        for count in range(len(self.options) + 1):
            for chosen in itertools.combinations(self.options, count):
                yield frozenset(chosen)


QUERIES: dict[str, Query] = {}


def query(
    into: dict[str, Query],
    name: str,
    *options: str,
    sets: Table | None = None,
    dialects: tuple[str, ...] | None = None,
) -> Callable[[Build], Build]:
    """Declare the query ``name`` in the registry ``into``, built by the decorated function."""

    def register(build: Build) -> Build:
        into[name] = Query(build, options, sets, dialects)
        return build

    return register


def _query(name: str, *options: str) -> Callable[[Build], Build]:
    return query(QUERIES, name, *options)


@functools.cache
def statement(name: str, variant: frozenset[str] = frozenset()) -> SQL:
    """The statement of query ``name`` in ``variant``; built once, so SQLAlchemy's cache of
    compiled statements finds it again."""
    query = QUERIES[name]
    if not variant <= set(query.options):
        raise ValueError(f"query {name!r} has no options {sorted(variant - set(query.options))}")
    return query.build(variant)


def call_statement(call: Call) -> SQL:
    return statement(call.query, call.variant)


# The schema revision, as Alembic records it (a table outside the store's metadata).
_alembic_version = table("alembic_version", column("version_num"))


@_query("revision")
def _revision(_: frozenset[str]) -> SQL:
    return select(_alembic_version.c.version_num)


# Deployments.


@_query("deployment_names")
def _deployment_names(_: frozenset[str]) -> SQL:
    return (
        select(deployments.c.name)
        .where(deployments.c.active.is_(True))
        .order_by(deployments.c.name)
    )


@_query("deployment")
def _deployment(_: frozenset[str]) -> SQL:
    return select(deployments).where(deployments.c.name == bindparam("name"))


@_query("deployments", "active_only")
def _deployments(variant: frozenset[str]) -> SQL:
    statement = select(deployments).order_by(deployments.c.name)
    if "active_only" in variant:
        statement = statement.where(deployments.c.active.is_(True))
    return statement


@_query("set_paused", "paused")
def _set_paused(variant: frozenset[str]) -> SQL:
    """One deployment's pause (variant ``paused``) or resume, if its flag changes: the
    columns of ``pause_values`` and ``updated``, each bound by its name."""
    paused = "paused" in variant
    columns = [*pause_values(paused, "", None, datetime.min), "updated"]  # the names only
    return (
        update(deployments)
        .where(
            deployments.c.name == bindparam("deployment"),
            deployments.c.paused.is_(not paused),
        )
        .values({name: bindparam(name) for name in columns})
    )


@_query("extend_pause", "until")
def _extend_pause(variant: frozenset[str]) -> SQL:
    """A paused deployment's pause that ends by itself made to last longer: until
    ``paused_until`` (variant ``until``, if that is later than its end: ``later_than``, the
    same time, bound once per place as the compiled statements bind) or until resumed. A
    pause is never shortened this way (nor one that lasts until resumed touched)."""
    until = deployments.c.paused_until
    conditions = [
        deployments.c.name == bindparam("deployment"),
        deployments.c.paused.is_(True),
        until.is_not(None),
    ]
    if "until" in variant:
        conditions.append(until < bindparam("later_than"))
    return (
        update(deployments)
        .where(*conditions)
        .values(paused_until=bindparam("paused_until"), updated=bindparam("updated"))
    )


@query(QUERIES, "notify", dialects=("postgresql",))
def _notify(_: frozenset[str]) -> SQL:
    """A NOTIFY of ``kind`` on ``channel``, delivered when the transaction commits (see
    ``_calls.notify_daemons``); PostgreSQL's alone."""
    channel, kind = bindparam("channel", type_=String), bindparam("kind", type_=String)
    return select(func.pg_notify(channel, kind))


@_query("audit")
def _audit(_: frozenset[str]) -> SQL:
    """An audit row; ``inline``: nothing is read back (no ``RETURNING id``)."""
    names = [column.name for column in audit_log.c if column.name != "id"]
    return audit_log.insert().values({name: bindparam(name) for name in names}).inline()


# Runs.


@_query("flow_run")
def _flow_run(_: frozenset[str]) -> SQL:
    return select(flow_runs).where(flow_runs.c.id == bindparam("id"))


@_query("run_ids")
def _run_ids(_: frozenset[str]) -> SQL:
    """Ids from ``prefix`` up to ``prefix_end`` (the prefix and U+FFFF): an indexed range."""
    return (
        select(flow_runs.c.id)
        .where(flow_runs.c.id >= bindparam("prefix"), flow_runs.c.id < bindparam("prefix_end"))
        .order_by(flow_runs.c.id)
        .limit(bindparam("limit"))
    )


@_query("runs", "deployment", "state", "trigger", "since", "before")
def _runs(variant: frozenset[str]) -> SQL:
    """Flow runs newest first, in the total order (created, id) descending, so that a page
    starts where the one before ended: ``before``, only rows below (``before_created``,
    ``before_id``) in that order (keyset pagination: an index range, however deep the
    page; ``_calls.read_runs`` also bounds ``until`` so, as (until, "")). ``state``: whose
    state type is one of ``state_types`` or whose name is one of ``state_names``;
    ``trigger``: whose cause is one of ``triggers``; ``since``: created at or after it."""
    created, id_ = flow_runs.c.created, flow_runs.c.id
    statement = select(flow_runs).order_by(desc(created), desc(id_)).limit(bindparam("limit"))
    conditions: dict[str, Any] = {
        "deployment": flow_runs.c.deployment_name == bindparam("deployment"),
        "state": or_(
            flow_runs.c.state_type.in_(bindparam("state_types", expanding=True)),
            flow_runs.c.state_name.in_(bindparam("state_names", expanding=True)),
        ),
        "trigger": flow_runs.c.trigger.in_(bindparam("triggers", expanding=True)),
        "since": created >= bindparam("since"),
        # A row value, which both databases compare against an index on (created, id).
        "before": tuple_(created, id_)
        < tuple_(
            bindparam("before_created", type_=created.type),
            bindparam("before_id", type_=id_.type),
        ),
    }
    return _where(statement, conditions, variant)


def _where(statement: Select[Any], conditions: dict[str, Any], variant: frozenset[str]) -> SQL:
    """``statement`` with the conditions of the options in ``variant``."""
    for option, condition in conditions.items():
        if option in variant:
            statement = statement.where(condition)
    return statement


# Logs.


@_query("logs", "flow_run", "deployment", "level", "since", "newest")
def _logs(variant: frozenset[str]) -> SQL:
    """Log lines after ``after_id``, in id order (``newest``: newest first), at most
    ``limit``: a BIGINT, since "no limit" is bound as ``_calls.NO_LIMIT``."""
    order = desc(run_logs.c.id) if "newest" in variant else run_logs.c.id
    statement = (
        select(run_logs)
        .where(run_logs.c.id > bindparam("after_id"))
        .order_by(order)
        .limit(bindparam("limit", type_=BigInteger))
    )
    conditions: dict[str, Any] = {
        "flow_run": run_logs.c.flow_run_id == bindparam("flow_run_id"),
        "deployment": run_logs.c.deployment_name == bindparam("deployment"),
        "level": run_logs.c.level >= bindparam("min_level"),
        "since": run_logs.c.timestamp >= bindparam("since"),
    }
    return _where(statement, conditions, variant)


@_query("last_log_id")
def _last_log_id(_: frozenset[str]) -> SQL:
    return select(func.max(run_logs.c.id).label("last_id"))
