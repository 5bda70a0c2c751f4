"""The daemon's Prometheus metrics: what a scrape of /metrics shows after runs finish, fires
are missed and the pool changes, parsed back with prometheus-client's own text parser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from gnomon import __version__
from gnomon.daemon._metrics import DaemonMetrics


def summary(deployment: str, state: str, **fields: Any) -> dict[str, Any]:
    """A per-run summary as the daemon logs it."""
    return {
        "run_id": "3f2a1b2c" * 4,
        "deployment": deployment,
        "flow": "etl",
        "scheduled_for": "2024-05-01T02:30:00+00:00",
        "started_at": "2024-05-01T02:30:00.250000+00:00",
        "lateness_ms": 250,
        "duration_ms": 1500,
        "state": state,
        "attempt": 1,
        "worker_pid": 4242,
        "exit_code": None,
        "signal": None,
        "error_type": None,
        **fields,
    }


def scrape(metrics: DaemonMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a render, by name and sorted labels."""
    samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def idle_pool() -> DaemonMetrics:
    return DaemonMetrics(pending=lambda: 0, busy=lambda: 0, idle=lambda: 2)


def test_runs_are_counted_by_deployment_and_final_state() -> None:
    metrics = idle_pool()
    metrics.run_finished(summary("etl", "Completed"))
    metrics.run_finished(summary("etl", "Completed"))
    metrics.run_finished(summary("etl", "Failed", error_type="ValueError"))
    metrics.run_finished(summary("report", "TimedOut"))
    samples = scrape(metrics)
    assert samples["gnomon_runs_total", (("deployment", "etl"), ("state", "Completed"))] == 2
    assert samples["gnomon_runs_total", (("deployment", "etl"), ("state", "Failed"))] == 1
    assert samples["gnomon_runs_total", (("deployment", "report"), ("state", "TimedOut"))] == 1


def test_durations_and_lateness_fall_into_histogram_buckets() -> None:
    metrics = idle_pool()
    metrics.run_finished(summary("etl", "Completed", duration_ms=400, lateness_ms=3))
    metrics.run_finished(summary("etl", "Completed", duration_ms=90_000, lateness_ms=125_000))
    samples = scrape(metrics)
    etl = ("deployment", "etl")
    assert samples["gnomon_run_duration_seconds_count", (etl,)] == 2
    assert samples["gnomon_run_duration_seconds_sum", (etl,)] == 90.4
    assert samples["gnomon_run_duration_seconds_bucket", (etl, ("le", "0.5"))] == 1
    assert samples["gnomon_run_duration_seconds_bucket", (etl, ("le", "60.0"))] == 1
    assert samples["gnomon_run_duration_seconds_bucket", (etl, ("le", "120.0"))] == 2
    assert samples["gnomon_schedule_lateness_seconds_bucket", (("le", "0.005"),)] == 1
    assert samples["gnomon_schedule_lateness_seconds_bucket", (("le", "120.0"),)] == 1
    assert samples["gnomon_schedule_lateness_seconds_bucket", (("le", "300.0"),)] == 2
    assert samples["gnomon_schedule_lateness_seconds_sum", ()] == 125.003


def test_a_run_that_started_early_counts_as_on_time() -> None:
    """Jitter can start a run before its nominal time; lateness never goes negative."""
    metrics = idle_pool()
    metrics.run_finished(summary("etl", "Completed", lateness_ms=-40))
    samples = scrape(metrics)
    assert samples["gnomon_schedule_lateness_seconds_sum", ()] == 0
    assert samples["gnomon_schedule_lateness_seconds_count", ()] == 1


def test_last_success_is_when_the_last_completed_run_ended() -> None:
    metrics = idle_pool()
    metrics.seed_last_success(
        {"etl": datetime(2024, 4, 30, 2, 30, 5, tzinfo=UTC), "report": 1_700_000_000.0}
    )
    metrics.run_finished(summary("etl", "Completed"))  # ended 02:30:01.75 on May 1
    metrics.run_finished(summary("report", "Failed"))
    samples = scrape(metrics)
    ended = datetime(2024, 5, 1, 2, 30, 1, 750_000, tzinfo=UTC).timestamp()
    assert samples["gnomon_last_success_timestamp_seconds", (("deployment", "etl"),)] == ended
    report = ("deployment", "report")
    assert samples["gnomon_last_success_timestamp_seconds", (report,)] == 1_700_000_000


def test_a_success_without_a_start_time_is_stamped_with_the_clock() -> None:
    metrics = DaemonMetrics(
        pending=lambda: 0, busy=lambda: 0, idle=lambda: 0, clock=lambda: 1_714_000_000.0
    )
    metrics.run_finished(summary("etl", "Completed", started_at=None))
    samples = scrape(metrics)
    assert samples["gnomon_last_success_timestamp_seconds", (("deployment", "etl"),)] == (
        1_714_000_000
    )


def test_missed_fires_are_counted_per_deployment() -> None:
    metrics = idle_pool()
    metrics.fire_missed("etl")
    metrics.fire_missed("etl", count=3)
    assert scrape(metrics)["gnomon_missed_fires_total", (("deployment", "etl"),)] == 4


def test_pool_gauges_show_the_values_at_scrape_time() -> None:
    pool = {"pending": 0, "busy": 0, "idle": 4}
    deployments = {"active": 3, "paused": 0}
    metrics = DaemonMetrics(
        pending=lambda: pool["pending"],
        busy=lambda: pool["busy"],
        idle=lambda: pool["idle"],
        deployments=lambda: deployments,
    )
    first = scrape(metrics)
    pool.update(pending=7, busy=4, idle=0)
    deployments.update(active=2, paused=1)
    second = scrape(metrics)
    assert (first["gnomon_runs_pending", ()], first["gnomon_workers_idle", ()]) == (0, 4)
    assert second["gnomon_runs_pending", ()] == 7
    assert (second["gnomon_workers_busy", ()], second["gnomon_workers_idle", ()]) == (4, 0)
    assert second["gnomon_deployments", (("state", "active"),)] == 2
    assert second["gnomon_deployments", (("state", "paused"),)] == 1


def test_a_failing_gauge_callback_leaves_the_rest_of_the_scrape_intact() -> None:
    def broken() -> int:
        raise RuntimeError("pool lock poisoned")

    metrics = DaemonMetrics(pending=broken, busy=lambda: 1, idle=lambda: 1)
    samples = scrape(metrics)
    assert ("gnomon_runs_pending", ()) not in samples
    assert samples["gnomon_workers_busy", ()] == 1


def test_version_is_exported_and_registries_are_per_daemon() -> None:
    one, two = idle_pool(), idle_pool()
    one.run_finished(summary("etl", "Completed"))
    assert scrape(one)["gnomon_info", (("version", __version__),)] == 1
    assert not any(name == "gnomon_runs_total" for name, _ in scrape(two))
    assert one.content_type.startswith("text/plain; version=0.0.4")
