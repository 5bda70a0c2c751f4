"""Paused and suspended flow runs (``pause_flow_run``, ``suspend_flow_run``) in the store.

A pause is a ``run_pauses`` row, one per (run, pause key): the input it waits for (a JSON
schema), until when, and once resumed, by whom and with what input. Opening a pause and
moving the run to Paused (or Suspended) is one transaction, and so is resuming it (the
pause row, the run's state and the audit entry): a resume either happened with its input
or did not. Resuming and expiring a pause are conditional on each other (an expired pause
cannot be resumed, a resumed one cannot expire), so of a late resume and a timeout exactly
one wins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, desc, or_, select, update

from gnomon.states import StateName, StateType
from gnomon.store._calls import audit_call
from gnomon.store._kinds import AuditAction, Nudge
from gnomon.store._queries import Queries, execute_call, notify_in
from gnomon.store._schema import flow_runs, run_pauses, run_states, utcnow
from gnomon.store._values import Actor
from gnomon.store.rows import FlowRunRow, RunPauseRow

PAUSED = StateType.PAUSED


class PauseQueries(Queries):
    """The run_pauses table's reads and writes."""

    def open_pause(
        self,
        flow_run_id: str,
        pause_key: str,
        *,
        suspend: bool,
        timeout_at: datetime | None,
        input_schema: dict[str, Any] | None,
        description: str | None,
        message: str,
    ) -> RunPauseRow | None:
        """Pause the running run ``flow_run_id`` under ``pause_key``: the pause row and the
        run's Paused (or Suspended) state in one transaction; None then. If the run has a
        pause of that key already (a suspended run running again, a key used twice), that
        pause is returned and nothing changes: a pause fires once."""
        now = utcnow()
        with self.engine.begin() as connection:
            existing = _pause_row(connection, flow_run_id, pause_key)
            if existing is not None:
                return existing
            connection.execute(
                run_pauses.insert(),
                {
                    "flow_run_id": flow_run_id,
                    "pause_key": pause_key,
                    "suspend": suspend,
                    "created": now,
                    "timeout_at": timeout_at,
                    "input_schema": input_schema,
                    "description": description,
                },
            )
            name = StateName.SUSPENDED if suspend else StateName.PAUSED
            moved = connection.execute(
                update(flow_runs)
                .where(flow_runs.c.id == flow_run_id, flow_runs.c.state_type == StateType.RUNNING)
                .values(state_type=PAUSED, state_name=name, state_message=message, updated=now)
            ).rowcount
            if not moved:
                raise RuntimeError(f"flow run {flow_run_id} is not running: it cannot pause")
            _add_state(connection, flow_run_id, now, PAUSED, name, message)
        return None

    def read_pause(self, flow_run_id: str, pause_key: str) -> RunPauseRow | None:
        """The run's pause of ``pause_key``, or None."""
        with self.reader.connect() as connection:
            return _pause_row(connection, flow_run_id, pause_key)

    def read_open_pause(self, flow_run_id: str) -> RunPauseRow | None:
        """The run's newest pause that was not resumed, or None."""
        statement = (
            select(run_pauses)
            .where(run_pauses.c.flow_run_id == flow_run_id, run_pauses.c.resumed_at.is_(None))
            .order_by(desc(run_pauses.c.id))
            .limit(1)
        )
        return self._one(statement, RunPauseRow)

    def expire_pause(self, pause_id: int, now: datetime) -> bool:
        """End a pause that timed out, unless it was resumed first: whether it expired (a
        resume after this is refused)."""
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    update(run_pauses)
                    .where(run_pauses.c.id == pause_id, run_pauses.c.resumed_at.is_(None))
                    .values(timeout_at=now)
                ).rowcount
            )

    def resume_paused_run(
        self, pause: RunPauseRow, actor: Actor, run_input: dict[str, Any] | None
    ) -> bool:
        """Resume the run of ``pause`` with ``run_input``, audited: a paused run back to
        Running (its process goes on), a suspended one to Scheduled "Resuming" (the daemon
        runs it again). False if the pause was resumed already, timed out, or the run is no
        longer paused."""
        now = utcnow()
        state = (
            (StateType.SCHEDULED, StateName.RESUMING)
            if pause.suspend
            else (StateType.RUNNING, StateName.RUNNING)
        )
        try:
            with self.engine.begin() as connection:
                self._resume(connection, pause, actor, run_input, now, state)
        except _NotResumed:
            return False
        return True

    @staticmethod
    def _resume(
        connection: Connection,
        pause: RunPauseRow,
        actor: Actor,
        run_input: dict[str, Any] | None,
        now: datetime,
        state: tuple[StateType, StateName],
    ) -> None:
        by = f"resumed by {actor.name}"
        resumed = connection.execute(
            update(run_pauses)
            .where(
                run_pauses.c.id == pause.id,
                run_pauses.c.resumed_at.is_(None),
                or_(run_pauses.c.timeout_at.is_(None), run_pauses.c.timeout_at > now),
            )
            .values(resumed_at=now, resumed_by=actor.name, input=run_input)
        ).rowcount
        moved = (
            resumed
            and connection.execute(
                update(flow_runs)
                .where(flow_runs.c.id == pause.flow_run_id, flow_runs.c.state_type == PAUSED)
                .values(state_type=state[0], state_name=state[1], state_message=by, updated=now)
            ).rowcount
        )
        if not moved:
            raise _NotResumed  # rolls the pause row's change back
        _add_state(connection, pause.flow_run_id, now, *state, by)
        detail = {"pause_key": pause.pause_key, "suspended": pause.suspend}
        execute_call(
            connection,
            audit_call(actor, AuditAction.RUN_RESUME, pause.flow_run_id, None, detail, now),
        )
        notify_in(connection, Nudge.POLL)  # a suspended run: the daemon runs it again

    def read_resumed_runs(self, since: datetime) -> list[FlowRunRow]:
        """Suspended runs resumed at or after ``since`` that wait for the daemon to run them
        again (Scheduled "Resuming")."""
        return self._all(
            select(flow_runs).where(
                flow_runs.c.state_type == StateType.SCHEDULED,
                flow_runs.c.state_name == StateName.RESUMING,
                flow_runs.c.updated >= since,
            ),
            FlowRunRow,
        )

    def fail_expired_suspensions(self, now: datetime) -> list[str]:
        """Fail the suspended runs whose pause timed out before ``now`` (no process of
        theirs is left to notice); the ids failed."""
        expired = (
            select(flow_runs.c.id, run_pauses.c.id)
            .join(run_pauses, run_pauses.c.flow_run_id == flow_runs.c.id)
            .where(
                flow_runs.c.state_type == PAUSED,
                flow_runs.c.state_name == StateName.SUSPENDED,
                run_pauses.c.suspend.is_(True),
                run_pauses.c.resumed_at.is_(None),
                run_pauses.c.timeout_at < now,
            )
        )
        with self.reader.connect() as connection:
            found = connection.execute(expired).tuples().all()
        if not found:
            return []
        message = "The flow was suspended and never resumed."
        failed = []
        with self.engine.begin() as connection:
            for flow_run_id, _ in found:
                if connection.execute(
                    update(flow_runs)
                    .where(
                        and_(
                            flow_runs.c.id == flow_run_id,
                            flow_runs.c.state_type == PAUSED,
                            flow_runs.c.state_name == StateName.SUSPENDED,
                        )
                    )
                    .values(
                        state_type=StateType.FAILED,
                        state_name=StateName.FAILED,
                        state_message=message,
                        error_type="FlowPauseTimeout",
                        error_message=message,
                        end_time=now,
                        updated=now,
                    )
                ).rowcount:
                    _add_state(
                        connection, flow_run_id, now, StateType.FAILED, StateName.FAILED, message
                    )
                    failed.append(flow_run_id)
        return failed


class _NotResumed(Exception):
    """The pause could not be resumed: its transaction is rolled back."""


def _pause_row(connection: Connection, flow_run_id: str, pause_key: str) -> RunPauseRow | None:
    statement = select(run_pauses).where(
        run_pauses.c.flow_run_id == flow_run_id, run_pauses.c.pause_key == pause_key
    )
    found = connection.execute(statement).first()
    return RunPauseRow(*found) if found is not None else None


def _add_state(
    connection: Connection,
    flow_run_id: str,
    now: datetime,
    state_type: StateType,
    name: str,
    message: str,
) -> None:
    connection.execute(
        run_states.insert(),
        {
            "flow_run_id": flow_run_id,
            "timestamp": now,
            "type": state_type,
            "name": name,
            "message": message,
        },
    )
