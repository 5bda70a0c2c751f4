"""A tiny flow for the example config: checks a few "services" and logs what it saw."""

from __future__ import annotations

import random

from gnomon import flow, get_run_logger, task


@task(retries=2, retry_delay_seconds=1)
def probe(service: str) -> float:
    """Pretend to measure a service's latency; fails now and then, and retries."""
    if random.random() < 0.2:
        raise TimeoutError(f"{service} did not answer")
    return round(random.uniform(5, 80), 1)


@flow(log_prints=True)
def heartbeat(services: list[str]) -> dict[str, float]:
    latencies = dict(zip(services, probe.map(services).result(), strict=True))
    slowest = max(latencies, key=latencies.__getitem__)
    get_run_logger().info("slowest service: %s (%.1f ms)", slowest, latencies[slowest])
    return latencies
