"""The reads behind the dashboard's overview: finished runs counted by time bin (from
``run_bins``, which triggers keep, so no read groups the runs themselves), each deployment's
last finished run, runs late to start, and runs not finished yet. Every read is bounded:
by the deployments asked about, by the bins of a window, or by a limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, desc, func, literal, select

from gnomon.states import FINAL_TYPES, UNRUN_NAMES, WAITING_TYPES, StateType
from gnomon.store._queries import Queries
from gnomon.store._schema import (
    ALL_DEPLOYMENTS,
    RECENT_RUN,
    RUN_BIN_SPANS,
    deployments,
    flow_runs,
    on_its_time,
    run_bins,
)
from gnomon.store.rows import RecentRun, RunBin

# Not finished: what a timeline shows beside the counted bins.
UNFINISHED_TYPES = sorted(set(StateType) - FINAL_TYPES)


def epoch(moment: datetime) -> int:
    """``moment`` as whole seconds since the epoch (``run_bins.bin_start``'s unit)."""
    return int(moment.timestamp())


class OverviewQueries(Queries):
    """What the overview page reads."""

    def read_run_bins(
        self, names: Sequence[str], start: datetime, end: datetime, width: int
    ) -> list[RunBin]:
        """Finished runs of the deployments ``names`` whose nominal time is in [start, end),
        counted by bins of ``width`` seconds (a multiple of a span of ``RUN_BIN_SPANS``)
        and state: the widest stored bins that fit, summed; ``bin_start`` is the start of
        the wide bin. About one row per bin shown, whatever the window."""
        spans = [span for span in RUN_BIN_SPANS if width % span == 0]
        if not spans or width <= 0:
            raise ValueError(f"a bin width must be a multiple of one of {RUN_BIN_SPANS} s")
        b = run_bins.c
        span = max(spans)
        wide = ((b.bin_start // literal(width)) * literal(width)).label("bin_start")
        statement = (
            select(b.span, b.deployment_name, wide, b.state_type, b.state_name, func.sum(b.runs))
            .where(
                b.span == span,
                b.deployment_name.in_(list(names)),
                b.bin_start >= epoch(start),
                b.bin_start < epoch(end),
            )
            .group_by(b.span, b.deployment_name, wide, b.state_type, b.state_name)
        )
        return self._all(statement, RunBin)

    def read_run_totals(self, start: datetime, end: datetime) -> list[RunBin]:
        """Finished runs of every deployment whose nominal time is from the hour ``start``
        falls in to ``end``, counted by state (``deployment_name`` ``ALL_DEPLOYMENTS``,
        ``bin_start`` that hour): the hourly bins of all deployments, a row per hour and
        state read."""
        return self._hourly_sums(start, end, run_bins.c.deployment_name == ALL_DEPLOYMENTS)

    def read_state_runs(self, state_name: str, start: datetime, end: datetime) -> list[RunBin]:
        """Runs that finished in ``state_name`` with nominal time from the hour ``start``
        falls in to ``end``, by deployment: at most a row per deployment."""
        b = run_bins.c
        return self._hourly_sums(
            start, end, b.state_name == state_name, b.deployment_name != ALL_DEPLOYMENTS
        )

    def _hourly_sums(
        self, start: datetime, end: datetime, *where: ColumnElement[bool]
    ) -> list[RunBin]:
        b = run_bins.c
        hour = RUN_BIN_SPANS[-1]
        first = epoch(start) // hour * hour
        statement = (
            select(
                b.span,
                b.deployment_name,
                literal(first),
                b.state_type,
                b.state_name,
                func.sum(b.runs),
            )
            .where(b.span == hour, b.bin_start >= first, b.bin_start < epoch(end), *where)
            .group_by(b.span, b.deployment_name, b.state_type, b.state_name)
        )
        return self._all(statement, RunBin)

    def read_last_finished(self) -> list[RecentRun]:
        """Each active deployment's newest finished run (Skipped and Missed fires are not
        runs that finished): one index lookup per deployment."""
        r = flow_runs.alias("r")
        newest = (
            select(r.c.id)
            .where(
                r.c.deployment_name == deployments.c.name,
                r.c.state_type.in_(sorted(FINAL_TYPES)),
                r.c.state_name.not_in(sorted(UNRUN_NAMES)),
            )
            .order_by(desc(r.c.created))
            .limit(1)
            .scalar_subquery()
        )
        ids = select(newest).where(deployments.c.active.is_(True))
        statement = select(*RECENT_RUN).where(flow_runs.c.id.in_(ids))
        return self._all(statement.order_by(flow_runs.c.deployment_name), RecentRun)

    def read_late_runs(self, before: datetime, limit: int) -> list[RecentRun]:
        """Up to ``limit`` runs of deployments still waiting to start (Scheduled, Pending)
        whose nominal time is before ``before``, oldest first; not a retry's later generation
        or a backfill's run, which run after their time on purpose."""
        c = flow_runs.c
        statement = (
            select(*RECENT_RUN)
            .where(
                c.state_type.in_(sorted(WAITING_TYPES)),
                c.deployment_name.is_not(None),
                c.scheduled_for < before,
                on_its_time(flow_runs),
            )
            .order_by(c.scheduled_for)
            .limit(limit)
        )
        return self._all(statement, RecentRun)

    def read_unfinished_runs(self, names: Sequence[str], limit: int) -> list[RecentRun]:
        """Up to ``limit`` runs of the deployments ``names`` that have not finished (waiting,
        running, paused, being cancelled), newest first."""
        c = flow_runs.c
        statement = (
            select(*RECENT_RUN)
            .where(c.state_type.in_(UNFINISHED_TYPES), c.deployment_name.in_(list(names)))
            .order_by(desc(c.scheduled_for))
            .limit(limit)
        )
        return self._all(statement, RecentRun)
