"""Backfills: runs of a deployment's nominal times in a range that has passed, made by the
daemon a batch at a time (``create_backfill_runs``), with the backfill's own row keeping
where it is (its cursor and counts), so a restarted daemon goes on where it stopped.

Which times get a run is one rule (``backfill_generation``), shared by the daemon and the
dry run: a time with no run, or whose newest run was decided not to run (Missed,
Skipped), gets one; one whose newest run is unfinished gets none (generations of a time
never run at once); a finished one gets its next generation only if the backfill
reprocesses it (``failed``: its newest run failed; ``all``: any).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import desc, func, select, update

from gnomon.states import FAILED_TYPES, FINAL_TYPES, UNRUN_NAMES, StateType
from gnomon.store._breaches import _insert
from gnomon.store._calls import audit_call
from gnomon.store._kinds import AuditAction, BackfillStatus, Nudge, Reprocess
from gnomon.store._queries import Queries, execute_call, notify_in
from gnomon.store._scheduled import first_state_row
from gnomon.store._schema import backfills, flow_runs, run_states, utcnow
from gnomon.store.rows import BackfillRow, FlowRunRow

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from gnomon.store._values import Actor
    from gnomon.store.rows import NewFlowRun

UNFINISHED = sorted(set(StateType) - FINAL_TYPES)


@dataclass(frozen=True, slots=True)
class TimeRun:
    """The newest run of a nominal time, as a backfill's rule needs it."""

    generation: int
    state_type: StateType | None
    state_name: str | None


def backfill_generation(newest: TimeRun | None, reprocess: Reprocess) -> tuple[int | None, str]:
    """The generation a backfill creates for a nominal time whose newest run is ``newest``
    (None: no run), or None for none; and why, in a few words."""
    if newest is None:
        return 1, "no run"
    following = newest.generation + 1
    if newest.state_name in UNRUN_NAMES:
        return following, f"its run was {newest.state_name}"
    if newest.state_type not in FINAL_TYPES:
        return None, f"a run is under way ({newest.state_name})"
    if reprocess is Reprocess.ALL or (
        reprocess is Reprocess.FAILED and newest.state_type in FAILED_TYPES
    ):
        return following, f"reprocessing its {newest.state_name} run"
    return None, f"has a {newest.state_name} run"


@dataclass(slots=True)
class BackfillStep:
    """What one batch of a backfill did: the runs it created, how many times it decided
    (created or left), and the last of them (the backfill's cursor now)."""

    created: list[NewFlowRun] = field(default_factory=list)
    decided: int = 0
    cursor: datetime | None = None


class BackfillQueries(Queries):
    """The backfills table and the runs of backfills."""

    def create_backfill(self, values: dict[str, object], actor: Actor) -> BackfillRow:
        """Record a backfill (audited in the same transaction); the row as stored."""
        now = utcnow()
        row = {"created": now, "updated": now, "requested_by": actor.name, **values}
        with self.engine.begin() as connection:
            statement = backfills.insert().values(row).returning(*backfills.c)
            created = BackfillRow(*connection.execute(statement).one())
            detail = {
                key: value.isoformat() if isinstance(value, datetime) else value
                for key, value in values.items()
                if key != "parameters"  # the audit log keeps no parameter (a secret's)
            }
            audit = audit_call(actor, AuditAction.BACKFILL, str(created.id), detail=detail, now=now)
            execute_call(connection, audit)
            notify_in(connection, Nudge.POLL)
        return created

    def read_backfill(self, backfill_id: int) -> BackfillRow | None:
        return self._one(select(backfills).where(backfills.c.id == backfill_id), BackfillRow)

    def read_backfills(
        self,
        deployment: str | None = None,
        status: BackfillStatus | None = None,
        limit: int = 100,
    ) -> list[BackfillRow]:
        """Backfills newest first, a deployment's or everyone's, of one status or any."""
        statement = select(backfills)
        if deployment is not None:
            statement = statement.where(backfills.c.deployment_name == deployment)
        if status is not None:
            statement = statement.where(backfills.c.status == status)
        return self._all(statement.order_by(desc(backfills.c.id)).limit(limit), BackfillRow)

    def read_backfill_states(self, backfill_id: int) -> dict[str, int]:
        """The backfill's runs counted by state name (through its runs' partial index)."""
        statement = (
            select(flow_runs.c.state_name, func.count())
            .where(flow_runs.c.backfill_id == backfill_id)
            .group_by(flow_runs.c.state_name)
        )
        with self.reader.connect() as connection:
            return {str(name): int(count) for name, count in connection.execute(statement)}

    def read_backfill_runs(self, backfill_id: int, limit: int) -> list[FlowRunRow]:
        """The backfill's newest ``limit`` runs, newest first."""
        statement = (
            select(flow_runs)
            .where(flow_runs.c.backfill_id == backfill_id)
            .order_by(desc(flow_runs.c.created), desc(flow_runs.c.id))
            .limit(limit)
        )
        return self._all(statement, FlowRunRow)

    def read_backfill_unfinished(self, backfill_id: int) -> list[FlowRunRow]:
        """The backfill's runs that have not finished."""
        statement = select(flow_runs).where(
            flow_runs.c.backfill_id == backfill_id, flow_runs.c.state_type.in_(UNFINISHED)
        )
        return self._all(statement.order_by(flow_runs.c.scheduled_for), FlowRunRow)

    def count_backfill_unfinished(self, backfill_id: int) -> int:
        statement = select(func.count()).where(
            flow_runs.c.backfill_id == backfill_id, flow_runs.c.state_type.in_(UNFINISHED)
        )
        with self.reader.connect() as connection:
            return int(connection.execute(statement).scalar_one())

    def read_time_runs(
        self, deployment: str, first: datetime, last: datetime
    ) -> dict[datetime, TimeRun]:
        """The newest run of each of the deployment's nominal times from ``first`` to
        ``last`` (both included) that has one."""
        with self.reader.connect() as connection:
            return _time_runs(connection, deployment, first, last)

    def create_backfill_runs(
        self,
        backfill: BackfillRow,
        times: Sequence[datetime],
        limit: int,
        make_run: Callable[[datetime, int], NewFlowRun],
    ) -> BackfillStep | None:
        """Decide ``times`` in order (``backfill_generation``) and create the runs, at most
        ``limit`` (``make_run(nominal, generation)`` makes each row), stopping at the time
        that would make one more; move the backfill's cursor past the times decided. In one
        transaction that first checks the backfill still runs: None if it does not
        (cancelled meanwhile: nothing created). A run the live schedule (or a retry) made
        meanwhile has the key: that time is left, as decided."""
        step = BackfillStep()
        with self.engine.begin() as connection:
            still = connection.execute(
                update(backfills)
                .where(backfills.c.id == backfill.id, backfills.c.status == BackfillStatus.RUNNING)
                .values(updated=utcnow())
            )
            if not still.rowcount:
                return None
            newest = _time_runs(connection, backfill.deployment_name, min(times), max(times))
            reprocess = Reprocess(backfill.reprocess)
            made: list[NewFlowRun] = []
            for nominal in times:
                generation, _ = backfill_generation(newest.get(nominal), reprocess)
                if generation is not None:
                    if len(made) >= limit:
                        break
                    made.append(make_run(nominal, generation))
                step.decided += 1
                step.cursor = nominal
            step.created = _insert_new(connection, made)
            if step.decided:
                connection.execute(
                    update(backfills)
                    .where(backfills.c.id == backfill.id)
                    .values(
                        cursor=step.cursor,
                        decided=backfills.c.decided + step.decided,
                        created_runs=backfills.c.created_runs + len(step.created),
                    )
                )
        return step

    def finish_backfill(
        self, backfill_id: int, status: BackfillStatus, actor: Actor, reason: str | None = None
    ) -> bool:
        """End a running backfill (completed, or cancelled: audited), in one transaction;
        False if it had ended already."""
        now = utcnow()
        with self.engine.begin() as connection:
            ended = connection.execute(
                update(backfills)
                .where(backfills.c.id == backfill_id, backfills.c.status == BackfillStatus.RUNNING)
                .values(status=status, finished_at=now, updated=now, reason=reason)
            ).rowcount
            if ended and status is BackfillStatus.CANCELLED:
                audit = audit_call(
                    actor, AuditAction.BACKFILL_CANCEL, str(backfill_id), reason, now=now
                )
                execute_call(connection, audit)
                notify_in(connection, Nudge.POLL)
        return bool(ended)


def _insert_new(connection: Connection, runs: list[NewFlowRun]) -> list[NewFlowRun]:
    """Insert ``runs`` with their first states, one statement each for all (a batch of 500
    row by row took ~3 ms a run on SQLite), unless their key exists; those inserted."""
    if not runs:
        return []
    insert = _insert(connection)(flow_runs).on_conflict_do_nothing()
    connection.execute(insert, [dict(run) for run in runs])
    ids = [run["id"] for run in runs]
    found = set(connection.execute(select(flow_runs.c.id).where(flow_runs.c.id.in_(ids))).scalars())
    created = [run for run in runs if run["id"] in found]
    if created:
        connection.execute(run_states.insert(), [first_state_row(run) for run in created])
    return created


def _time_runs(
    connection: Connection, deployment: str, first: datetime, last: datetime
) -> dict[datetime, TimeRun]:
    statement = (
        select(
            flow_runs.c.scheduled_for,
            flow_runs.c.generation,
            flow_runs.c.state_type,
            flow_runs.c.state_name,
        )
        .where(
            flow_runs.c.deployment_name == deployment,
            flow_runs.c.scheduled_for >= first,
            flow_runs.c.scheduled_for <= last,
        )
        .order_by(flow_runs.c.scheduled_for, flow_runs.c.generation)
    )
    newest: dict[datetime, TimeRun] = {}
    for nominal, generation, state_type, state_name in connection.execute(statement):
        kind = StateType(state_type) if state_type else None
        newest[nominal] = TimeRun(generation, kind, state_name)
    return newest
