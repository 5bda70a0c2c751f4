"""What the daemon reports about each finished run: the facts incident handling asks first,
from the scheduler (what was due when) and the worker (what happened), with no store read."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gnomon.daemon._pool import RunOutcome
    from gnomon.daemon._tracking import DispatchedRun


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What the daemon reports about each finished run: the facts incident handling asks
    first, from the scheduler (what was due when) and the worker (what happened), with no
    store read. One value, for whatever reports it (today the ``run_summary`` log line)."""

    flow_run_id: str
    deployment: str | None
    flow: str | None
    flow_run_name: str | None
    scheduled_for: datetime | None  # the nominal fire time
    generation: int | None  # which run of its nominal time: 1, then retries
    trigger: str | None  # what caused it: schedule, catchup, manual, retry, ...
    expected_start: datetime | None  # plus the deployment's jitter offset
    started_at: datetime | None  # the run's start_time: when its worker claimed it
    ended_at: datetime | None
    lateness_ms: int | None  # started_at - expected_start
    duration_ms: int  # from hand-over to the worker until the pool learnt the run ended
    state: str
    state_type: str
    attempt: int | None
    worker_pid: int | None
    exit_code: int | None
    signal: str | None
    error_type: str | None
    state_message: str | None

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (times as ISO 8601 strings)."""
        values = ((field.name, getattr(self, field.name)) for field in fields(self))
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in values
        }


def run_summary(outcome: RunOutcome, dispatched: DispatchedRun | None) -> RunSummary:
    """The summary of a finished run from its outcome and, if the scheduler dispatched it,
    what it was due for."""
    expected = dispatched.expected_start if dispatched else None
    started = outcome.start_time
    return RunSummary(
        flow_run_id=outcome.flow_run_id,
        deployment=dispatched.deployment if dispatched else None,
        flow=outcome.flow_name or (dispatched.flow if dispatched else None),
        flow_run_name=outcome.run_name,
        scheduled_for=dispatched.scheduled_for if dispatched else None,
        generation=dispatched.generation if dispatched else None,
        trigger=dispatched.trigger if dispatched else None,
        expected_start=expected,
        started_at=started,
        ended_at=outcome.end_time,
        lateness_ms=(
            round((started - expected).total_seconds() * 1000) if started and expected else None
        ),
        duration_ms=outcome.duration_ms,
        state=outcome.state_name,
        state_type=outcome.state_type,
        attempt=outcome.run_count,
        worker_pid=outcome.worker_pid,
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        error_type=outcome.error_type,
        state_message=outcome.message,
    )
