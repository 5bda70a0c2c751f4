"""Why a deployment fires or not: ``gnomon deployments next`` (its next fire times, the
excluded ones marked with why) and ``gnomon deployments explain`` (its last decisions with
their reasons, and its next fires with anything that will stop them), which the API and
the dashboard's deployment page show too.

Excluded fires have no rows (an every-second deployment would write 86,400 a day): what
is shown of them is derived from the calendars, the maintenance windows and the pause
(its state, and its history in the audit log). What may stop a coming fire is a list of
``BLOCKERS``, each a small function of the deployment as it stands (``FireContext``) and
one fire; a new reason a fire may not run is one more function there.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gnomon.control._inputs import local_text
from gnomon.control._views import iso, schedule_of
from gnomon.deployments import POOL_LIMIT_PREFIX, Overlap, stored_window, windows_for
from gnomon.scheduling import Blocked, BlockKind, Schedule, after_words
from gnomon.states import FINAL_TYPES, StateName
from gnomon.store import AuditAction, RunCause

if TYPE_CHECKING:
    from gnomon.store import ControlStore
    from gnomon.store.rows import AuditEntry, DeploymentRow, FlowRunRow

# How many past fire times `explain` looks through for the excluded ones between runs.
HISTORY_SCAN = 2000
# Without runs to go by, how far back `explain` looks for excluded fires.
HISTORY_SPAN = timedelta(days=1)


@dataclass(frozen=True)
class Blocker:
    """Something that stops (or may stop) a fire: its kind, what or who does it, and
    the reason in words. Kinds: those of ``BlockKind`` (paused, calendar, maintenance),
    ``overlap`` (a run still going, with the deployment's overlap policy) and ``pool`` (its
    run pool's slots all taken). A downstream's wait for its upstreams is a note of
    ``explain`` (``upstream_notes``): it has no fire times of its own."""

    kind: str
    by: str | None
    reason: str

    @classmethod
    def of(cls, blocked: Blocked) -> Blocker:
        return cls(str(blocked.kind), blocked.by, blocked.reason)

    def view(self) -> dict[str, Any]:
        return {"kind": self.kind, "by": self.by, "reason": self.reason}


@dataclass(frozen=True)
class Fire:
    """A coming fire: its nominal time, when it is due (with the jitter), which spec it
    is of, and its place among those listed (0: the next)."""

    nominal: datetime
    due: datetime
    spec: int
    position: int


@dataclass(frozen=True)
class FireContext:
    """A deployment as its coming fires see it: its row, its schedule with the windows
    that apply to it, the time asked at, its runs that have not finished, and the store
    (for a blocker that needs to read more, such as its upstreams' runs)."""

    row: DeploymentRow
    schedule: Schedule
    now: datetime
    unfinished: Sequence[FlowRunRow] = field(default_factory=tuple)
    store: ControlStore | None = field(default=None, compare=False)


def paused(context: FireContext, fire: Fire) -> Blocker | None:
    """Paused then: until resumed, or before its pause ends by itself."""
    row = context.row
    if not row.paused or (row.paused_until is not None and fire.nominal >= row.paused_until):
        return None
    who = f" by {row.paused_by}" if row.paused_by else ""
    why = f" ({row.paused_reason})" if row.paused_reason else ""
    until = f"until {local_text(row.paused_until)}" if row.paused_until else "until resumed"
    return Blocker(str(BlockKind.PAUSED), row.paused_by, f"paused{who} {until}{why}")


def excluded(context: FireContext, fire: Fire) -> Blocker | None:
    """On a day a calendar leaves out, or inside a maintenance window."""
    blocked = context.schedule.blocked(fire.nominal)
    return None if blocked is None else Blocker.of(blocked)


def overlap(context: FireContext, fire: Fire) -> Blocker | None:
    """The next fire, while a run is still going: skipped (overlap = skip), queued behind
    it (queue), waiting for a place (allow, at max_concurrent), or cancelling it."""
    if fire.position != 0 or not context.unfinished:
        return None
    policies = context.row.policies or {}
    policy = Overlap(policies.get("overlap", Overlap.SKIP))
    limit = int(policies.get("max_concurrent", 1))
    going = [run for run in context.unfinished if run.state_type not in FINAL_TYPES]
    if not going or (policy is Overlap.ALLOW and len(going) < limit):
        return None
    run = going[0]
    state = run.state_name or "unfinished"
    outcome = {
        Overlap.SKIP: "skipped",
        Overlap.QUEUE: "queued behind it",
        Overlap.ALLOW: f"waits: {len(going)} of max_concurrent {limit} going",
        Overlap.CANCEL_PREVIOUS: "run, cancelling it",
    }[policy]
    reason = f"run {run.id[:8]} is {state}: if it still is then, this fire is {outcome}"
    return Blocker("overlap", run.id, f"{reason} (overlap = {policy.value})")


def pool_full(context: FireContext, fire: Fire) -> Blocker | None:
    """The next fire of a deployment in a run pool whose slots are all taken now."""
    pool = (context.row.policies or {}).get("pool")
    if fire.position != 0 or not isinstance(pool, str) or context.store is None:
        return None
    limit = POOL_LIMIT_PREFIX + pool
    slots = next(
        (row.slot_limit for row in context.store.read_limit_rows() if row.name == limit), None
    )
    taken = context.store.count_active_slots().get(limit, 0)
    if slots is None or taken < slots:
        return None
    reason = (
        f"pool {pool} has {taken}/{slots} slots taken: if it still has then, this fire's run"
        " waits for one (AwaitingPool)"
    )
    return Blocker("pool", pool, reason)


BlockerRule = Callable[[FireContext, Fire], Blocker | None]
# What may stop a coming fire, in the order shown.
BLOCKERS: list[BlockerRule] = [paused, excluded, overlap, pool_full]
# Of those, the ones that take a fire out (no run, no row): what `next` marks.
EXCLUDING: tuple[BlockerRule, ...] = (paused, excluded)


def context_of(store: ControlStore, row: DeploymentRow, now: datetime) -> FireContext | None:
    """The deployment's ``FireContext``; None if its stored schedule cannot be built."""
    schedule = schedule_of(row)
    if schedule is None:
        return None
    windows = [stored_window(each) for each in store.read_maintenance(now - HISTORY_SPAN)]
    schedule = schedule.with_windows(windows_for(windows, row.name, row.tags or ()))
    unfinished = [
        run
        for run in store.read_runs(deployment=row.name, limit=20)
        if run.state_type not in FINAL_TYPES
    ]
    return FireContext(row, schedule, now, unfinished, store)


def coming_fires(context: FireContext, after: datetime | None = None) -> Iterator[Fire]:
    """The fire times after now (and after its last fire; or after ``after``), excluded
    ones included."""
    row, schedule = context.row, context.schedule
    start = max(context.now, row.last_fire) if row.last_fire else context.now
    upcoming = schedule.upcoming(after or start)
    for position, (due, spec, _) in enumerate(upcoming):
        yield Fire(due - schedule.offset, due, spec, position)


def next_running(context: FireContext, after: datetime) -> datetime | None:
    """The nominal time of the first fire after ``after`` that runs (past calendars,
    windows and the pause); None if none will (paused until resumed, or no more fires)."""
    row = context.row
    while (nominal := context.schedule.next_fire(after)) is not None:
        if not row.paused or (row.paused_until is not None and nominal >= row.paused_until):
            return nominal
        if row.paused_until is None:
            return None
        after = row.paused_until - timedelta(microseconds=1)
    return None


def blockers(
    context: FireContext, fire: Fire, rules: Sequence[BlockerRule] = BLOCKERS
) -> list[Blocker]:
    """What stops (or may stop) ``fire``, by each of ``rules``."""
    return [found for rule in rules if (found := rule(context, fire)) is not None]


def next_view(context: FireContext, count: int) -> list[dict[str, Any]]:
    """``deployments next``: the next ``count`` fires that run, and the excluded times
    before them with why (``excluded``; None: it fires). Past ``count`` excluded times in a
    row, one entry (kind ``more``) says until when the rest are excluded."""
    views: list[dict[str, Any]] = []
    fires = coming_fires(context)
    ran = excluded = 0
    while ran < count and (fire := next(fires, None)) is not None:
        found = blockers(context, fire, EXCLUDING)
        if found and excluded >= count:
            resumes = next_running(context, fire.nominal)
            until = "" if resumes is None else f" until {iso(resumes + context.schedule.offset)}"
            more = Blocker("more", None, f"and more excluded times{until}")
            views.append({"time": iso(fire.due), "spec": None, "excluded": more.view()})
            if resumes is None:
                break
            fires, excluded = coming_fires(context, resumes - timedelta(microseconds=1)), 0
            continue
        excluded += bool(found)
        ran += not found
        view = found[0].view() if found else None
        views.append({"time": iso(fire.due), "spec": fire.spec, "excluded": view})
    return views


def explain_view(
    store: ControlStore, context: FireContext, count: int, decisions: int = 20
) -> dict[str, Any]:
    """``deployments explain``: the schedule, notes on it as a whole (its active window),
    the last ``decisions`` with their reasons, newest first, and the next ``count`` fires
    with what stops or may stop each."""
    coming = [
        {
            "time": iso(fire.due),
            "spec": fire.spec,
            "blockers": [each.view() for each in blockers(context, fire)],
        }
        for fire in itertools.islice(coming_fires(context), count)
    ]
    return {
        "deployment": context.row.name,
        "now": iso(context.now),
        "schedule": context.schedule.describe(),
        "notes": schedule_notes(context, bool(coming)) + upstream_notes(context),
        "decisions": past_decisions(store, context, decisions),
        "next": coming,
    }


def schedule_notes(context: FireContext, fires: bool) -> list[str]:
    """What holds the schedule as a whole: its active window (not begun, or over)."""
    notes = []
    window, now = context.schedule.window, context.now
    if window.start is not None and now < window.start:
        notes.append(f"active_from {window.written_from}: no fire before it")
    if window.end is not None and now > window.end:
        notes.append(f"active_until {window.written_until} has passed: no more fires")
    for number, spec in enumerate(context.schedule.specs, 1):
        bounds = spec.window
        if bounds.end is not None and now > bounds.end and len(context.schedule.specs) > 1:
            notes.append(f"spec #{number} ({spec.written}): active_until has passed")
        elif bounds.start is not None and now < bounds.start:
            notes.append(f"spec #{number} ({spec.written}): active from {bounds.written_from}")
    if not fires and not notes and not context.schedule.after:
        notes.append("the schedule has no more fires")
    return notes


def upstream_notes(context: FireContext) -> list[str]:
    """A downstream's (``after``): for each upstream, what it waits for, its runs under
    way (at whose nominal times it will run, once they end as it wants); or that none is."""
    after = context.schedule.after
    if not after or context.store is None:
        return []
    notes = []
    for upstream in after:
        going = [
            run
            for run in context.store.read_runs(deployment=upstream.deployment, limit=20)
            if run.state_type not in FINAL_TYPES
        ]
        wanted = upstream.describe()
        if not going:
            notes.append(f"runs {after_words([upstream])}: no run of it is under way")
        for run in reversed(going):  # oldest first
            nominal = iso(run.scheduled_for) if run.scheduled_for else "its time"
            state = run.state_name or "unfinished"
            notes.append(
                f"waiting for an upstream: {wanted}'s run {run.id[:8]} at {nominal} is {state};"
                " this runs at that time when it ends"
            )
    return notes


def past_decisions(store: ControlStore, context: FireContext, count: int) -> list[dict[str, Any]]:
    """The last ``count`` decisions, newest first: the runs' (fired, queued, skipped,
    missed, manual, retry, backfill, ...) with their reasons, and the fire times between
    them that have no row, derived: excluded by a calendar or window, or paused then (the
    audit log's pauses); a time none of those explains is shown as such (no daemon ran then)."""
    row, now = context.row, context.now
    runs = store.read_runs(deployment=row.name, limit=count)
    entries = [_run_decision(run) for run in runs]
    scheduled = {run.scheduled_for for run in runs if run.scheduled_for is not None}
    if len(runs) >= count and scheduled:
        since = min(scheduled)  # what lies before it is past the count anyway
    else:
        since = max(now - HISTORY_SPAN, row.registered_at or now - HISTORY_SPAN)
    pauses = _pause_spans(store.read_audit(target=row.name, limit=200), row, now)
    schedule = context.schedule
    for due, _, blocked in itertools.islice(schedule.upcoming(since), HISTORY_SCAN):
        nominal = due - schedule.offset
        if due > now:
            break
        if nominal in scheduled:
            continue
        entries.append(_gap_decision(nominal, blocked, pauses))
    entries.sort(key=lambda entry: entry["time"], reverse=True)
    return entries[:count]


def _run_decision(run: FlowRunRow) -> dict[str, Any]:
    nominal = run.scheduled_for or run.created
    if run.trigger in (RunCause.MANUAL, RunCause.RETRY, RunCause.BACKFILL):
        decision = str(run.trigger)
    elif run.trigger is RunCause.UPSTREAM and run.state_name != StateName.SKIPPED:
        decision = "after upstream"
    elif run.state_name == StateName.SKIPPED:
        decision = "skipped"
    elif run.state_name == StateName.MISSED:
        decision = "missed"
    else:
        decision = "fired"
    return {
        "time": iso(nominal),
        "decision": decision,
        "reason": run.state_message,
        "run_id": run.id,
        "state": run.state_name,
        "trigger": str(run.trigger) if run.trigger else None,
    }


def _gap_decision(
    nominal: datetime, blocked: Blocked | None, pauses: list[tuple[datetime, datetime, str]]
) -> dict[str, Any]:
    if blocked is not None:
        decision, reason = f"excluded ({blocked.kind})", blocked.reason
    else:
        spans = [why for start, end, why in pauses if start <= nominal < end]
        if spans:
            decision, reason = "excluded (paused)", spans[0]
        else:
            decision = "none"
            reason = "no run recorded: no daemon scheduled the deployment then"
    return {
        "time": iso(nominal),
        "decision": decision,
        "reason": reason,
        "run_id": None,
        "state": None,
        "trigger": None,
    }


def _pause_spans(
    entries: list[AuditEntry], row: DeploymentRow, now: datetime
) -> list[tuple[datetime, datetime, str]]:
    """The deployment's paused spans from its audit entries (a pause until its resume,
    or its own end), each with who paused it and why."""
    spans: list[tuple[datetime, datetime, str]] = []
    opened: tuple[datetime, str] | None = None
    for entry in sorted(entries, key=lambda each: (each.timestamp, each.id)):
        if entry.action == AuditAction.PAUSE and opened is None:
            why = f" ({entry.reason})" if entry.reason else ""
            opened = (entry.timestamp, f"paused by {entry.actor}{why}")
        elif entry.action == AuditAction.RESUME and opened is not None:
            spans.append((opened[0], entry.timestamp, opened[1]))
            opened = None
    if opened is not None:
        end = row.paused_until if row.paused and row.paused_until else now
        spans.append((opened[0], max(end, now) if row.paused else end, opened[1]))
    return spans
