"""Backfills as operators ask for them: ``gnomon backfill``, its API routes and the
dashboard's form and progress view, all through ``BackfillOperations``.

A backfill asks for runs of a deployment's nominal times from one time to another (both
included) that have passed: its schedule's times (``daemon.backfill_times``), each run
as the schedule would have run it, with the backfill's parameters over the deployment's.
A time without an offset is a wall time in the deployment's zone (UTC if it has none); a
date alone is that day's first moment, and for ``to`` the whole day. The daemon creates
the runs (``daemon._backfills``); a dry run says what it would do with each time, by the
same rule (``store.backfill_generation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gnomon._secrets import mask
from gnomon.control._inputs import check_parameters
from gnomon.control._operations import Conflict, Operations, UnknownName, check_flow_parameters
from gnomon.control._views import View, iso, schedule_of
from gnomon.exceptions import InvalidInput
from gnomon.scheduling import ScheduleKind, after_words
from gnomon.store import BackfillStatus, Reprocess, backfill_generation

if TYPE_CHECKING:
    from gnomon.store.rows import BackfillRow, DeploymentRow

# Nominal times one backfill may cover: a minute's schedule over 70 days. More is more
# than one request should make; split it.
MAX_BACKFILL_TIMES = 100_000
MAX_BACKFILL_CONCURRENT = 1_000
MAX_BACKFILLS = 500  # listed at most


@dataclass(frozen=True, slots=True)
class PlannedTime:
    """What a backfill does with one nominal time: the generation it creates (None:
    none), and why."""

    nominal: datetime
    generation: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class BackfillPlan:
    """A backfill's range as read, and its nominal times in its order."""

    deployment: str
    start: datetime
    end: datetime
    times: list[datetime]
    zone: str


class BackfillOperations:
    """Backfills, asked for, listed and cancelled by one actor (through ``Operations``)."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.store = ops.store

    def plan(
        self, name: str, start: str, end: str, now: datetime, reverse: bool = False
    ) -> BackfillPlan:
        """The nominal times of deployment ``name`` from ``start`` to ``end``; InvalidInput
        for a range that is empty, reversed, not over yet, or has more than
        MAX_BACKFILL_TIMES times."""
        from gnomon.daemon import backfill_times

        row = self.ops.deployment(name)
        schedule = schedule_of(row)
        zone = row.timezone or "UTC"
        first = parse_backfill_time(start, "from", zone)
        last = parse_backfill_time(end, "to", zone, whole_day=True)
        if last < first:
            raise InvalidInput(f"to ({iso(last)}) is before from ({iso(first)})")
        if last > now:
            raise InvalidInput(
                f"to ({iso(last)}) has not come yet (it is now {iso(now)}); a backfill runs"
                " times that have passed, the schedule runs the rest"
            )
        times = (
            []
            if schedule is None
            else backfill_times(schedule, first, last, False, MAX_BACKFILL_TIMES)
        )
        if len(times) > MAX_BACKFILL_TIMES:
            raise InvalidInput(
                f"from {iso(first)} to {iso(last)} holds more than {MAX_BACKFILL_TIMES:,}"
                f" nominal times of {name}; backfill it in parts"
            )
        return BackfillPlan(row.name, first, last, times[::-1] if reverse else times, zone)

    def dry_run(self, plan: BackfillPlan, reprocess: Reprocess) -> list[PlannedTime]:
        """What a backfill of ``plan`` would do with each time, were it to start now."""
        if not plan.times:
            return []
        newest = self.store.read_time_runs(plan.deployment, plan.start, plan.end)
        planned = []
        for nominal in plan.times:
            generation, reason = backfill_generation(newest.get(nominal), reprocess)
            planned.append(PlannedTime(nominal, generation, reason))
        return planned

    def start(
        self,
        plan: BackfillPlan,
        *,
        max_concurrent: int = 1,
        reprocess: Reprocess = Reprocess.NONE,
        reverse: bool = False,
        parameters: dict[str, Any] | None = None,
    ) -> BackfillRow:
        """Record a backfill of ``plan`` for the daemon to run (audited) and nudge it."""
        if not 1 <= max_concurrent <= MAX_BACKFILL_CONCURRENT:
            raise InvalidInput(
                f"max_concurrent is from 1 to {MAX_BACKFILL_CONCURRENT:,}, not {max_concurrent}"
            )
        deployment = self.ops.deployment(plan.deployment)
        if not plan.times:
            raise InvalidInput(_no_times(deployment, plan))
        check_parameters(parameters or {})
        check_flow_parameters(deployment, parameters or {})
        row = self.store.create_backfill(
            {
                "deployment_name": plan.deployment,
                "start": plan.start,
                "end": plan.end,
                "reverse": reverse,
                "max_concurrent": max_concurrent,
                "reprocess": reprocess,
                "parameters": parameters or {},
                "status": BackfillStatus.RUNNING,
                "total": len(plan.times),
            },
            self.ops.actor,
        )
        self.ops.nudge("poll")
        return row

    def backfill(self, backfill_id: int | str) -> BackfillRow:
        """Backfill ``backfill_id``; UnknownName if there is none."""
        number = _backfill_number(backfill_id)
        row = None if number is None else self.store.read_backfill(number)
        if row is None:
            raise UnknownName("backfill", str(backfill_id))
        return row

    def backfills(self, deployment: str | None = None, limit: int = 50) -> list[BackfillRow]:
        if deployment is not None:
            self.ops.deployment(deployment)
        return self.store.read_backfills(deployment, limit=limit)

    def cancel(self, backfill_id: int | str, reason: str | None = None) -> tuple[BackfillRow, int]:
        """Cancel a running backfill: it creates no more runs, its waiting runs are
        cancelled and its running ones stopped as `gnomon cancel` stops a run (each run's
        cancel audited, and the backfill's). Returns it and how many runs it cancelled.
        Conflict if it has ended."""
        row = self.backfill(backfill_id)
        why = reason or f"backfill {row.id} cancelled"
        if not self.store.finish_backfill(row.id, BackfillStatus.CANCELLED, self.ops.actor, reason):
            raise Conflict(f"backfill {row.id} has ended ({row.status})")
        cancelled = 0
        for run in self.store.read_backfill_unfinished(row.id):
            if self.store.request_cancel(run.id, self.ops.actor, why) is not None:
                cancelled += 1
        self.ops.nudge("poll")
        return self.backfill(row.id), cancelled


# A backfill's bounds start no earlier: a day after the first moment a datetime holds.
EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)


def parse_backfill_time(text: str, name: str, zone: str, *, whole_day: bool = False) -> datetime:
    """A backfill's bound as an aware UTC time: ISO 8601, a wall time in ``zone`` when it
    has no offset (the earlier of one that comes twice; one the clocks skip refused), a
    date alone its first moment, or with ``whole_day`` its last."""
    shown = f"{name} {text.strip()[:80]!r}"
    stripped = text.strip()
    try:
        if len(stripped) == 10:  # a date alone: 2026-12-01
            day = date.fromisoformat(stripped)
            if whole_day:
                day += timedelta(days=1)
            moment = datetime.combine(day, time())
        else:
            moment = datetime.fromisoformat(stripped)
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"{shown} is not an ISO 8601 date or time (2026-12-01, 2026-12-01T06:00,"
            " 2026-12-01T06:00+01:00)"
        ) from None
    try:
        if moment.tzinfo is None:
            wall = moment.replace(tzinfo=ZoneInfo(zone))
            back = wall.astimezone(UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None)
            if back != moment:
                raise InvalidInput(
                    f"{shown} does not exist in {zone} (the clocks skip it); give an offset"
                )
            moment = wall
        moment = moment.astimezone(UTC)
        if whole_day and len(stripped) == 10:
            moment -= timedelta(microseconds=1)
    except OverflowError:  # before the first moment a datetime holds
        moment = datetime.min.replace(tzinfo=UTC)
    if moment < EARLIEST:  # the times are looked for from a moment before it
        raise InvalidInput(f"{shown} is too far back for a nominal time")
    return moment


def _no_times(row: DeploymentRow, plan: BackfillPlan) -> str:
    """Why a backfill of ``plan`` has nothing to run: no nominal time in its range, or no
    schedule of its own (a deployment that runs after others: its upstreams' backfill
    starts its runs)."""
    schedule = schedule_of(row)
    if schedule is not None and schedule.after and not schedule.specs:
        upstreams = ", ".join(upstream.deployment for upstream in schedule.after)
        return (
            f"{row.name} has no schedule of its own (it runs {after_words(schedule.after)}):"
            f" backfill {upstreams}, whose runs start {row.name}'s"
        )
    return (
        f"{row.name} has no nominal time from {iso(plan.start)} to {iso(plan.end)}"
        + _before_anchor(row, plan.start)
    )


def _backfill_number(backfill_id: int | str) -> int | None:
    try:
        number = int(str(backfill_id).strip())
    except ValueError:
        return None
    return number if 0 < number < 2**31 else None


def backfill_view(row: BackfillRow, states: dict[str, int] | None = None) -> View:
    """A backfill as listed and shown: its range, settings, progress (times decided of
    the total, runs created), and with ``states`` its runs by state and how many ended."""
    from gnomon.states import StateName

    view: View = {
        "id": row.id,
        "deployment": row.deployment_name,
        "status": str(row.status),
        "from": iso(row.start),
        "to": iso(row.end),
        "reverse": row.reverse,
        "max_concurrent": row.max_concurrent,
        "reprocess": str(row.reprocess),
        "parameters": mask(row.parameters or {}),  # secrets masked, as a run's are
        "total": row.total,
        "decided": row.decided,
        "created_runs": row.created_runs,
        "cursor": iso(row.cursor),
        "requested_by": row.requested_by,
        "created": iso(row.created),
        "finished_at": iso(row.finished_at),
        "reason": row.reason,
    }
    if states is not None:
        waiting = {StateName.SCHEDULED, StateName.PENDING, StateName.AWAITING_RETRY}
        running = {StateName.RUNNING, StateName.RETRYING, StateName.PAUSED, StateName.CANCELLING}
        view["runs"] = dict(sorted(states.items()))
        view["waiting"] = sum(n for name, n in states.items() if name in waiting)
        view["running"] = sum(n for name, n in states.items() if name in running)
        view["finished"] = sum(states.values()) - view["waiting"] - view["running"]
    return view


def _before_anchor(row: DeploymentRow, start: datetime) -> str:
    """Why an interval deployment has no nominal time from ``start``: its anchor is later."""
    schedule = schedule_of(row)
    if schedule is None or not schedule.specs or row.anchor is None or start >= row.anchor:
        return ""
    if any(spec.kind is ScheduleKind.CRON for spec in schedule.specs):
        return ""
    return f"; its interval counts from its anchor, {iso(row.anchor)}: none before it"
