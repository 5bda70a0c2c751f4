"""Reporting what the daemon did: the per-run summary line, Prometheus metrics, webhook
notifications (of runs, and of deadline and freshness breaches), and the daemon's own log
lines in the store (for ``gnomon logs``).

Everything here is fed from values the scheduler and the pool already hold (a finished
run's ``RunSummary``, the decisions of a tick); nothing reads the store per run, and
notifications are delivered on their own threads, so reporting never delays scheduling.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from gnomon._secrets import mask
from gnomon.daemon._tracking import DecisionAction
from gnomon.states import FINAL_TYPES, StateType

if TYPE_CHECKING:
    from gnomon.daemon._deadlines import BreachChange
    from gnomon.daemon._health import HealthStatus
    from gnomon.daemon._metrics import DaemonMetrics
    from gnomon.daemon._notify import Notifier
    from gnomon.daemon._pool import WorkerPool
    from gnomon.daemon._scheduler import Scheduler
    from gnomon.daemon._summary import RunSummary
    from gnomon.daemon._tracking import Decision
    from gnomon.deployments import GnomonConfig
    from gnomon.store import RunStore, ScheduleStore

log = logging.getLogger("gnomon.daemon")


class RunReporter:
    """Turns finished runs and schedule decisions into log lines, metrics and notifications."""

    def __init__(
        self,
        store: ScheduleStore,
        config: GnomonConfig,
        scheduler: Scheduler,
        pool: WorkerPool,
        health: Callable[[], HealthStatus] | None = None,
    ) -> None:
        from gnomon.daemon._metrics import DaemonMetrics

        self.scheduler = scheduler
        self.metrics: DaemonMetrics = DaemonMetrics(
            pending=scheduler.waiting_count,
            busy=pool.busy_count,
            idle=pool.idle_count,
            deployments=self._deployment_counts,
            health=health,
        )
        outcomes = store.read_last_outcomes()
        # The deployment's previous finished run's state type: a completed run after a
        # failed one is a recovery worth telling.
        self._previous: dict[str, str] = {
            name: state for name, (state, _) in outcomes.items() if state
        }
        self.metrics.seed_last_success(
            {name: ended for name, (_, ended) in outcomes.items() if ended is not None}
        )
        self.notifier: Notifier | None = None
        self._api_url: str | None = None
        self.configure(config)

    def configure(self, config: GnomonConfig) -> None:
        """Use the config's notification targets (at start and after a reload)."""
        from gnomon.daemon._notify import Notifier

        if self.notifier is not None:
            self.notifier.close(timeout=5)
        self._public_url = config.daemon.public_url
        self.notifier = (
            Notifier(config.notify, public_url=self.public_url) if config.notify else None
        )

    @property
    def public_url(self) -> str | None:
        """Where notifications link to: ``[daemon] public_url``, else the API's address."""
        return self._public_url or self._api_url

    def link_to_api(self, api_url: str | None) -> None:
        """The API now answers at ``api_url``: links point there unless ``public_url`` is set."""
        self._api_url = api_url
        if self.notifier is not None:
            self.notifier.public_url = self.public_url

    def run_finished(self, summary: RunSummary) -> None:
        """Log the run's summary line, count it, and notify about it if it calls for it."""
        from gnomon.daemon._notify import events_for_summary

        values = summary.as_dict()
        log.log(
            summary_level(summary.state_type),
            "run finished: %s %s",
            summary.deployment,
            summary.state,
            extra={"event_kind": "run_summary", "deployment": summary.deployment, **values},
        )
        if summary.deployment is None:
            return
        self.metrics.run_finished(values)
        if self.notifier is not None:
            event = {
                **values,
                "run_id": summary.flow_run_id,
                "error_message": summary.state_message,
                "tags": self._tags(summary.deployment),
            }
            for notification in events_for_summary(event, self._previous.get(summary.deployment)):
                self.notifier.publish(notification)
        if summary.state_type in FINAL_TYPES:  # not a run suspended: it has not ended
            self._previous[summary.deployment] = summary.state_type

    def decided(self, decisions: Iterable[Decision]) -> None:
        """Count and notify the fire times a tick recorded Missed, and notify the
        deployments that paused themselves after failures."""
        from gnomon.daemon._notify import auto_paused_event, missed_event

        for decision in decisions:
            if decision.action == DecisionAction.AUTO_PAUSED and self.notifier is not None:
                self.notifier.publish(
                    auto_paused_event(
                        decision.deployment,
                        decision.reason or "paused after failures",
                        self._tags(decision.deployment),
                        run_id=decision.flow_run_id,
                        state=decision.state,
                        scheduled_for=decision.nominal,
                    )
                )
            if decision.action != DecisionAction.MISSED:
                continue
            self.metrics.fire_missed(decision.deployment)
            if self.notifier is not None:
                self.notifier.publish(
                    missed_event(
                        decision.deployment,
                        decision.nominal,
                        self._tags(decision.deployment),
                        run_id=decision.flow_run_id,
                        reason=decision.reason,
                    )
                )

    def breach_changed(self, change: BreachChange) -> None:
        """Count a deadline or freshness breach found, and notify it (or its clearing)."""
        from gnomon.daemon._notify import breach_event

        breach = change.breach
        if not change.cleared:
            self.metrics.breach_found(breach.deployment_name, breach.kind.value)
        if self.notifier is not None:
            tags = self._tags(breach.deployment_name)
            self.notifier.publish(
                breach_event(breach, change.cleared, change.detail, change.state, tags)
            )

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close(timeout=10)

    def _tags(self, deployment: str) -> list[str]:
        slot = self.scheduler.deployment(deployment)
        return list(slot.deployment.tags) if slot is not None else []

    def _deployment_counts(self) -> dict[str, int]:
        slots = self.scheduler.slots().values()
        paused = sum(slot.paused for slot in slots)
        return {"active": len(slots) - paused, "paused": paused}


# The run summaries that are failures: Failed and TimedOut (both FAILED states) and Crashed.
_FAILED_TYPES = frozenset({StateType.FAILED, StateType.CRASHED})


def summary_level(state_type: str) -> int:
    """The level of a run's summary line: ERROR for a run that failed, timed out or
    crashed, so ``gnomon logs --level WARNING`` (or ERROR) and journald's priority
    (``journalctl -p err``) show them; INFO for the rest (Cancelled is an operator's
    doing, not a failure)."""
    return logging.ERROR if state_type in _FAILED_TYPES else logging.INFO


class StoreLogHandler(logging.Handler):
    """Copies the daemon's own log records (decisions, state changes, summaries) into the
    store's run logs, so ``gnomon logs`` shows them beside the runs' lines: with the run id
    and deployment when the record names them. Never raises into the daemon."""

    def __init__(self, store: RunStore, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.store = store
        self._failed = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            extra = _record_extra(record)
            deployment = extra.get("deployment")
            self.store.add_log(
                {
                    "flow_run_id": extra.get("flow_run_id"),
                    "task_run_id": None,
                    "timestamp": _timestamp(record),
                    "level": record.levelno,
                    "logger": record.name,
                    "message": record.getMessage(),
                    "extra": mask(extra),
                    "deployment_name": deployment if isinstance(deployment, str) else None,
                }
            )
        except Exception:
            if not self._failed:  # once: the store may be what is failing
                self._failed = True
                self.handleError(record)


def _record_extra(record: logging.LogRecord) -> dict[str, Any]:
    from gnomon.flows import json_safe, record_extra

    return {key: json_safe(value) for key, value in record_extra(record).items()}


def _timestamp(record: logging.LogRecord) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(record.created, UTC)
