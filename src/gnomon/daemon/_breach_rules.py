"""The rules of deadlines and freshness, apart from the store and the clock: given a
deployment's policies, what a run's times (or a deployment's last success) say about its
breaches, at a time given as an argument. Tests give literal dates; the deadline watch
(``_deadlines``) gives what it read and its clock's reading.

- ``late``: a run not started by its nominal time + ``late_after`` (counted from when it
  was due to start: with ``jitter``, its nominal time plus the deployment's offset). It
  clears when the run starts, or ends without starting (cancelled while it waited). A run
  that started late before anyone looked (a catch-up run of a daemon that was down) was
  late all the same: found and cleared at once.
- ``deadline_missed``: a run not finished by its nominal time + ``deadline``; it clears
  when the run finishes.
- ``too_fast``: a run that completed in less than ``min_duration`` (from its start to its
  end); one open per deployment, cleared by its next completed run that took long enough.
- ``stale``: no run completed within ``fresh_within``, counted from the newest completed
  run's end, or from when the schedule started deciding fires (registration, coming back
  into the config, a resume) if that is later: a deployment is not stale for the time it
  was paused, nor before it existed. Not while it is paused; it clears when a run completes.

Fires recorded Skipped or Missed were decided not to run (the overlap policy, or too late:
``missed`` tells of those): they are not late and have no deadline. Nor are the runs made
after their nominal time on purpose (``store.run_on_its_time``: a retry's later
generation); a breach is keyed by the nominal time, so one time has one of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gnomon.states import FINAL_TYPES, UNRUN_NAMES, StateType
from gnomon.store import BreachKind, run_on_its_time

if TYPE_CHECKING:
    from gnomon.daemon._summary import RunSummary
    from gnomon.deployments import Policies
    from gnomon.store.rows import WatchedRun

# A breach's identity in the store: (deployment, kind, nominal time).
BreachKey = tuple[str, BreachKind, datetime]

# Breaches of one run each (the others are the deployment's).
RUN_KINDS = frozenset({BreachKind.LATE, BreachKind.DEADLINE_MISSED})


def limit_of(policies: Policies, kind: BreachKind) -> timedelta | None:
    """The policy ``kind`` breaks, as ``policies`` set it (None: not watched)."""
    limit: timedelta | None = getattr(policies, kind.policy)
    return limit


def watches(policies: Policies) -> bool:
    """Whether ``policies`` set any deadline or freshness policy."""
    return any(limit_of(policies, kind) is not None for kind in BreachKind)


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the rules need to know of a deployment's run."""

    flow_run_id: str  # "" for a downstream run not created yet (_upstreams.waiting_runs)
    deployment: str
    nominal: datetime
    state_type: str
    state_name: str | None
    started: datetime | None
    ended: datetime | None
    # When it was due to start: the nominal time plus the deployment's jitter offset.
    due: datetime | None = None
    # False for a run made after its nominal time on purpose (``run_on_its_time``).
    on_its_time: bool = True
    trigger: str | None = None  # what caused it (RunCause), if known

    @classmethod
    def of_row(cls, row: WatchedRun) -> RunFacts:
        return cls(
            row.id,
            row.deployment_name or "",
            row.scheduled_for or row.created,
            row.state_type or StateType.SCHEDULED,
            row.state_name,
            row.start_time,
            row.end_time,
            row.expected_start_time,
            trigger=row.trigger,
        )

    @classmethod
    def of_summary(cls, summary: RunSummary) -> RunFacts | None:
        """A finished run as the daemon reported it; None for a run it did not schedule."""
        if summary.deployment is None or summary.scheduled_for is None:
            return None
        return cls(
            summary.flow_run_id,
            summary.deployment,
            summary.scheduled_for,
            summary.state_type,
            summary.state,
            summary.started_at,
            summary.ended_at,
            summary.expected_start,
            run_on_its_time(summary.trigger, summary.generation),
            summary.trigger,
        )

    @property
    def final(self) -> bool:
        return self.state_type in FINAL_TYPES

    @property
    def decided_not_to_run(self) -> bool:
        """Whether it is a fire recorded Skipped or Missed."""
        return self.state_name in UNRUN_NAMES

    @property
    def duration(self) -> timedelta | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


@dataclass(frozen=True, slots=True)
class Finding:
    """A breach the rules find: of what, since which nominal time, against which limit,
    and when it cleared if it has already (a run found late once it had started)."""

    deployment: str
    kind: BreachKind
    nominal: datetime
    limit: timedelta
    flow_run_id: str | None = None
    cleared: datetime | None = None

    @property
    def key(self) -> BreachKey:
        return (self.deployment, self.kind, self.nominal)


def run_findings(policies: Policies, run: RunFacts, now: datetime) -> list[Finding]:
    """The late and deadline breaches ``run`` has had by ``now`` under ``policies``."""
    if run.decided_not_to_run or not run.on_its_time:
        return []
    found = []
    late = policies.late_after
    if late is not None:
        due = (run.due or run.nominal) + late
        began = run.started or run.ended  # ended without starting: it waited until then
        if (began is None and not run.final and now >= due) or (began is not None and began > due):
            found.append(_finding(run, BreachKind.LATE, late, began))
    deadline = policies.deadline
    if deadline is not None:
        ended = run.ended
        if (ended is None and not run.final and now >= run.nominal + deadline) or (
            ended is not None and ended > run.nominal + deadline
        ):
            found.append(_finding(run, BreachKind.DEADLINE_MISSED, deadline, ended))
    return found


def _finding(
    run: RunFacts, kind: BreachKind, limit: timedelta, cleared: datetime | None
) -> Finding:
    # A downstream's run waiting for its upstreams has no row yet: its breach names none.
    run_id = run.flow_run_id or None
    return Finding(run.deployment, kind, run.nominal, limit, run_id, cleared)


def run_cleared_at(kind: BreachKind, run: RunFacts, now: datetime) -> datetime | None:
    """When an open breach of ``run`` ended: a late one when it started (or ended, or
    ``now`` for a finished run whose times are unknown), a deadline when it finished;
    None while it goes on."""
    if kind is BreachKind.LATE:
        began = run.started or run.ended
        return began if began is not None else (now if run.final else None)
    return (run.ended or now) if run.final else None


def too_fast(policies: Policies, run: RunFacts) -> bool | None:
    """Whether a completed run took less than ``min_duration``; None for a run that did not
    complete, or has no duration to measure, or a deployment without the policy."""
    duration = run.duration
    if policies.min_duration is None or run.state_type != StateType.COMPLETED or duration is None:
        return None
    return duration < policies.min_duration


def stale_time(
    window: timedelta, last_success: datetime | None, counting_from: datetime | None
) -> datetime | None:
    """When a deployment goes stale: ``window`` (its fresh_within) after the later of its
    last success and the time it started counting from; None if it knows neither."""
    since = max(filter(None, (last_success, counting_from)), default=None)
    return None if since is None else since + window
