"""Reads, and the few writes that must be committed before the caller goes on.

Reads run in deferred transactions (``read_engine``), so they never wait for writers; each
returns rows of a class of ``rows``. Synchronous writes run in ``BEGIN IMMEDIATE``
transactions: a flow run scheduled for another process, concurrency slots, whose
check-then-insert must be atomic across processes, and deployments, synced from the config
and paused from the command line.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    delete,
    func,
    or_,
    select,
    update,
)

from gnomon.exceptions import ConcurrencySlotAcquisitionError, InvalidInput
from gnomon.states import StateName, StateType
from gnomon.store._calls import Call, Execute, FastControlQueries, notify_daemons
from gnomon.store._kinds import Nudge
from gnomon.store._schema import (
    SCHEDULE_STATE,
    concurrency_limits,
    concurrency_slots,
    deployments,
    flow_runs,
    run_states,
    task_runs,
    utcnow,
)
from gnomon.store._statements import call_statement
from gnomon.store._writer import BatchWriter
from gnomon.store.rows import (
    ClaimedRun,
    DeploymentRow,
    FlowRunRow,
    ScheduleState,
    StateRow,
    TaskRunRow,
)

R = TypeVar("R")
# The longest a full rate limit may take to free itself: its slots' release times are dates.
MAX_DRAIN = timedelta(days=100 * 365)
# Column values by name, as the store's internals bind them (the rows of ``rows`` that
# writes take are these dicts, typed).
Row = dict[str, Any]


class Queries(FastControlQueries):
    """Synchronous reads and writes against the store behind a batched writer's engine."""

    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer

    @property
    def engine(self) -> Engine:
        """The engine writes go through (transactions begin IMMEDIATE on SQLite)."""
        return self._writer.engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def reader(self) -> Engine:
        """The same pool as ``engine``, with deferred transactions for reads."""
        return self._writer.reader

    def _all(self, statement: Select[Any], row: Callable[..., R]) -> list[R]:
        """The rows ``statement`` reads, made by ``row`` (a class of ``rows`` whose fields
        are the columns it selects, in order)."""
        with self.reader.connect() as connection:
            return [row(*values) for values in connection.execute(statement)]

    def _one(self, statement: Select[Any], row: Callable[..., R]) -> R | None:
        rows = self._all(statement, row)
        return rows[0] if rows else None

    def _tuples(self, call: Call) -> Sequence[Sequence[Any]]:
        with self.reader.connect() as connection:
            return connection.execute(call_statement(call), dict(call.parameters)).all()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Execute]:
        with self.engine.begin() as connection:
            yield functools.partial(execute_call, connection)

    # Runs, states and logs.

    def read_task_run(self, id: str) -> TaskRunRow | None:
        """The task run row ``id``, or None."""
        return self._one(select(task_runs).where(task_runs.c.id == id), TaskRunRow)

    def read_task_runs(
        self, flow_run_id: str, offset: int = 0, limit: int | None = None
    ) -> list[TaskRunRow]:
        """A flow run's task runs, in the order they were created: all, or ``limit`` of
        them from the ``offset``-th (a page of a run with thousands)."""
        statement = (
            select(task_runs)
            .where(task_runs.c.flow_run_id == flow_run_id)
            .order_by(task_runs.c.created, task_runs.c.id)
            .offset(offset)
        )
        if limit is not None:
            statement = statement.limit(limit)
        return self._all(statement, TaskRunRow)

    def read_caused_runs(self, flow_run_id: str, limit: int = 100) -> list[FlowRunRow]:
        """The downstream runs (and Skipped rows) the end of this run decided, by
        deployment name: at most ``limit`` (a run has one per deployment after it)."""
        return self._all(
            select(flow_runs)
            .where(flow_runs.c.caused_by == flow_run_id)
            .order_by(flow_runs.c.deployment_name, flow_runs.c.id)
            .limit(limit),
            FlowRunRow,
        )

    def count_task_states(self, flow_run_id: str) -> dict[str, int]:
        """How many of a flow run's task runs are in each state, by state name."""
        statement = (
            select(task_runs.c.state_name, func.count())
            .where(task_runs.c.flow_run_id == flow_run_id)
            .group_by(task_runs.c.state_name)
        )
        with self.reader.connect() as connection:
            return {str(name or "?"): int(n) for name, n in connection.execute(statement)}

    def read_states(
        self, flow_run_id: str | None = None, task_run_id: str | None = None
    ) -> list[StateRow]:
        """State transitions in order: a task run's, or a flow run's own (not its tasks')."""
        statement = select(run_states).order_by(run_states.c.id)
        if task_run_id is not None:
            statement = statement.where(run_states.c.task_run_id == task_run_id)
        elif flow_run_id is not None:
            statement = statement.where(run_states.c.task_run_id.is_(None))
        if flow_run_id is not None:
            statement = statement.where(run_states.c.flow_run_id == flow_run_id)
        return self._all(statement, StateRow)

    def read_task_states(self, task_run_ids: Sequence[str]) -> list[StateRow]:
        """The state transitions of these task runs, in order: one query for a page of
        a run's tasks (each retry is a Running state of its own attempt)."""
        if not task_run_ids:
            return []
        statement = (
            select(run_states)
            .where(run_states.c.task_run_id.in_(list(task_run_ids)))
            .order_by(run_states.c.id)
        )
        return self._all(statement, StateRow)

    def claim_flow_run(
        self, flow_run_id: str, at: datetime | None = None, *, worker_pid: int | None = None
    ) -> ClaimedRun | None:
        """Start a Scheduled or Pending flow run: the run as claimed, or None if it is not
        one of those (or does not exist).

        One transaction moves the row to Running with its start time (``at``, default now),
        its first attempt and the claiming process (``worker_pid``), records the Running
        state in its history, and returns what the claimer needs to run it (``UPDATE ...
        RETURNING``, so the claimer needs no read before or after). The UPDATE is conditional
        on the run's state, so of two processes claiming the same run exactly one wins: a run
        is never started twice. Its statements are compiled ahead and bound before the
        transaction (see ``_writes``); on PostgreSQL they are one statement, run on its own:
        one round trip to the server.
        """
        now = at or utcnow()
        queries = self._writer.queries
        values = {
            "row_id": flow_run_id,
            "start_time": now,
            "updated": now,
            "worker_pid": worker_pid,
        }
        if queries.has("claim_recorded"):
            claimed = self._writer.direct.run_alone(queries.bind(Call("claim_recorded", values)))
            return ClaimedRun(*queries.decode("claim_recorded", claimed)[0]) if claimed else None
        state = {
            "flow_run_id": flow_run_id,
            "timestamp": now,
            "type": StateType.RUNNING,
            "name": StateName.RUNNING,
            "attempt": 1,
        }
        claim = queries.bind(Call("claim", values))
        [insert_state] = queries.bind_rows("insert_state", [state])
        with self._writer.direct.transaction() as transaction:
            returned = transaction.rows(claim)
            if not returned:
                return None
            transaction.run(insert_state)
        return ClaimedRun(*queries.decode("claim", returned)[0])

    def commit_now(self) -> None:
        """Commit every row recorded so far, in this thread and one transaction, after any
        batch the writer thread is committing: for a write that must be durable before the
        caller goes on, such as a flow run's final state. Raises ``StoreWriteError`` if the
        commit fails (the rows stay queued and are retried)."""
        self._writer.commit_now()

    def open_connections(self) -> None:
        """Open every connection this process may use now, with its lock file: before a
        worker gives root up for a deployment's ``user``, to whom the database's files may
        be closed."""
        self._writer.open_connections()

    # Concurrency limits and slots.

    def set_concurrency_limit(
        self, name: str, limit: int, slot_decay_per_second: float = 0.0
    ) -> None:
        """Create the limit ``name`` of ``limit`` slots, or change it (its decay too)."""
        check_limit(name, limit, slot_decay_per_second)
        with self.engine.begin() as connection:
            upsert_limit(connection, name, limit, slot_decay_per_second, utcnow())

    def read_concurrency_limits(self, names: list[str] | None = None) -> dict[str, int]:
        """Every limit (or those of ``names`` that exist) by name."""
        statement = select(concurrency_limits.c.name, concurrency_limits.c.slot_limit)
        if names is not None:
            statement = statement.where(concurrency_limits.c.name.in_(names))
        with self.reader.connect() as connection:
            return dict(connection.execute(statement).tuples().all())

    def delete_concurrency_limit(self, name: str) -> bool:
        """Delete a limit and the slots held on it; False if there was no such limit."""
        with self.engine.begin() as connection:
            deleted = connection.execute(
                delete(concurrency_limits).where(concurrency_limits.c.name == name)
            ).rowcount
        return bool(deleted)

    def try_acquire_slots(
        self, names: list[str], occupy: int, holder: str, rate_limit: bool = False
    ) -> bool:
        """Take ``occupy`` slots on every limit in ``names``, or none at all.

        Names without a limit are ignored. Returns False, taking nothing, if any limit lacks
        room (a request larger than a limit can never succeed). ``holder`` should be
        ``hostname:pid:token`` so that ``reap_stale_slots`` can free the slots of a dead pid.

        With ``rate_limit`` the slots are never released: each limit's slots free
        themselves one at a time at its ``slot_decay_per_second``, a leaky bucket. Each slot
        is a row with its release time, 1/decay after the limit's latest one (or after now),
        so a burst fills the limit at once and then one slot is admitted every 1/decay
        seconds, across every process. A limit without a decay raises
        ``ConcurrencySlotAcquisitionError``, as Prefect's server refuses it.
        """
        with self.engine.begin() as connection:
            limits = {
                name: (limit, decay)
                for name, limit, decay in connection.execute(
                    select(
                        concurrency_limits.c.name,
                        concurrency_limits.c.slot_limit,
                        concurrency_limits.c.slot_decay_per_second,
                    )
                    .where(concurrency_limits.c.name.in_(sorted(set(names))))
                    .order_by(concurrency_limits.c.name)
                    .with_for_update()  # row locks on PostgreSQL; SQLite's IMMEDIATE suffices
                )
            }
            if not limits:
                return True
            now = utcnow()
            if rate_limit:
                refuse_without_decay([name for name, (_, decay) in limits.items() if decay <= 0])
                # The slots that have freed themselves: rate-limiting leaves them, it removes
                # them (they no longer count in any case, see ``slot_counts``).
                connection.execute(
                    delete(concurrency_slots).where(
                        concurrency_slots.c.limit_name.in_(limits), ~slot_counts(now)
                    )
                )
            taken: dict[str, int] = {}
            last_release: dict[str, datetime] = {}
            for name, occupied, latest in connection.execute(
                select(
                    concurrency_slots.c.limit_name,
                    func.sum(concurrency_slots.c.occupy),
                    func.max(concurrency_slots.c.release_at),
                )
                .where(concurrency_slots.c.limit_name.in_(limits), slot_counts(now))
                .group_by(concurrency_slots.c.limit_name)
            ):
                taken[name] = int(occupied)
                if latest is not None:
                    last_release[name] = latest
            if any(taken.get(name, 0) + occupy > limit for name, (limit, _) in limits.items()):
                return False
            slot = {"holder": holder, "acquired_at": now}
            if rate_limit:
                rows = [
                    {**slot, "limit_name": name, "occupy": 1, "release_at": release}
                    for name, (_, decay) in limits.items()
                    for release in _releases(max(now, last_release.get(name, now)), decay, occupy)
                ]
            else:
                rows = [{**slot, "limit_name": name, "occupy": occupy} for name in limits]
            connection.execute(concurrency_slots.insert(), rows)
        return True

    def release_slots(self, holder: str) -> int:
        """Free every slot ``holder`` holds; returns how many slot rows were freed."""
        return self._delete_slots(concurrency_slots.c.holder == holder)

    def reap_stale_slots(self) -> int:
        """Free the slots held by processes of this host that no longer exist.

        A process killed without releasing its slots would otherwise hold them forever.
        Rate-limit slots are not a process's to free: they count until their release time,
        however their process ended. Returns how many slot rows were freed.
        """
        held = concurrency_slots.c.release_at.is_(None)
        with self.reader.connect() as connection:
            holders = connection.execute(
                select(concurrency_slots.c.holder.distinct()).where(held)
            ).scalars()
            stale = [holder for holder in holders if _is_dead_local_holder(holder)]
        if not stale:
            return 0
        return self._delete_slots(held & concurrency_slots.c.holder.in_(stale))

    def read_slot_holders(self, prefix: str) -> list[str]:
        """The holders of slots held on the limits whose names start with ``prefix``
        (``pool:``: the run pools', whose holders name their runs)."""
        with self.reader.connect() as connection:
            return list(
                connection.execute(
                    select(concurrency_slots.c.holder.distinct())
                    .where(
                        concurrency_slots.c.release_at.is_(None),
                        concurrency_slots.c.limit_name.startswith(prefix, autoescape=True),
                    )
                    .order_by(concurrency_slots.c.holder)
                ).scalars()
            )

    def _delete_slots(self, condition: ColumnElement[bool]) -> int:
        with self.engine.begin() as connection:
            return connection.execute(delete(concurrency_slots).where(condition)).rowcount

    # Deployments.

    def read_schedule_states(self) -> dict[str, ScheduleState]:
        """By name, what the scheduler keeps of each active deployment: ``anchor``,
        ``paused`` and ``paused_until``, ``last_fire`` and ``fires_from``. The daemon reads
        it at every start and reload; for 10,000 deployments the whole rows took 240-310 ms
        to read, these 50 ms."""
        statement = select(*SCHEDULE_STATE).where(deployments.c.active.is_(True))
        return {row.name: row for row in self._all(statement, ScheduleState)}

    def merge_deployments(
        self,
        merge: Callable[
            [dict[str, DeploymentRow]],
            tuple[Sequence[Mapping[str, Any]], Mapping[str, Mapping[str, Any]]],
        ],
    ) -> None:
        """Read every deployment row and write ``merge``'s changes in one IMMEDIATE transaction.

        ``merge`` gets the current rows by name and returns the rows to insert and, by name,
        the column values to update. Reading inside the write transaction means no other
        process (``gnomon pause``, a second ``apply``) can change a row between the read and
        the write, so a sync never overwrites a pause it did not see.
        """
        with self.engine.begin() as connection:
            rows = connection.execute(select(deployments))
            current = {row.name: row for row in (DeploymentRow(*values) for values in rows)}
            inserts, updates = merge(current)
            if inserts:
                connection.execute(deployments.insert(), list(inserts))
            for name, values in updates.items():
                connection.execute(
                    update(deployments).where(deployments.c.name == name).values(**values)
                )


def _is_dead_local_holder(holder: str) -> bool:
    """Whether ``holder`` (``hostname:pid:token``) names a process of this host that is gone."""
    hostname, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if hostname != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid <= 0:  # os.kill(0, ...) would signal our own process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by another user
    return False


def execute_call(connection: Connection, call: Call) -> int:
    """Run ``call`` (see ``_calls``) in ``connection``'s transaction; the rows it changed."""
    return connection.execute(call_statement(call), dict(call.parameters)).rowcount


def notify_in(connection: Connection, kind: Nudge) -> None:
    """``notify_daemons`` in ``connection``'s transaction."""
    notify_daemons(functools.partial(execute_call, connection), connection.dialect.name, kind)


def upsert_limit(
    connection: Connection, name: str, limit: int, slot_decay_per_second: float, now: datetime
) -> None:
    """Create the concurrency limit ``name`` or change its slot count and decay, in
    ``connection``'s transaction."""
    values = {"slot_limit": limit, "slot_decay_per_second": slot_decay_per_second}
    changed = connection.execute(
        update(concurrency_limits)
        .where(concurrency_limits.c.name == name)
        .values(**values, updated=now)
    ).rowcount
    if not changed:
        connection.execute(
            concurrency_limits.insert(),
            {"name": name, **values, "created": now, "updated": now},
        )


def slot_counts(now: datetime) -> ColumnElement[bool]:
    """Whether a slot row takes room at ``now``: held (no release time, until its holder
    releases it) or a rate-limit slot not yet freed."""
    release_at = concurrency_slots.c.release_at
    return or_(release_at.is_(None), release_at > now)


def _releases(after: datetime, decay: float, count: int) -> list[datetime]:
    """When each of ``count`` slots taken now frees itself, on a limit whose slots free
    themselves one every 1/``decay`` seconds, the first after ``after``."""
    return [after + timedelta(seconds=slot / decay) for slot in range(1, count + 1)]


def check_limit(name: str, limit: int, slot_decay_per_second: float) -> None:
    """InvalidInput (a ValueError) naming the limit unless ``limit`` slots with a decay of
    ``slot_decay_per_second`` can be stored: a count from 0, and a finite rate from 0 (no
    decay) at which a full limit frees itself within ``MAX_DRAIN`` (a release time must be
    a date)."""
    if limit < 0:
        raise InvalidInput(f"concurrency limit {name!r}: limit must be >= 0, got {limit!r}")
    decay = slot_decay_per_second
    if not (isinstance(decay, int | float) and math.isfinite(decay) and decay >= 0):
        raise InvalidInput(
            f"concurrency limit {name!r}: slot_decay_per_second is a finite number of slots "
            f"a second, 0 for no decay, not {decay!r}"
        )
    if decay and limit / decay > MAX_DRAIN.total_seconds():
        raise InvalidInput(
            f"concurrency limit {name!r}: at {decay:g} slot(s) a second its {limit} slots "
            f"would take over {MAX_DRAIN.days // 365} years to free; use a decay of at least "
            f"{limit / MAX_DRAIN.total_seconds():.3g}"
        )


def refuse_without_decay(names: list[str]) -> None:
    """ConcurrencySlotAcquisitionError if ``rate_limit`` was given limits without a decay."""
    if not names:
        return
    listed = ", ".join(repr(name) for name in names)
    raise ConcurrencySlotAcquisitionError(
        "Only concurrency limits with slot decay can be used for rate limiting; no decay on "
        f"{listed}. Set one, e.g. `gnomon global-concurrency-limit set {names[0]} LIMIT "
        f"--slot-decay-per-second D` or `set_concurrency_limit({names[0]!r}, LIMIT, "
        "slot_decay_per_second=D)`"
    )
