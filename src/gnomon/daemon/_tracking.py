"""What the scheduler tracks and decides, and the rules it applies that need no store: the
deployments and runs it follows, the decisions it logs, the overlap policy, and the fire
times a downtime missed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from gnomon.deployments import Deployment, Overlap

if TYPE_CHECKING:
    from gnomon.scheduling import Trigger

log = logging.getLogger("gnomon.daemon")

# Catch-up after downtime looks at most this many missed fire times per deployment.
CATCHUP_SCAN_LIMIT = 10_000


class Dispatcher(Protocol):
    """Where runs execute: the worker pool, or a stand-in in tests."""

    def idle_count(self) -> int: ...

    def capacity(self) -> int:
        """How many more runs ``submit`` would take now."""
        ...

    def submit(self, flow_run_id: str, timeout: float | None = None) -> bool: ...

    def cancel(self, flow_run_id: str, reason: str) -> bool: ...


@dataclass(slots=True)
class Slot:
    """A deployment as the scheduler tracks it between ticks."""

    deployment: Deployment
    trigger: Trigger
    offset: timedelta
    paused: bool
    last_fire: datetime | None
    running: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)


@dataclass(order=True, slots=True)
class Waiting:
    """A run waiting for a worker; waiting runs start oldest fire first, then in the order
    they were queued."""

    nominal: datetime
    sequence: int
    flow_run_id: str = field(compare=False)
    deployment: str = field(compare=False)
    timeout: float | None = field(compare=False)
    offset: timedelta = field(compare=False, default=timedelta(0))


@dataclass(frozen=True, slots=True)
class DispatchedRun:
    """A run handed to the dispatcher, as the scheduler knows it: what the daemon reports
    about the run when it ends, without reading it back from the store."""

    flow_run_id: str
    deployment: str
    flow: str  # the flow's function name in the deployment's entrypoint
    scheduled_for: datetime  # the nominal fire time
    expected_start: datetime  # the nominal fire time plus the deployment's jitter offset


@dataclass(frozen=True, slots=True)
class Decision:
    """What the scheduler decided about one fire time (or a requested run), as logged."""

    deployment: str
    nominal: datetime
    action: str  # fired, queued, skipped, missed, paused, duplicate
    flow_run_id: str | None = None
    reason: str | None = None


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
