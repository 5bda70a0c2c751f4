"""What the scheduler tracks and decides, and the rules it applies that need no store: the
deployments and runs it follows, the decisions it logs and the rows they create, the
overlap and catch-up policies, the fire times a downtime missed, and how a fire's runs are
grouped into transactions.
"""

from __future__ import annotations

import enum
import logging
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from gnomon.deployments import Catchup, Deployment, Overlap
from gnomon.states import StateName, StateType
from gnomon.store import Actor, Origin, RunCause

if TYPE_CHECKING:
    from gnomon.daemon._limits import RunLimits
    from gnomon.daemon._runsetup import RunSetup
    from gnomon.scheduling import Schedule, Trigger
    from gnomon.store.rows import NewFlowRun

log = logging.getLogger("gnomon.daemon")

# The audit log's actor for what the daemon does by itself: a reload by SIGHUP, a pause
# that ends at its time, a deployment pausing itself after failures.
DAEMON_ACTOR = Actor("gnomon-daemon", Origin.DAEMON)
# Catch-up after downtime looks at most this many missed fire times per deployment.
CATCHUP_SCAN_LIMIT = 10_000
# A tick writes a large fire's runs in several transactions (see `fire_chunks`): after the
# first, chunks of at least FIRE_CHUNK_MIN runs, about FIRE_CHUNKS of them in all.
FIRE_CHUNK_MIN = 8
FIRE_CHUNKS = 16


class Dispatcher(Protocol):
    """Where runs execute: the worker pool, or a stand-in in tests."""

    def idle_count(self) -> int: ...

    def capacity(self) -> int:
        """How many more runs ``submit`` would take now."""
        ...

    def submit(
        self,
        flow_run_id: str,
        timeout: float | None = None,
        limits: RunLimits | None = None,
        setup: RunSetup | None = None,
    ) -> bool: ...

    def cancel(self, flow_run_id: str, reason: str) -> bool: ...


@dataclass(slots=True)
class Slot:
    """A deployment as the scheduler tracks it between ticks."""

    deployment: Deployment
    trigger: Schedule
    offset: timedelta
    paused: bool
    last_fire: datetime | None
    # The schedule decides fires after this (registered, back in the config, resumed).
    fires_from: datetime | None = None
    # When a pause that ends by itself ends (None: paused until resumed, or not paused).
    paused_until: datetime | None = None
    # The end of the last pause that ended by itself: fires before it were paused, also
    # one that comes due after the pause ended (a jitter offset, a late tick).
    paused_before: datetime | None = None
    running: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)
    # Its backfills' runs, waiting or running: apart from ``running`` and ``queued``, which
    # the overlap policy counts; a backfill's concurrency is its own (``_backfills``).
    backfilling: set[str] = field(default_factory=set)


@dataclass(order=True, slots=True)
class Waiting:
    """A run waiting for a worker; waiting runs start oldest fire first, then in the order
    they were queued, a higher priority first (``rank`` is the deployment's priority
    negated); a backfill's after every other (its times are long past: oldest first, they
    would take every worker before the schedule's runs)."""

    backfill: bool
    rank: int
    nominal: datetime
    sequence: int
    flow_run_id: str = field(compare=False)
    deployment: str = field(compare=False)
    timeout: float | None = field(compare=False)
    offset: timedelta = field(compare=False, default=timedelta(0))
    limits: RunLimits | None = field(compare=False, default=None)
    trigger: RunCause | None = field(compare=False, default=None)
    generation: int = field(compare=False, default=1)
    setup: RunSetup | None = field(compare=False, default=None)
    pool: str | None = field(compare=False, default=None)


@dataclass(frozen=True, slots=True)
class DispatchedRun:
    """A run handed to the dispatcher, as the scheduler knows it: what the daemon reports
    about the run when it ends, without reading it back from the store."""

    flow_run_id: str
    deployment: str
    flow: str  # the flow's function name in the deployment's entrypoint
    scheduled_for: datetime  # the nominal fire time
    expected_start: datetime  # the nominal fire time plus the deployment's jitter offset
    trigger: RunCause | None = None  # what caused it (None: not known, as for old rows)
    generation: int = 1  # which run of its nominal time


class DecisionAction(enum.StrEnum):
    """What the scheduler did with a fire time (or a requested run)."""

    FIRED = "fired"  # a run was created and queued for a worker
    QUEUED = "queued"  # created, to start when the deployment's running run ends
    SKIPPED = "skipped"  # recorded Skipped: the overlap policy refused it
    MISSED = "missed"  # recorded Missed: too late (misfire_grace) or by the catch-up policy
    PAUSED = "paused"  # not run, no row: the deployment is paused
    DUPLICATE = "duplicate"  # a run for this fire time exists already
    # Not about a fire time: the deployment's pause until this time ended (no row; an
    # audit entry), and it paused itself after pause_after_failures failed runs.
    RESUMED = "resumed"
    AUTO_PAUSED = "auto_paused"


# Decisions that leave a run to start.
STARTING_ACTIONS = frozenset({DecisionAction.FIRED, DecisionAction.QUEUED})
# Decisions whose run row ended as it was created.
ENDED_ACTIONS = frozenset({DecisionAction.SKIPPED, DecisionAction.MISSED})


@dataclass(frozen=True, slots=True)
class Decision:
    """What the scheduler decided about one fire time (or a requested run), as logged;
    for a deployment that paused itself, its last failed run (``state``: how it ended)."""

    deployment: str
    nominal: datetime
    action: DecisionAction
    flow_run_id: str | None = None
    reason: str | None = None
    state: str | None = None


def fire_times_between(trigger: Trigger, after: datetime, until: datetime) -> list[datetime]:
    """Nominal fire times in (after, until], at most CATCHUP_SCAN_LIMIT of the newest."""
    times: list[datetime] = []
    current = trigger.next_fire(after)
    while current is not None and current <= until:
        times.append(current)
        if len(times) > CATCHUP_SCAN_LIMIT:
            del times[0]
        current = trigger.next_fire(current)
    return times


def overlap_refusal(slot: Slot) -> str | None:
    """Why the overlap policy refuses a new run of the deployment now; None if it may run."""
    deployment = slot.deployment
    active = len(slot.running) + len(slot.queued)
    overlap = deployment.overlap
    if active and overlap is Overlap.SKIP:
        return f"previous run still going ({_ids(slot)})"
    if overlap is Overlap.QUEUE and len(slot.queued) >= deployment.max_queued:
        return f"{len(slot.queued)} runs already queued (max_queued = {deployment.max_queued})"
    if overlap is Overlap.ALLOW and active >= deployment.max_concurrent:
        return f"{active} runs active (max_concurrent = {deployment.max_concurrent})"
    return None


def _ids(slot: Slot) -> str:
    return ", ".join(sorted(slot.running | slot.queued))


def milliseconds(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)


def log_decision(decision: Decision) -> None:
    log.info(
        "schedule decision: %s %s at %s%s",
        decision.deployment,
        decision.action,
        decision.nominal.isoformat(),
        f" ({decision.reason})" if decision.reason else "",
        extra={
            "decision": decision.action,
            "deployment": decision.deployment,
            "scheduled_for": decision.nominal.isoformat(),
            "flow_run_id": decision.flow_run_id,
            "reason": decision.reason,
        },
    )


def fire_chunks(
    fires: list[tuple[str, datetime]], first: int
) -> Iterator[list[tuple[str, datetime]]]:
    """``fires`` in the groups a tick writes, each in a transaction of its own.

    The first group is what the workers take at once (``first``, at least one), dispatched
    before the rest is written. The rest follow in chunks rather than one transaction:
    the workers' claims and final states wait for the write lock while the daemon inserts,
    and a fire's 50 runs took up to 17 ms to insert after a minute's idleness.
    """
    first = max(1, first)
    yield from ([fires[:first]] if fires else [])
    rest = fires[first:]
    size = max(FIRE_CHUNK_MIN, math.ceil(len(rest) / FIRE_CHUNKS))
    for start in range(0, len(rest), size):
        yield rest[start : start + size]


def run_row(
    slot: Slot,
    nominal: datetime,
    now: datetime,
    trigger: RunCause,
    daemon_id: str,
    state_type: StateType = StateType.PENDING,
    state_name: StateName = StateName.PENDING,
    message: str | None = None,
) -> NewFlowRun:
    """The run row a decision about ``slot``'s fire at ``nominal`` creates: with the
    deployment's parameters, and over them those of the spec the fire is of."""
    deployment = slot.deployment
    return {
        "id": uuid.uuid4().hex,
        "name": f"{deployment.name}@{nominal.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
        "flow_name": deployment.flow.rpartition(":")[2],
        "entrypoint": deployment.flow,
        "parameters": {**deployment.parameters, **slot.trigger.parameters_at(nominal)},
        "tags": list(deployment.tags),
        "state_type": state_type,
        "state_name": state_name,
        "state_message": message,
        "run_count": 0,
        "deployment_name": deployment.name,
        "scheduled_for": nominal,
        "expected_start_time": nominal + slot.offset,
        "trigger": trigger,
        "daemon_id": daemon_id,
        "created": now,
        "updated": now,
    }


def final_decision(
    slot: Slot,
    nominal: datetime,
    now: datetime,
    trigger: RunCause,
    daemon_id: str,
    state: StateName,
    reason: str,
) -> tuple[Decision, NewFlowRun]:
    """A fire that will not run, recorded as ended at once (state type CANCELLED): ``state``
    is Missed or Skipped, with its ``reason``."""
    row = run_row(slot, nominal, now, trigger, daemon_id, StateType.CANCELLED, state, reason)
    row["end_time"] = now
    action = DecisionAction.MISSED if state == StateName.MISSED else DecisionAction.SKIPPED
    return Decision(slot.deployment.name, nominal, action, row["id"], reason), row


def catchup_split(
    deployment: Deployment, due: list[datetime]
) -> tuple[list[datetime], list[datetime]]:
    """The fire times a downtime missed that the catch-up policy runs (oldest first), and
    those it records Missed."""
    policy = deployment.catchup
    if policy is Catchup.NONE:
        return [], due
    if policy is Catchup.LATEST:
        return due[-1:], due[:-1]
    # The newest max_catchup, run oldest first: `latest` is the case of one.
    limit = deployment.max_catchup
    return (due[-limit:], due[:-limit]) if limit > 0 else ([], due)
