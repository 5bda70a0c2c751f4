"""The daemon's side of backfills: each running backfill's runs created a batch at a time,
in its order (oldest first, or newest first when reversed), never more of them unfinished
than its own ``max_concurrent`` (the deployment's overlap policy does not apply to them).

Where a backfill stands is the store's (its cursor: the last nominal time decided), so a
daemon that stops mid-backfill goes on where it stopped when it starts again. Its nominal
times are the deployment's schedule's (``Schedule.next_fire``: whatever leaves a time out
of the schedule leaves it out of a backfill), computed once per backfill and schedule.
A paused deployment's backfill waits for its resume; one whose deployment is not in the
daemon's config waits for it to come back (or to be cancelled).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gnomon.daemon._tracking import DAEMON_ACTOR, Slot, run_row
from gnomon.states import StateName, StateType
from gnomon.store import BackfillStatus, RunCause

if TYPE_CHECKING:
    from gnomon.daemon._scheduler import Scheduler
    from gnomon.scheduling import Schedule
    from gnomon.store import Store
    from gnomon.store.rows import BackfillRow, NewFlowRun

log = logging.getLogger("gnomon.daemon")

# Times one batch decides at most: a backfill over thousands of times that have runs
# already moves on in steps, each a short transaction, rather than one long one.
BATCH_TIMES = 500
MICROSECOND = timedelta(microseconds=1)


def backfill_times(
    schedule: Schedule, start: datetime, end: datetime, reverse: bool, limit: int | None = None
) -> list[datetime]:
    """The schedule's nominal times from ``start`` to ``end`` (both included), oldest first
    (newest first if ``reverse``); at most ``limit`` + 1 of them when given (so a caller
    can tell there are more than ``limit``)."""
    times: list[datetime] = []
    current = schedule.next_fire(start - timedelta(microseconds=1))
    while current is not None and current <= end:
        times.append(current)
        if limit is not None and len(times) > limit:
            break
        current = schedule.next_fire(current)
    return times[::-1] if reverse else times


@dataclass(slots=True)
class _Plan:
    """A backfill's next times to decide, for the schedule they are computed from: a batch
    at a time (at most BATCH_TIMES), from the last one computed, so the loop never stops
    for the whole range's times (100,000 ``next_fire`` calls took about ten seconds)."""

    schedule: Schedule
    start: datetime
    end: datetime
    reverse: bool
    total: int  # times in the range when asked for: the reverse windows' first guess
    after: datetime | None  # the last time decided or computed (None: none yet)
    times: list[datetime] = field(default_factory=list)
    position: int = 0
    exhausted: bool = False

    def remaining(self) -> list[datetime]:
        """The batch's times not decided yet; the next batch once these are."""
        if self.position >= len(self.times) and not self.exhausted:
            if self.times:
                self.after = self.times[-1]
            self.times, self.position = self._next_batch(), 0
            self.exhausted = not self.times
        return self.times[self.position :]

    @property
    def done(self) -> bool:
        return not self.remaining()

    def _next_batch(self) -> list[datetime]:
        if not self.reverse:
            after = self.after if self.after is not None else self.start - MICROSECOND
            times: list[datetime] = []
            current = self.schedule.next_fire(after)
            while current is not None and current <= self.end and len(times) < BATCH_TIMES:
                times.append(current)
                current = self.schedule.next_fire(current)
            return times
        # Newest first: the times of a window before the last one, computed oldest first;
        # the window is as long as BATCH_TIMES times take on average, doubled while empty.
        upper = self.after if self.after is not None else self.end + MICROSECOND
        span = max((self.end - self.start) * BATCH_TIMES / max(self.total, 1), MICROSECOND)
        while upper > self.start:
            lower = max(self.start, upper - span)
            window = backfill_times(self.schedule, lower, upper - MICROSECOND, False)
            if window:
                return window[::-1][:BATCH_TIMES]
            upper, span = lower, span * 2
        return []


class BackfillRunner:
    """Creates the running backfills' runs and hands them to the scheduler's queue."""

    def __init__(self, store: Store, scheduler: Scheduler, daemon_id: str) -> None:
        self.store = store
        self.scheduler = scheduler
        self.daemon_id = daemon_id
        self._plans: dict[int, _Plan] = {}
        self._due = threading.Event()
        self._due.set()  # at start: the backfills a stopped daemon left go on

    def request(self) -> None:
        """Look at the backfills at the next pass (a run of one ended, or the store's poll
        came: a backfill may have been asked for or cancelled). Any thread may call it."""
        self._due.set()

    def due(self) -> bool:
        return self._due.is_set()

    def step(self, now: datetime) -> int:
        """Create what each running backfill may run now, queued; how many runs."""
        self._due.clear()
        created = 0
        running = self.store.read_backfills(status=BackfillStatus.RUNNING)
        for backfill in running:
            slot = self.scheduler.deployment(backfill.deployment_name)
            if slot is not None and not slot.paused:
                created += self._advance(backfill, slot, now)
        known = {backfill.id for backfill in running}
        for backfill_id in set(self._plans) - known:  # ended: cancelled, or by another daemon
            del self._plans[backfill_id]
        return created

    def _advance(self, backfill: BackfillRow, slot: Slot, now: datetime) -> int:
        plan = self._plan(backfill, slot)
        unfinished = self.store.count_backfill_unfinished(backfill.id)
        if plan.done:
            if not unfinished:
                self._finish(backfill)
            return 0
        free = backfill.max_concurrent - unfinished
        if free <= 0:
            return 0

        def make_run(nominal: datetime, generation: int) -> NewFlowRun:
            return backfill_run(slot, backfill, nominal, generation, now, self.daemon_id)

        step = self.store.create_backfill_runs(backfill, plan.remaining(), free, make_run)
        if step is None:  # cancelled meanwhile
            self._plans.pop(backfill.id, None)
            return 0
        plan.position += step.decided
        for run in step.created:
            self.scheduler.queue_backfill_run(slot, run)
        if step.created:
            log.info(
                "backfill %d: %d runs of %s created, up to %s",
                backfill.id,
                len(step.created),
                backfill.deployment_name,
                step.cursor.isoformat() if step.cursor else "-",
                extra={"deployment": backfill.deployment_name, "event_kind": "backfill_runs"},
            )
        if len(step.created) < free and not plan.done:
            self._due.set()  # the batch met only times that have runs: go on next pass
        return len(step.created)

    def _plan(self, backfill: BackfillRow, slot: Slot) -> _Plan:
        """The backfill's times after its cursor, computed afresh when the deployment's
        schedule changed (a reload)."""
        plan = self._plans.get(backfill.id)
        if plan is None or plan.schedule is not slot.trigger:
            plan = _Plan(
                slot.trigger,
                backfill.start,
                backfill.end,
                backfill.reverse,
                backfill.total,
                backfill.cursor,
            )
            self._plans[backfill.id] = plan
        return plan

    def _finish(self, backfill: BackfillRow) -> None:
        self._plans.pop(backfill.id, None)
        if self.store.finish_backfill(backfill.id, BackfillStatus.COMPLETED, DAEMON_ACTOR):
            log.info(
                "backfill %d of %s completed",
                backfill.id,
                backfill.deployment_name,
                extra={"deployment": backfill.deployment_name, "event_kind": "backfill_completed"},
            )


def backfill_run(
    slot: Slot,
    backfill: BackfillRow,
    nominal: datetime,
    generation: int,
    now: datetime,
    daemon_id: str,
) -> NewFlowRun:
    """A backfill's run of ``nominal``: the schedule's run of that time (its spec's
    parameters), with the backfill's parameters over them, due now."""
    row = run_row(
        slot,
        nominal,
        now,
        RunCause.BACKFILL,
        daemon_id,
        StateType.PENDING,
        StateName.PENDING,
        f"backfill {backfill.id}",
    )
    row["parameters"] = {**(row.get("parameters") or {}), **(backfill.parameters or {})}
    row["expected_start_time"] = now  # due when made, not at its nominal time long ago
    row["generation"] = generation
    row["backfill_id"] = backfill.id
    row["force"] = True  # its concurrency is the backfill's, not the overlap policy's
    if generation > 1:
        row["name"] = f"{row['name']}#{generation}"
    return row
