"""A report flow for the example config: a cron deployment with parameters and a timeout."""

from __future__ import annotations

from datetime import UTC, datetime

from gnomon import flow, get_run_logger, task


@task
def collect(region: str) -> int:
    return sum(ord(character) for character in region) % 97


@task
def render(region: str, value: int) -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} {region}: {value} orders"


@flow
def regional_report(regions: list[str], title: str = "Orders") -> list[str]:
    lines = [render(region, collect(region)) for region in regions]
    logger = get_run_logger()
    logger.info("%s report", title)
    for line in lines:
        logger.info(line)
    return lines
