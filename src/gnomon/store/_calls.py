"""The methods of ``abc.FastControl``, written once for both stores that offer them.

Each method says which query of ``_statements`` it runs, in which variant and with what
values (a ``Call``), and what it makes of the rows (of which class of ``rows``). How a
call runs is the store's:
``Store`` executes the query's SQLAlchemy statement, ``FastStore`` (``_fast``) the SQL
compiled from it ahead of time (``_compiled``) on the bare driver, for the command line.
So a query, and what a method does with it, exist once. This module imports no SQLAlchemy.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from gnomon.store._kinds import NOTIFY_CHANNEL, AuditAction, Nudge, RunCause
from gnomon.store._values import RunCursor, newest_in_time_order, newest_window, pause_values
from gnomon.store.rows import DeploymentRow, FlowRunRow, LogRow

if TYPE_CHECKING:
    from gnomon.states import StateFilter
    from gnomon.store._values import Actor, LogQuery

R = TypeVar("R")

# "No limit" as a bound LIMIT: the largest BIGINT, which both databases take (SQLite
# refuses a NULL limit, PostgreSQL a negative one), so a query needs no variant without one.
NO_LIMIT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Call:
    """One execution of the query named ``query``: its variant (which of the query's
    optional parts are in, see ``_statements``) and its parameters' values."""

    query: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    variant: frozenset[str] = frozenset()


def variant(**parts: bool) -> frozenset[str]:
    """The variant made of the optional parts that are true."""
    return frozenset(name for name, present in parts.items() if present)


# Runs a call in a write transaction; how many rows it changed.
Execute = Callable[[Call], int]


def audit_call(
    actor: Actor,
    action: AuditAction,
    target: str | None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Call:
    """The audit row of a change, inserted in the change's transaction; a change made over
    HTTP records the client's address in its detail (``client``)."""
    if actor.address is not None:
        detail = {**(detail or {}), "client": actor.address}
    return Call(
        "audit",
        {
            "timestamp": now or datetime.now(UTC),
            "actor": actor.name,
            "origin": actor.origin,
            "action": action,
            "target": target,
            "reason": reason,
            "detail": detail,
        },
    )


def notify_daemons(execute: Execute, dialect: str, kind: Nudge) -> None:
    """Tell every daemon on the database to act on the change of the transaction that
    ``execute`` writes in (``kind``: read the store, or reload its config): on PostgreSQL a
    NOTIFY on ``NOTIFY_CHANNEL``, which each daemon's listener hears
    (``gnomon.daemon._listen``). The server delivers it when the transaction commits, and
    only then, so no daemon looks before the change is there to see. Every operator change
    that daemons act on calls this, so daemons on other hosts, which no signal reaches,
    take it within a second too. On SQLite, nothing: its daemon is on this host, and the
    command that made the change signals it (SIGUSR1, SIGHUP)."""
    if dialect == "postgresql":
        execute(Call("notify", {"channel": NOTIFY_CHANNEL, "kind": kind}))


class FastControlQueries(abc.ABC):
    """``FastControl``: what the command line's fast commands ask of the store."""

    @property
    @abc.abstractmethod
    def dialect(self) -> str:
        """The database's kind, by SQLAlchemy's name for it: "sqlite" or "postgresql"."""

    @abc.abstractmethod
    def _tuples(self, call: Call) -> Sequence[Sequence[Any]]:
        """The rows ``call`` reads, each its columns' Python values in the query's order."""

    @abc.abstractmethod
    def _writing(self) -> AbstractContextManager[Execute]:
        """A write transaction, committed when the block ends (rolled back if it raises)."""

    def _rows(self, call: Call, row: Callable[..., R]) -> list[R]:
        """The rows ``call`` reads, made by ``row`` (a class of ``rows``) from their values."""
        return [row(*values) for values in self._tuples(call)]

    def _row(self, call: Call, row: Callable[..., R]) -> R | None:
        rows = self._rows(call, row)
        return rows[0] if rows else None

    def _column(self, call: Call) -> list[Any]:
        """The values of the one column ``call`` reads."""
        return [values[0] for values in self._tuples(call)]

    # Deployments.

    def read_deployment_names(self) -> list[str]:
        """Names of the active deployments, sorted."""
        return self._column(Call("deployment_names"))

    def read_deployment(self, name: str) -> DeploymentRow | None:
        """The deployment row ``name`` (active or removed from the config), or None."""
        return self._row(Call("deployment", {"name": name}), DeploymentRow)

    def read_deployments(self, active_only: bool = True) -> list[DeploymentRow]:
        """Deployment rows by name; only those still in the config unless ``active_only``."""
        call = Call("deployments", variant=variant(active_only=active_only))
        return self._rows(call, DeploymentRow)

    def set_paused(
        self,
        names: Sequence[str],
        paused: bool,
        actor: Actor,
        reason: str | None,
        now: datetime | None = None,
        until: datetime | None = None,
    ) -> list[str]:
        """Pause or resume deployments, audited in the same transaction; returns those
        whose pause changed. A pause with ``until`` ends by itself then (the daemon resumes
        the deployment); without, it lasts until resumed.

        Pausing a paused deployment keeps who paused it first and why (the first reason is
        the one an incident needs); it only makes a pause that ends by itself last longer
        (to ``until``, if later, or until resumed), never shorter: a pause one operator
        made for an incident is not ended early by another's ``pause --for 1h``.
        """
        now = now or datetime.now(UTC)
        values = {**pause_values(paused, actor.name, reason, now, until), "updated": now}
        action = AuditAction.PAUSE if paused else AuditAction.RESUME
        detail = {"until": until.astimezone(UTC).isoformat()} if until is not None else None
        longer = {"paused_until": until, "updated": now}
        if until is not None:
            longer["later_than"] = until
        changed: list[str] = []
        with self._writing() as execute:
            for name in names:
                call = Call("set_paused", {**values, "deployment": name}, variant(paused=paused))
                if not execute(call):
                    if not paused:
                        continue  # not paused: nothing to resume
                    extend = {**longer, "deployment": name}
                    if not execute(Call("extend_pause", extend, variant(until=until is not None))):
                        continue  # paused as long already
                changed.append(name)
                execute(audit_call(actor, action, name, reason, detail, now=now))
            if changed:
                notify_daemons(execute, self.dialect, Nudge.POLL)
        return changed

    # Runs.

    def read_flow_run(self, id: str) -> FlowRunRow | None:
        """The flow run row ``id``, or None."""
        return self._row(Call("flow_run", {"id": id}), FlowRunRow)

    def find_runs_by_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Ids starting with ``prefix`` (operators type the first characters of an id)."""
        call = Call("run_ids", {"prefix": prefix, "prefix_end": prefix + "\uffff", "limit": limit})
        return self._column(call)

    def read_runs(
        self,
        deployment: str | None = None,
        state: StateFilter | None = None,
        since: datetime | None = None,
        limit: int = 50,
        *,
        until: datetime | None = None,
        trigger: Collection[RunCause] | None = None,
        before: RunCursor | None = None,
    ) -> list[FlowRunRow]:
        """Flow runs newest first (by created, then id), filtered by deployment, state
        (``parse_state_filter``), cause and age; ``before``: the page after that cursor."""
        # Created before ``until`` is below the cursor (until, ""): the same index range as
        # a page's cursor, so one option serves both, the lower bound of the two if both.
        ceiling = None if until is None else RunCursor(until, "")
        bound = min((b for b in (before, ceiling) if b is not None), default=None)
        parameters: dict[str, Any] = {"deployment": deployment, "since": since, "limit": limit}
        if state is not None:
            parameters["state_types"] = sorted(state.types)
            parameters["state_names"] = sorted(state.names)
        if trigger is not None:
            parameters["triggers"] = sorted(trigger)
        if bound is not None:
            parameters.update(before_created=bound.created, before_id=bound.id)
        options = variant(
            deployment=deployment is not None,
            state=state is not None,
            trigger=trigger is not None,
            since=since is not None,
            before=bound is not None,
        )
        return self._rows(Call("runs", _present(parameters), options), FlowRunRow)

    # Logs.

    def search_logs(self, query: LogQuery, limit: int | None, newest: bool) -> list[LogRow]:
        """Log rows matching ``query``: if ``newest``, the newest ``limit`` by time, oldest
        first (see ``newest_window``); else the first ``limit`` after ``query.after_id`` in
        id order (what a follower polls for, with the last id as its cursor)."""
        read = newest_window(limit) if newest and limit is not None else limit  # lines read
        parameters = {
            "after_id": query.after_id,
            "flow_run_id": query.flow_run_id,
            "deployment": query.deployment,
            "min_level": query.min_level,
            "since": query.since,
            "limit": NO_LIMIT if read is None else read,
        }
        call = Call(
            "logs",
            _present(parameters),
            variant(
                flow_run=query.flow_run_id is not None,
                deployment=query.deployment is not None,
                level=query.min_level is not None,
                since=query.since is not None,
                newest=newest,
            ),
        )
        rows = self._rows(call, LogRow)
        return newest_in_time_order(rows, limit) if newest else rows

    def last_log_id(self) -> int:
        """The id of the newest log line; 0 if there is none."""
        (last,) = self._column(Call("last_log_id"))
        return int(last or 0)


def _present(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that have a value: those of the variant's optional parts that are in."""
    return {name: value for name, value in parameters.items() if value is not None}
