"""The daemon's Prometheus metrics, rendered for ``/metrics`` in the text format.

``DaemonMetrics`` keeps its own registry (not prometheus-client's global one), so two
daemons in one test process, or a reload, never collide. Counts and histograms are fed by
the daemon (``run_finished``, ``fire_missed``); the pool and queue gauges are read through
callbacks at scrape time, so they are never stale and the daemon never has to update them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gnomon import __version__
from gnomon.states import STATE_NAMES, StateType, is_failed

if TYPE_CHECKING:
    from gnomon.daemon._health import HealthStatus

log = logging.getLogger("gnomon.daemon.metrics")

_T = TypeVar("_T")

# Runs last from under a second (probes) to hours (nightly batches).
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
# Lateness is milliseconds when all is well and minutes when workers are saturated or the
# machine slept; the buckets cover both ends.
LATENESS_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    *(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)


class DaemonMetrics:
    """The daemon's metrics and their registry.

    ``pending``, ``busy`` and ``idle`` return the current number of runs waiting for a
    worker, busy workers and idle workers; ``deployments`` returns the number of
    deployments by state (``{"active": 3, "paused": 1}``). They are called at each render.
    ``clock`` gives the time of a success whose summary does not say when it ended.
    """

    # What generate_latest writes; newer clients' CONTENT_TYPE_LATEST names text format 1.0.0,
    # which generate_latest does not write unless asked to.
    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(
        self,
        *,
        pending: Callable[[], int],
        busy: Callable[[], int],
        idle: Callable[[], int],
        deployments: Callable[[], Mapping[str, int]] | None = None,
        health: Callable[[], HealthStatus] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock
        registry = self.registry
        self.runs = Counter(
            "gnomon_runs",
            "Finished flow runs, by deployment and final state.",
            ["deployment", "state"],
            registry=registry,
        )
        self.failed = Counter(
            "gnomon_failed_runs",
            "Finished flow runs that failed (Failed, TimedOut or Crashed), by deployment.",
            ["deployment"],
            registry=registry,
        )
        self.duration = Histogram(
            "gnomon_run_duration_seconds",
            "How long flow runs took, from hand-off to a worker to their final state.",
            ["deployment"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.lateness = Histogram(
            "gnomon_schedule_lateness_seconds",
            "How long after its scheduled time a run started.",
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.missed = Counter(
            "gnomon_missed_fires",
            "Fire times recorded Missed (beyond misfire_grace, or not caught up).",
            ["deployment"],
            registry=registry,
        )
        self.last_success = Gauge(
            "gnomon_last_success_timestamp_seconds",
            "When the deployment's last completed run ended (Unix time).",
            ["deployment"],
            registry=registry,
        )
        self.breaches = Counter(
            "gnomon_breaches",
            "Deadline and freshness breaches found (late, deadline_missed, too_fast, stale),"
            " by deployment and kind.",
            ["deployment", "kind"],
            registry=registry,
        )
        self.store_errors = Counter(
            "gnomon_store_errors",
            "Store transactions of the scheduling loop that failed (it retries them).",
            registry=registry,
        )
        Info("gnomon", "The running gnomon.", registry=registry).info({"version": __version__})
        registry.register(_LiveGauges(pending, busy, idle, deployments))
        if health is not None:
            registry.register(_HealthGauges(health))

    def run_finished(self, summary: Mapping[str, Any]) -> None:
        """Count a finished run from the daemon's per-run summary (``deployment``,
        ``state``, ``duration_ms``, ``lateness_ms``, ``started_at``; ``state_type`` if known).
        """
        deployment = str(summary.get("deployment"))
        state = str(summary.get("state"))
        state_type = summary.get("state_type") or STATE_NAMES.get(state)
        self.runs.labels(deployment, state).inc()
        if is_failed(state_type):
            self.failed.labels(deployment).inc()
        duration_ms = summary.get("duration_ms")
        if duration_ms is not None:
            self.duration.labels(deployment).observe(duration_ms / 1000)
        lateness_ms = summary.get("lateness_ms")
        if lateness_ms is not None:
            # Jitter can start a run a little before the nominal time it was scheduled for.
            self.lateness.observe(max(0.0, lateness_ms / 1000))
        if state_type == StateType.COMPLETED:
            self.last_success.labels(deployment).set(self._ended_at(summary))

    def _ended_at(self, summary: Mapping[str, Any]) -> float:
        started = summary.get("started_at")
        if isinstance(started, str):
            try:
                started = datetime.fromisoformat(started)
            except ValueError:
                started = None
        duration_ms = summary.get("duration_ms")
        if isinstance(started, datetime) and started.tzinfo is not None and duration_ms:
            return (started + timedelta(milliseconds=duration_ms)).timestamp()
        return self._clock()

    def fire_missed(self, deployment: str, count: int = 1) -> None:
        """Count ``count`` fire times of ``deployment`` recorded Missed."""
        self.missed.labels(deployment).inc(count)

    def breach_found(self, deployment: str, kind: str) -> None:
        """Count a deadline or freshness breach of ``deployment`` found."""
        self.breaches.labels(deployment, kind).inc()

    def watch_breaches(self, read: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        """Show ``gnomon_breaches_open``: ``read`` gives the open breaches by (deployment,
        kind) at each scrape, 0 for the policies watched that have none."""
        self.registry.register(_BreachGauge(read))

    def watch_pools(self, read: Callable[[], Mapping[str, PoolCounts]]) -> None:
        """Show each run pool's ``gnomon_pool_slots``, and the slots this daemon's runs
        hold and its runs waiting for one: ``read`` gives them by pool at each scrape."""
        self.registry.register(_PoolGauges(read))

    def seed_last_success(self, last_success: Mapping[str, datetime | float]) -> None:
        """Set the last success times read from the store at start-up (aware datetimes or
        Unix times), so a restart does not make every deployment look never successful."""
        for deployment, when in last_success.items():
            stamp = when.timestamp() if isinstance(when, datetime) else float(when)
            self.last_success.labels(deployment).set(stamp)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format (serve with ``content_type``)."""
        return generate_latest(self.registry)


class _LiveGauges(Collector):
    """Gauges read from the daemon at scrape time; one that fails is logged and left out."""

    def __init__(
        self,
        pending: Callable[[], int],
        busy: Callable[[], int],
        idle: Callable[[], int],
        deployments: Callable[[], Mapping[str, int]] | None,
    ) -> None:
        self._gauges = (
            ("gnomon_runs_pending", "Runs created and waiting for a worker.", pending),
            ("gnomon_workers_busy", "Worker processes running a flow run.", busy),
            ("gnomon_workers_idle", "Warm worker processes waiting for a run.", idle),
        )
        self._deployments = deployments

    def collect(self) -> Iterator[Metric]:
        for name, documentation, read in self._gauges:
            value = _read(name, read)
            if value is not None:
                yield GaugeMetricFamily(name, documentation, value=value)
        if self._deployments is not None:
            counts = _read("gnomon_deployments", self._deployments)
            if counts is not None:
                family = GaugeMetricFamily(
                    "gnomon_deployments", "Deployments by state.", labels=["state"]
                )
                for state, count in sorted(counts.items()):
                    family.add_metric([state], count)
                yield family


class _HealthGauges(Collector):
    """The daemon's health (see ``_health``) at scrape time."""

    def __init__(self, health: Callable[[], HealthStatus]) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        from gnomon.daemon._health import HealthState

        status = _read("gnomon_health", self._health)
        if status is None:
            return
        family = GaugeMetricFamily(
            "gnomon_health",
            "1 for the daemon's health state (ok, degraded, stuck).",
            labels=["state"],
        )
        for state in HealthState:
            family.add_metric([state.value], 1.0 if state is status.state else 0.0)
        yield family
        if status.last_tick_age is not None:
            yield GaugeMetricFamily(
                "gnomon_loop_last_tick_age_seconds",
                "Seconds since the scheduling loop last ticked.",
                value=status.last_tick_age,
            )


class _BreachGauge(Collector):
    """The open deadline and freshness breaches at scrape time (see ``_deadlines``)."""

    def __init__(self, read: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        counts = _read("gnomon_breaches_open", self._read)
        if counts is None:
            return
        family = GaugeMetricFamily(
            "gnomon_breaches_open",
            "Deadline and freshness breaches not cleared yet, by deployment and kind (0 for"
            " each policy a deployment sets).",
            labels=["deployment", "kind"],
        )
        for (deployment, kind), count in sorted(counts.items()):
            family.add_metric([deployment, kind], count)
        yield family


# A run pool's slots, the slots this daemon's runs hold, and its runs waiting for one.
PoolCounts = tuple[int, int, int]


class _PoolGauges(Collector):
    """The run pools at scrape time (see ``_pools``)."""

    _FAMILIES = (
        ("gnomon_pool_slots", "A run pool's slots ([[pools]])."),
        ("gnomon_pool_slots_held", "Slots of a run pool this daemon's runs hold."),
        ("gnomon_pool_runs_waiting", "This daemon's runs waiting for a slot of a run pool."),
    )

    def __init__(self, read: Callable[[], Mapping[str, PoolCounts]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        counts = _read("gnomon_pool_slots", self._read)
        if counts is None:
            return
        for index, (name, documentation) in enumerate(self._FAMILIES):
            family = GaugeMetricFamily(name, documentation, labels=["pool"])
            for pool, values in sorted(counts.items()):
                family.add_metric([pool], values[index])
            yield family


def _read(name: str, read: Callable[[], _T]) -> _T | None:
    try:
        return read()
    except Exception:  # a scrape must not fail because one reading did
        log.exception("metric %s could not be read", name, extra={"metric": name})
        return None
