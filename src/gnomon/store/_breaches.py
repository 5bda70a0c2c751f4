"""Breaches of deployments' deadline and freshness policies, and the reads the daemon's
deadline watch makes (see ``gnomon.daemon._deadlines``).

A breach is recorded before anyone is told of it, under its key (deployment, kind, nominal
time): recording one that exists changes nothing and says so, which is how a restarted
daemon knows not to tell it again. Every read is bounded by an index: the open breaches
(``cleared_at``), a deployment's newest (``deployment_name, detected_at``), and the runs
not finished yet (``flow_runs.state_type``), of which a daemon has few.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, desc, or_, select, update

from gnomon.states import FINAL_TYPES, StateType
from gnomon.store._kinds import RunCause
from gnomon.store._queries import Queries
from gnomon.store._schema import WATCHED_RUN, breaches, deployments, flow_runs
from gnomon.store.rows import BreachRow, WatchedRun

if TYPE_CHECKING:
    from gnomon.store.rows import NewBreach

# Runs that may still breach a deadline: every state but the final ones.
UNFINISHED = sorted(set(StateType) - FINAL_TYPES)
BREACH_KEY = ("deployment_name", "kind", "nominal_time")


class BreachQueries(Queries):
    """The breaches table's reads and writes, and the run reads behind them."""

    def record_breach(self, row: NewBreach) -> BreachRow | None:
        """Record a breach unless its (deployment, kind, nominal time) has one: the row
        recorded, or None if it existed (recorded before, by this daemon or an earlier one)."""
        with self.engine.begin() as connection:
            statement = (
                _insert(connection)(breaches)
                .values(dict(row))
                .on_conflict_do_nothing(index_elements=list(BREACH_KEY))
                .returning(*breaches.c)
            )
            found = connection.execute(statement).first()
        return None if found is None else BreachRow(*found)

    def clear_breach(self, breach_id: int, at: datetime) -> bool:
        """Record that a breach ended at ``at``; False if it had ended already."""
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    update(breaches)
                    .where(breaches.c.id == breach_id, breaches.c.cleared_at.is_(None))
                    .values(cleared_at=at)
                ).rowcount
            )

    def mark_breaches_notified(self, breach_ids: Sequence[int]) -> None:
        """Record that these breaches' events were handed to the notification targets."""
        if not breach_ids:
            return
        with self.engine.begin() as connection:
            connection.execute(
                update(breaches).where(breaches.c.id.in_(list(breach_ids))).values(notified=True)
            )

    def read_open_breaches(self) -> list[BreachRow]:
        """Every breach not cleared yet, oldest first."""
        statement = select(breaches).where(breaches.c.cleared_at.is_(None))
        return self._all(statement.order_by(breaches.c.id), BreachRow)

    def read_breaches(
        self, deployment: str | None = None, *, open_only: bool = False, limit: int = 100
    ) -> list[BreachRow]:
        """Breaches newest first (by detection, then id): a deployment's or everyone's, the
        open ones only if ``open_only``; at most ``limit``."""
        statement = select(breaches)
        if deployment is not None:
            statement = statement.where(breaches.c.deployment_name == deployment)
        if open_only:
            statement = statement.where(breaches.c.cleared_at.is_(None))
        order = (desc(breaches.c.detected_at), desc(breaches.c.id))
        return self._all(statement.order_by(*order).limit(limit), BreachRow)

    def read_watched_runs(self, nominal_before: datetime, names: Sequence[str]) -> list[WatchedRun]:
        """Runs of the deployments ``names`` that have not finished and whose nominal time
        is before ``nominal_before``: those that may be late or past their deadline. A
        backlog of other deployments' waiting runs is not read."""
        c = flow_runs.c
        statement = select(*WATCHED_RUN).where(
            c.state_type.in_(UNFINISHED),
            c.deployment_name.in_(sorted(names)),
            c.scheduled_for < nominal_before,
            # The runs on their time (see ``run_on_its_time``): not a retry's later
            # generation, nor a backfill's run.
            c.generation == 1,
            or_(c.trigger.is_(None), c.trigger != RunCause.BACKFILL),
        )
        return self._all(statement.order_by(c.scheduled_for), WatchedRun)

    def read_watched_run(self, flow_run_id: str) -> WatchedRun | None:
        """One run as ``read_watched_runs`` gives it, whatever its state; None if gone."""
        return self._one(select(*WATCHED_RUN).where(flow_runs.c.id == flow_run_id), WatchedRun)

    def read_last_successes(self, names: Sequence[str]) -> dict[str, datetime]:
        """By deployment of ``names``: when its newest completed run ended (those that never
        completed are left out); an index lookup per deployment."""
        r = flow_runs.alias("r")
        newest = (
            select(r.c.id)
            .where(r.c.deployment_name == deployments.c.name, r.c.state_type == StateType.COMPLETED)
            .order_by(desc(r.c.created))
            .limit(1)
            .scalar_subquery()
        )
        ids = select(newest).where(deployments.c.name.in_(list(names)))
        statement = select(flow_runs.c.deployment_name, flow_runs.c.end_time).where(
            flow_runs.c.id.in_(ids), flow_runs.c.end_time.is_not(None)
        )
        with self.reader.connect() as connection:
            return dict(connection.execute(statement).tuples().all())


def _insert(connection: Connection) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing`` (SQLite's and PostgreSQL's
    are spelt alike)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return sqlite.insert if connection.dialect.name == "sqlite" else postgresql.insert
