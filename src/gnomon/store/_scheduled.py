"""Queries for runs of deployments: creating them by (deployment, nominal time) and finding
the ones a dead daemon left behind (``_calls`` lists them for operators).

Runs the daemon creates are written synchronously, not through the batched writer: a fire
decision is only made once the run row exists, so a crash can never lose or repeat one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Select, and_, func, select, update

from gnomon.states import FAILED_TYPES, StateName, StateType
from gnomon.store._calls import Call, audit_call
from gnomon.store._kinds import REQUESTED_CAUSES, SCHEDULED_CAUSES, AuditAction, RunCause
from gnomon.store._queries import Queries, Row, execute_call
from gnomon.store._schema import (
    FINAL_STATE_TYPES,
    PAUSE_CHANGE,
    deployments,
    flow_runs,
    run_states,
    utcnow,
)
from gnomon.store._values import pause_values, resumes_from
from gnomon.store._writes import active_run
from gnomon.store.rows import FlowRunRow, PauseChange

if TYPE_CHECKING:
    from gnomon.store._values import Actor
    from gnomon.store.rows import NewFlowRun

# The downstream's runs, beside the upstream's in one statement.
later = flow_runs.alias("downstream_runs")
# Names or ids per lookup in a fire's transaction: a bound list each, within every
# database's limit on a statement's parameters.
_LOOKUP_CHUNK = 500


def first_state_row(run: Mapping[str, Any]) -> Row:
    """The ``run_states`` row of a new run's first state, as of its ``updated`` time (or
    ``created``): how the daemon's runs and operators' requested runs begin."""
    return {
        "flow_run_id": run["id"],
        "task_run_id": None,
        "timestamp": run.get("updated") or run["created"],
        "type": run["state_type"],
        "name": run["state_name"],
        "message": run.get("state_message"),
        "attempt": 0,
    }


class ScheduledRunQueries(Queries):
    """The daemon's synchronous run queries."""

    def probe_write(self) -> None:
        """A write transaction that changes nothing the store keeps, and fails as a fire's
        would (the write lock held elsewhere, a full disk, a read-only file): how the daemon
        knows a failing store works again even when nothing is due."""
        from sqlalchemy import text

        with self.engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                # Writes the database header afresh (a WAL frame): needs the lock and room.
                version = connection.exec_driver_sql("PRAGMA user_version").scalar()
                connection.exec_driver_sql(f"PRAGMA user_version = {int(version or 0)}")
            else:
                connection.execute(text("SELECT 1"))

    def create_runs(self, runs: Sequence[NewFlowRun]) -> set[str]:
        """Insert runs (with their first state) in one transaction; returns the ids created.

        A run whose (deployment_name, scheduled_for) already exists is not created: whoever
        made it first (this daemon before a restart, or another daemon) owns that fire.
        """
        return self._create_runs(cast("Sequence[Row]", runs), unless_paused=False)[0]

    def create_runs_unless_paused(self, runs: Sequence[NewFlowRun]) -> tuple[set[str], set[str]]:
        """``create_runs``, leaving out the runs of deployments paused in the store: the
        pause flags are read inside the same write transaction, so a pause committed before
        it (by ``gnomon pause``) always wins. Returns the ids created and the paused names."""
        return self._create_runs(cast("Sequence[Row]", runs), unless_paused=True)

    def _create_runs(self, runs: Sequence[Row], unless_paused: bool) -> tuple[set[str], set[str]]:
        if not runs:
            return set(), set()
        # Bound before the transaction (a fire may create thousands of rows): inside it, the
        # write lock is held only while they are written. A fire's transactions are on the
        # daemon's busiest path, hence the driver's own (see ``DriverConnection``).
        queries = self._writer.queries
        names = sorted({run["deployment_name"] for run in runs}) if unless_paused else []
        lookups = [queries.bind(Call("paused_among", {"names": chunk})) for chunk in _chunks(names)]
        [inserts] = queries.bind_rows("create_run", runs)
        [states] = queries.bind_rows("insert_state", [first_state_row(run) for run in runs])
        with self._writer.direct.transaction() as transaction:
            paused = {row[0] for lookup in lookups for row in transaction.rows(lookup)}
            kept = inserts.keeping(lambda run: run["deployment_name"] not in paused)
            if not kept.rows:
                return set(), paused
            ids = [run["id"] for run in kept.rows]
            if transaction.count(kept) != len(ids):
                # Some fire times had runs already: find the runs this insert created.
                finds = [queries.bind(Call("runs_among", {"ids": chunk})) for chunk in _chunks(ids)]
                ids = [row[0] for find in finds for row in transaction.rows(find)]
            created = set(ids)
            if created:
                transaction.run(states.keeping(lambda state: state["flow_run_id"] in created))
        return created, paused

    def set_run_state(
        self,
        flow_run_id: str,
        state_type: StateType,
        state_name: str,
        message: str | None = None,
        /,  # so that ``values``, the run's other columns by name, cannot be taken for them
        *,
        only_if_active: bool = False,
        only_if_newest: bool = False,
        **values: Any,
    ) -> bool:
        """Move a run to a state now (row and state history, one transaction); whether it
        moved. ``only_if_active``: only a Scheduled, Pending or Running run;
        ``only_if_newest``: only the newest generation of its nominal time. A final state
        is never written over another (``without_final_state``); a state that is not final
        may reopen a finished run (a deployment's retry)."""
        now = utcnow()
        queries = self._writer.queries
        row = {
            **values,
            "state_type": state_type,
            "state_name": state_name,
            "state_message": message,
            "updated": now,
            "row_id": flow_run_id,
        }
        variant = set()
        if only_if_active:
            variant.add("active")
        elif state_type in FINAL_STATE_TYPES:
            variant.add("unfinished")
        if only_if_newest:
            variant.add("newest")
        [update] = queries.bind_rows("update_flow_run", [row], variant)
        state = {
            "flow_run_id": flow_run_id,
            "timestamp": now,
            "type": state_type,
            "name": state_name,
            "message": message,
        }
        [insert_state] = queries.bind_rows("insert_state", [state])
        with self._writer.direct.transaction() as transaction:
            changed = transaction.count(update)
            if changed:
                transaction.run(insert_state)
        return bool(changed)

    def record_fire_times_many(self, fires: Sequence[tuple[str, datetime]]) -> None:
        """Persist each deployment's last nominal fire, in one transaction."""
        if not fires:
            return
        rows = [{"name": name, "last_fire": last} for name, last in fires]
        [update] = self._writer.queries.bind_rows("record_fire", rows)
        with self._writer.direct.transaction() as transaction:
            transaction.run(update)

    def count_deployment_retries(self, flow_run_id: str) -> int:
        """How many times the daemon queued this run again (its deployment's ``retries``)."""
        statement = select(func.count()).where(
            run_states.c.flow_run_id == flow_run_id,
            run_states.c.task_run_id.is_(None),
            run_states.c.name == StateName.AWAITING_RETRY,
            run_states.c.message.like("deployment retry %"),
        )
        with self.reader.connect() as connection:
            return int(connection.execute(statement).scalar_one())

    def read_pause_changes(self, since: datetime) -> list[PauseChange]:
        """Name, paused flag and pause end of active deployments whose row changed at or
        after ``since``.

        The daemon polls this every second: with 10,000 deployments, reading them all each
        time cost 13% of a core while idle.
        """
        return self._all(pause_changes(since), PauseChange)

    def end_timed_pause(
        self, name: str, until: datetime, actor: Actor, reason: str, now: datetime
    ) -> bool:
        """Resume ``name`` as its pause until ``until`` ends, audited in the same
        transaction; False if that pause is no longer there (resumed, or made longer,
        meanwhile). The schedule fires from ``until`` on: the paused period is not caught
        up, and what fell due after it while no daemon ran is downtime for the catch-up."""
        values = pause_values(False, actor.name, None, now)
        values.update(fires_from=resumes_from(until), updated=now)
        statement = (
            update(deployments)
            .where(
                deployments.c.name == name,
                deployments.c.paused.is_(True),
                deployments.c.paused_until == until,
            )
            .values(values)
        )
        with self.engine.begin() as connection:
            if not connection.execute(statement).rowcount:
                return False
            audit = audit_call(actor, AuditAction.RESUME, name, reason, now=now)
            execute_call(connection, audit)
        return True

    def read_outcomes(self, name: str, limit: int) -> list[FlowRunRow]:
        """The newest ``limit`` runs of deployment ``name`` that completed or failed (see
        ``states.FAILED_TYPES``), newest first, of those created since the schedule last
        started deciding its fires (``fires_from``: registered, back in the config,
        resumed). Cancelled, skipped and missed runs are neither: they are left out, and
        so are runs an operator asked for (manual runs, retries): an operator trying a
        deployment by hand does not pause its schedule."""
        since = (
            select(func.coalesce(deployments.c.fires_from, deployments.c.registered_at))
            .where(deployments.c.name == name)
            .scalar_subquery()
        )
        outcomes = sorted({StateType.COMPLETED, *FAILED_TYPES})
        return self._all(
            select(flow_runs)
            .where(
                flow_runs.c.deployment_name == name,
                flow_runs.c.created >= since,
                flow_runs.c.state_type.in_(outcomes),
                flow_runs.c.trigger.in_(sorted(SCHEDULED_CAUSES | {RunCause.UPSTREAM})),
            )
            .order_by(flow_runs.c.created.desc(), flow_runs.c.id.desc())
            .limit(limit),
            FlowRunRow,
        )

    def read_runs_at(self, names: Sequence[str], nominal: datetime) -> list[FlowRunRow]:
        """The runs of deployments ``names`` at the nominal time ``nominal`` (one each at
        most: the unique key), which decide whether a downstream of them runs then."""
        return self._all(
            select(flow_runs).where(
                flow_runs.c.deployment_name.in_(sorted(names)),
                flow_runs.c.scheduled_for == nominal,
            ),
            FlowRunRow,
        )

    def read_unfollowed_runs(
        self, downstream: str, upstream: str, since: datetime, limit: int
    ) -> list[FlowRunRow]:
        """The newest ``limit`` runs of ``upstream`` created at or after ``since`` that
        ended after the newest run of ``downstream`` at their nominal time was created (or
        with none there): the ends a daemon killed before acting on them left (its start
        decides them again, which creates nothing where nothing is due). Not the first
        runs of times an operator asked for (manual runs). Newest first, through the
        (deployment_name, created) index and the (deployment, time, generation) key."""
        ended_at = func.coalesce(flow_runs.c.end_time, flow_runs.c.updated)
        followed = (
            select(later.c.id)
            .where(
                later.c.deployment_name == downstream,
                later.c.scheduled_for == flow_runs.c.scheduled_for,
                later.c.created >= ended_at,
            )
            .exists()
        )
        requested = and_(
            flow_runs.c.trigger.in_(sorted(REQUESTED_CAUSES)), flow_runs.c.generation == 1
        )
        return self._all(
            select(flow_runs)
            .where(
                flow_runs.c.deployment_name == upstream,
                flow_runs.c.created >= since,
                flow_runs.c.state_type.in_(sorted(FINAL_STATE_TYPES)),
                ~requested,
                ~followed,
            )
            .order_by(flow_runs.c.created.desc(), flow_runs.c.id.desc())
            .limit(limit),
            FlowRunRow,
        )

    def read_unfinished_deployment_runs(self) -> list[FlowRunRow]:
        """Runs of deployments that are Scheduled, Pending, Running or Paused in their
        process (not the suspended ones, which hold no process), oldest fire first."""
        return self._all(
            select(flow_runs)
            .where(flow_runs.c.deployment_name.is_not(None), active_run(flow_runs))
            .order_by(flow_runs.c.scheduled_for, flow_runs.c.created),
            FlowRunRow,
        )


def pause_changes(since: datetime) -> Select[Any]:
    """The active deployments whose row changed at or after ``since`` (an indexed range of
    ``updated``: the daemon asks every second)."""
    return select(*PAUSE_CHANGE).where(
        deployments.c.updated >= since, deployments.c.active.is_(True)
    )


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[start : start + _LOOKUP_CHUNK] for start in range(0, len(values), _LOOKUP_CHUNK)]
