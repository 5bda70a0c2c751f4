"""The deadline watch: the daemon's loop finding deployments' breaches of ``late_after``,
``deadline``, ``min_duration`` and ``fresh_within`` (the rules are in ``_breach_rules``),
recording each in the store, then telling the ``[[notify]]`` targets once, and again when
it clears.

It reads the store, not the scheduler's memory, so it sees every run: one stuck Scheduled
or Pending past its late_after (waiting for a worker, or for a daemon), a manual run, a
run a dead daemon left. Every nominal time becomes a row when it is due (fired, queued,
skipped or missed; a paused deployment's fires are not due), so "no run was created" is
"created late": the catch-up after downtime or a store outage creates the runs, and those
found started past their late_after are late (found and cleared at once).

Cheap, so the loop stays on time: a check at most once a second (``CHECK_INTERVAL``), after
the tick, and none while no deployment has these policies; a check reads the runs not
finished yet whose nominal time is far enough back (an index on their state), the run of an
open breach once it leaves that set, and the deployment row of one about to go stale (its
resume time, see ``_freshness``), nothing else. Finished runs come from the pool's
summaries; the open breaches and the last successes are read once at start (and for a
deployment a reload gives ``fresh_within``). Its work grows with the runs not finished and
the breaches open, not with the deployments watched.

Told once: a breach is recorded (unique per deployment, kind and nominal time) before its
event is handed to the notifier and marked ``notified`` after; a clearing is handed over
before it is recorded. A daemon that restarts tells again only what it had not marked, so
only a daemon killed between handing an event over and recording it may tell it twice. An
open breach of a policy removed from the config (or of a deployment removed) is closed
without a message: nobody watches it any more.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gnomon.daemon._breach_rules import (
    RUN_KINDS,
    BreachKey,
    Finding,
    RunFacts,
    limit_of,
    run_cleared_at,
    run_findings,
    too_fast,
    watches,
)
from gnomon.daemon._freshness import Freshness
from gnomon.daemon._upstreams import ancestors_of, made_by_backfill, waiting_runs
from gnomon.scheduling import format_duration
from gnomon.states import StateType
from gnomon.store import BreachKind, RunCause

if TYPE_CHECKING:
    from gnomon.daemon._scheduler import Scheduler
    from gnomon.daemon._summary import RunSummary
    from gnomon.daemon._tracking import Slot
    from gnomon.deployments import Deployment
    from gnomon.store import ScheduleStore
    from gnomon.store.rows import BreachRow, WatchedRun

log = logging.getLogger("gnomon.daemon")

CHECK_INTERVAL = 1.0  # seconds between checks: a breach is found within about this


@dataclass(frozen=True, slots=True)
class BreachChange:
    """A breach found, or cleared: what the reporter tells and counts."""

    breach: BreachRow
    cleared: bool
    detail: str  # what happened, in words
    state: str | None = None  # the run's state then, for a breach of a run


class DeadlineWatch:
    """Finds, records and tells the breaches of the scheduler's deployments (see the
    module's docstring). ``tell`` hands a change to the reporter; ``poll`` asks the daemon
    to read the store at once (a run cancelled at its deadline)."""

    def __init__(
        self,
        store: ScheduleStore,
        scheduler: Scheduler,
        tell: Callable[[BreachChange], None],
        poll: Callable[[], None],
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self._tell = tell
        self._poll = poll
        self._watched: dict[str, Deployment] = {}
        self._horizon: timedelta | None = None  # the shortest late_after or deadline
        self._timed: frozenset[str] = frozenset()  # those with a late_after or deadline
        self._read: list[str] = []  # whose unfinished runs to read: those, their upstreams
        self._cancelling: set[str] = set()  # runs asked to cancel at their deadline
        # Watched downstreams without a schedule of their own: what is upstream of each,
        # and their jitter offsets (their runs not created yet are watched, see _runs).
        self._ancestors: dict[str, frozenset[str]] = {}
        self._offsets: dict[str, timedelta] = {}
        self._freshness = Freshness()
        self._open: dict[BreachKey, BreachRow] = {}
        self._of_deployment: dict[tuple[str, BreachKind], BreachKey] = {}  # too_fast, stale
        self._seen: set[BreachKey] = set()  # recorded, for runs still about
        self._unmarked: set[int] = set()  # told, not yet marked notified
        self._finished: list[RunFacts] = []
        # By downstream run about: whether a backfill's run caused it (``made_by_backfill``).
        self._backfilled: dict[str, bool] = {}
        self._lock = threading.Lock()  # the pool's threads add finished runs
        self._next_check = float("-inf")
        self._policies: dict[tuple[str, str], int] = {}  # (deployment, kind) watched: 0
        self._counts: dict[tuple[str, str], int] = {}
        self._counted = True  # the counts are those of the open breaches
        self._loaded = False

    # Set-up, from the loop's thread.

    def configure(self, now: datetime) -> None:
        """Watch the scheduler's deployments that have these policies (at start, and after
        a reload; the first time, with the open breaches the store has). Open breaches of
        policies no longer set, or of deployments gone, are closed without a message."""
        slots = self.scheduler.slots()
        self._watched = {
            name: slot.deployment for name, slot in slots.items() if watches(slot.deployment)
        }
        limits = {
            (name, kind): limit
            for name, deployment in self._watched.items()
            for kind in RUN_KINDS
            if (limit := limit_of(deployment, kind)) is not None
        }
        self._horizon = min(limits.values(), default=None)
        self._timed = frozenset(name for name, _ in limits)
        self._ancestors = {
            name: upstream for name, upstream in ancestors_of(slots).items() if name in self._timed
        }
        self._offsets = {name: slots[name].offset for name in self._ancestors}
        self._read = sorted(self._timed.union(*self._ancestors.values()))
        self._policies = {
            (name, kind.value): 0
            for name, deployment in self._watched.items()
            for kind in BreachKind
            if limit_of(deployment, kind) is not None
        }
        self._watch_freshness(slots)
        if not self._loaded:
            for row in self.store.read_open_breaches():
                self._opened(row)
            self._loaded = True
        for key, breach in list(self._open.items()):
            deployment = self._watched.get(breach.deployment_name)
            if deployment is None or limit_of(deployment, breach.kind) is None:
                self._clear(key, now, "no longer watched", notify=False)
            elif breach.kind is BreachKind.STALE:
                self._refreshed(breach.deployment_name)
        self._count()

    def _watch_freshness(self, slots: Mapping[str, Slot]) -> None:
        windows = {
            name: deployment.fresh_within
            for name, deployment in self._watched.items()
            if deployment.fresh_within is not None
        }
        new = [name for name in windows if not self._freshness.watches(name)]
        last = self.store.read_last_successes(new) if new else {}
        counting = {name: slots[name].fires_from for name in windows}
        self._freshness.watch(windows, counting, last)

    def run_finished(self, summary: RunSummary) -> None:
        """Note a run's end for the next check (called from the pool's threads)."""
        facts = RunFacts.of_summary(summary)
        if facts is not None and facts.deployment in self._watched:
            with self._lock:
                self._finished.append(facts)

    def open_counts(self) -> Mapping[tuple[str, str], int]:
        """Open breaches by (deployment, kind), with 0 for each policy watched: what
        ``/metrics`` shows (read from its thread)."""
        return self._counts

    # The loop.

    def due(self, monotonic: float) -> bool:
        """Whether a check is due: a second after the last, if anything is watched."""
        return monotonic >= self._next_check and bool(self._watched or self._open)

    def check(self, now: datetime, monotonic: float) -> None:
        """Find what breached and what cleared by ``now``, record it and tell it."""
        self._next_check = monotonic + CHECK_INTERVAL
        with self._lock:
            finished = list(self._finished)
        self._tell_untold()
        runs = self._runs(now, finished)
        for run in runs.values():
            deployment = self._watched.get(run.deployment)
            if deployment is not None:
                for finding in run_findings(deployment, run, now):
                    self._found(finding, run, deployment, now)
        self._clear_runs(runs, now)
        self._cancel_overdue(runs)
        for run in finished:
            self._completed(run, now)
        self._go_stale(now)
        self._forget_runs(runs)
        if self._unmarked:
            self.store.mark_breaches_notified(sorted(self._unmarked))
            self._unmarked.clear()
        with self._lock:  # only once they are all handled: a store failure leaves them
            del self._finished[: len(finished)]
        if not self._counted:
            self._count()

    def _runs(self, now: datetime, finished: list[RunFacts]) -> dict[str, RunFacts]:
        """The runs to judge: those not finished that may be late or past their deadline,
        those that finished since the last check, and those of open breaches."""
        runs: dict[str, RunFacts] = {}
        read: list[WatchedRun] = []
        if self._horizon is not None:
            before = now - self._horizon + timedelta(microseconds=1)
            read = self.store.read_watched_runs(before, self._read)
            unfinished = [row for row in read if not self._by_backfill(row.id, row.trigger)]
            for row in unfinished:
                if row.deployment_name in self._timed:
                    runs[row.id] = RunFacts.of_row(row)
            # Downstream runs whose upstream has not ended: no row yet, not started.
            for run in waiting_runs(self._ancestors, self._offsets, unfinished):
                runs[f"{run.deployment}@{run.nominal.isoformat()}"] = run
        for facts in finished:
            late_on_purpose = self._by_backfill(facts.flow_run_id, facts.trigger)
            runs[facts.flow_run_id] = (
                replace(facts, on_its_time=False) if late_on_purpose else facts
            )
        about = {row.id for row in read} | set(runs)
        self._backfilled = {key: self._backfilled[key] for key in about & set(self._backfilled)}
        for key, breach in list(self._open.items()):
            run_id = breach.flow_run_id
            if breach.kind in RUN_KINDS and run_id is None:
                self._created_since(breach, runs)
            elif breach.kind in RUN_KINDS and run_id is not None and run_id not in runs:
                found = self.store.read_watched_run(run_id)
                if found is None:  # deleted with its run: nothing left to clear
                    self._clear(key, now, "its run was deleted", notify=False)
                else:
                    runs[run_id] = RunFacts.of_row(found)
        return runs

    def _by_backfill(self, run_id: str, trigger: str | None) -> bool:
        """Whether the downstream run ``run_id`` was caused by a backfill's run (its upstream
        run's, or theirs): made after its nominal time on purpose, so not judged."""
        if trigger != RunCause.UPSTREAM or not run_id:
            return False
        if run_id not in self._backfilled:
            read = self.store.read_flow_run
            self._backfilled[run_id] = made_by_backfill(read(run_id), read)
        return self._backfilled[run_id]

    def _created_since(self, breach: BreachRow, runs: dict[str, RunFacts]) -> None:
        """The run of a breach found while it waited for its upstreams (no run then), once
        it exists (its upstreams ended): its start or end clears the breach."""
        name, nominal = breach.deployment_name, breach.nominal_time
        if f"{name}@{nominal.isoformat()}" in runs:
            return  # still waiting
        for row in self.store.read_runs_at([name], nominal):
            found = self.store.read_watched_run(row.id)
            if found is not None:
                runs.setdefault(found.id, RunFacts.of_row(found))

    # Runs.

    def _found(
        self, finding: Finding, run: RunFacts, deployment: Deployment, now: datetime
    ) -> None:
        """Record a breach of a run and tell it (and its clearing, if it has cleared)."""
        if finding.key in self._seen:
            return
        cancel = (
            finding.kind is BreachKind.DEADLINE_MISSED
            and finding.cleared is None
            and deployment.cancel_at_deadline
            and bool(run.flow_run_id)  # not a run that waits for its upstreams: none yet
        )
        breach = self._record(finding, now, _found_text(finding, run, cancel), run.state_name)
        if breach is None:
            return
        if cancel:
            self._cancel(finding.limit, run)
        if finding.cleared is not None:
            self._clear(finding.key, finding.cleared, _cleared_text(finding.kind, run), run)

    def _clear_runs(self, runs: Mapping[str, RunFacts], now: datetime) -> None:
        """Clear the open breaches of runs that started (late) or finished (deadline)."""
        by_time = {(run.deployment, run.nominal): run for run in runs.values() if run.flow_run_id}
        for key, breach in list(self._open.items()):
            if breach.flow_run_id is None:  # found while it waited for its upstreams
                run = by_time.get((breach.deployment_name, breach.nominal_time))
            else:
                run = runs.get(breach.flow_run_id)
            if breach.kind not in RUN_KINDS or run is None:
                continue
            cleared = run_cleared_at(breach.kind, run, now)
            if cleared is not None:
                self._clear(key, cleared, _cleared_text(breach.kind, run), run)

    def _cancel_overdue(self, runs: Mapping[str, RunFacts]) -> None:
        """cancel_at_deadline for the open deadline breaches whose runs still go on and
        that this daemon has not asked to cancel: those a daemon recorded before it was
        killed, or whose request the store refused (the next check asks again)."""
        for breach in list(self._open.values()):
            run = runs.get(breach.flow_run_id or "")
            deployment = self._watched.get(breach.deployment_name)
            if (
                breach.kind is BreachKind.DEADLINE_MISSED
                and run is not None
                and not run.final
                and run.flow_run_id not in self._cancelling
                and deployment is not None
                and deployment.cancel_at_deadline
            ):
                self._cancel(timedelta(seconds=breach.limit_seconds), run)

    def _completed(self, run: RunFacts, now: datetime) -> None:
        """A finished run: a success keeps its deployment fresh; a completed run may be
        too fast, or clear its deployment's too_fast."""
        deployment = self._watched.get(run.deployment)
        if deployment is None or run.state_type != StateType.COMPLETED:
            return
        if run.ended is not None and self._freshness.watches(run.deployment):
            self._freshness.succeeded(run.deployment, run.ended)
            self._refreshed(run.deployment)
        fast = too_fast(deployment, run)
        opened = self._of_deployment.get((run.deployment, BreachKind.TOO_FAST))
        if fast and opened is None and deployment.min_duration is not None:
            limit = deployment.min_duration
            finding = Finding(
                run.deployment, BreachKind.TOO_FAST, run.nominal, limit, run.flow_run_id
            )
            if finding.key not in self._seen:
                self._record(finding, now, _too_fast_text(run, limit), run.state_name)
        elif fast is False and opened is not None:
            detail = f"the {_when(run.nominal)} run completed in {_took(run)}"
            self._clear(opened, run.ended or now, detail, run)

    # Deployments.

    def _go_stale(self, now: datetime) -> None:
        """Open a stale breach for each deployment that no run kept fresh (see
        ``Freshness``: only those due are looked at)."""

        def paused(name: str) -> bool:
            slot = self.scheduler.deployment(name)
            return slot is None or slot.paused

        def counting_from(name: str) -> datetime | None:
            row = self.store.read_deployment(name)  # fires_from: its resume, if any since
            return row.fires_from if row is not None else None

        for name, since in self._freshness.stale(now, paused, counting_from):
            deployment = self._watched.get(name)
            window = deployment and deployment.fresh_within
            if not window or (name, BreachKind.STALE) in self._of_deployment:
                continue
            finding = Finding(name, BreachKind.STALE, since, window)
            if finding.key not in self._seen:
                last = self._freshness.last_success(name)
                what = f"the last at {_when(last)}" if last else "none yet"
                detail = f"no run completed within fresh_within = {_span(window)} ({what})"
                self._record(finding, now, detail, None)

    def _refreshed(self, name: str) -> None:
        """Clear the deployment's stale breach if a run completed since it went stale."""
        key = self._of_deployment.get((name, BreachKind.STALE))
        last = self._freshness.last_success(name)
        if key is not None and last is not None and last >= key[2]:
            self._clear(key, last, f"a run completed at {_when(last)}")

    # Recording and telling.

    def _record(
        self, finding: Finding, now: datetime, detail: str, state: str | None
    ) -> BreachRow | None:
        """Record a breach and tell it; None if the store had it (told before)."""
        breach = self.store.record_breach(
            {
                "deployment_name": finding.deployment,
                "kind": finding.kind,
                "flow_run_id": finding.flow_run_id,
                "nominal_time": finding.nominal,
                "limit_seconds": finding.limit.total_seconds(),
                "detected_at": now,
                "notified": False,
            }
        )
        self._seen.add(finding.key)
        if breach is None:
            return None
        self._opened(_with(breach, notified=True))  # told just below
        log.warning(
            "deadline breach: %s %s: %s",
            finding.deployment,
            finding.kind.value,
            detail,
            extra=_fields(breach, "breach_found"),
        )
        self._tell(BreachChange(breach, False, detail, state))
        self._unmarked.add(breach.id)
        return breach

    def _opened(self, breach: BreachRow) -> None:
        key = _key(breach)
        self._open[key] = breach
        self._seen.add(key)
        self._counted = False
        if breach.kind not in RUN_KINDS:
            self._of_deployment[(breach.deployment_name, breach.kind)] = key

    def _clear(
        self,
        key: BreachKey,
        at: datetime,
        detail: str,
        run: RunFacts | None = None,
        *,
        notify: bool = True,
    ) -> None:
        """Tell that an open breach ended (unless ``notify`` is False), then record it."""
        breach = self._open[key]
        if notify:
            cleared = _with(breach, cleared_at=at)
            self._tell(BreachChange(cleared, True, detail, run.state_name if run else None))
        self.store.clear_breach(breach.id, at)
        del self._open[key]
        self._counted = False
        if self._of_deployment.get((breach.deployment_name, breach.kind)) == key:
            del self._of_deployment[(breach.deployment_name, breach.kind)]
        log.info(
            "deadline breach cleared: %s %s: %s",
            breach.deployment_name,
            breach.kind.value,
            detail,
            extra=_fields(breach, "breach_cleared"),
        )

    def _tell_untold(self) -> None:
        """Tell the open breaches recorded but not marked told (a daemon stopped between)."""
        for key, breach in list(self._open.items()):
            if not breach.notified:
                detail = f"found at {_when(breach.detected_at)}, before the daemon restarted"
                self._tell(BreachChange(breach, False, detail))
                self._unmarked.add(breach.id)
                self._open[key] = _with(breach, notified=True)

    def _cancel(self, limit: timedelta, run: RunFacts) -> None:
        """cancel_at_deadline: cancel the run as ``gnomon runs cancel`` does (audited)."""
        from gnomon.daemon._reload import DAEMON_ACTOR

        reason = (
            f"not finished {_span(limit)} after its nominal time {_when(run.nominal)}"
            " (cancel_at_deadline)"
        )
        asked = self.store.request_cancel(run.flow_run_id, DAEMON_ACTOR, reason)
        self._cancelling.add(run.flow_run_id)  # only once the store took the request
        if asked is not None:
            self._poll()  # the daemon's poll stops its worker, or drops it from the queue

    def _forget_runs(self, runs: Mapping[str, RunFacts]) -> None:
        """Keep the keys of runs' breaches only while their runs may come up again."""
        about = {(run.deployment, run.nominal) for run in runs.values()}
        self._cancelling &= {run.flow_run_id for run in runs.values() if not run.final}
        self._seen = {
            key
            for key in self._seen
            if key[1] not in RUN_KINDS or key in self._open or (key[0], key[2]) in about
        }

    def _count(self) -> None:
        counts = dict(self._policies)
        for breach in self._open.values():
            key = (breach.deployment_name, breach.kind.value)
            counts[key] = counts.get(key, 0) + 1
        self._counts = counts  # replaced whole: /metrics reads it from another thread
        self._counted = True


def _key(breach: BreachRow) -> BreachKey:
    return (breach.deployment_name, breach.kind, breach.nominal_time)


def _with(breach: BreachRow, **changes: object) -> BreachRow:
    """``breach`` with some fields changed."""
    return type(breach)(**{**breach.as_dict(), **changes})


def _fields(breach: BreachRow, kind: str) -> dict[str, object]:
    return {
        "event_kind": kind,
        "deployment": breach.deployment_name,
        "flow_run_id": breach.flow_run_id,
        "breach": breach.kind.value,
        "nominal_time": breach.nominal_time.isoformat(),
    }


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _span(delta: timedelta) -> str:
    return format_duration(delta, units=2)


def _took(run: RunFacts) -> str:
    return _span(run.duration) if run.duration is not None else "an unknown time"


def _found_text(finding: Finding, run: RunFacts, cancel: bool) -> str:
    nominal = _when(run.nominal)
    waiting = "" if run.flow_run_id else " (it waits for its upstreams' runs to end)"
    if finding.kind is BreachKind.LATE:
        return (
            f"the {nominal} run did not start within late_after = {_span(finding.limit)}" + waiting
        )
    text = f"the {nominal} run did not finish within deadline = {_span(finding.limit)}"
    return text + waiting + ("; cancelling it (cancel_at_deadline)" if cancel else "")


def _cleared_text(kind: BreachKind, run: RunFacts) -> str:
    nominal = _when(run.nominal)
    if kind is BreachKind.LATE:
        if run.started is None:
            return f"the {nominal} run ended {run.state_name} without starting"
        return f"the {nominal} run started, {_span(run.started - run.nominal)} after its time"
    if run.ended is None:
        return f"the {nominal} run ended {run.state_name}"
    return (
        f"the {nominal} run ended {run.state_name}, {_span(run.ended - run.nominal)} after its time"
    )


def _too_fast_text(run: RunFacts, limit: timedelta) -> str:
    took = _took(run)
    return f"the {_when(run.nominal)} run completed in {took}, under min_duration = {_span(limit)}"
