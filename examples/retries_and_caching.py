"""A small ETL flow showing retries and caching, then the states gnomon recorded for it.

Run it twice: the second run finds `extract` in the cache (state Cached) and does not
call the flaky source again.
"""

from __future__ import annotations

import random
from datetime import timedelta

from gnomon import flow, get_run_logger, task
from gnomon.cache_policies import INPUTS
from gnomon.tasks import exponential_backoff

_attempts: dict[str, int] = {}


@task(
    retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=0.2), retry_jitter_factor=0.5
)
def fetch(source: str) -> list[int]:
    """A flaky source: fails on its first attempt, every time the process starts."""
    _attempts[source] = _attempts.get(source, 0) + 1
    if _attempts[source] == 1:
        raise ConnectionError(f"{source}: connection reset (attempt {_attempts[source]})")
    rng = random.Random(source)
    return [rng.randint(1, 100) for _ in range(5)]


@task(cache_policy=INPUTS, cache_expiration=timedelta(hours=1))
def extract(source: str) -> list[int]:
    """Expensive extraction, cached for an hour per source across runs and processes."""
    return fetch(source)


@task
def transform(rows: list[int]) -> int:
    return sum(rows)


@flow(log_prints=True)
def etl(sources: list[str] = ["orders", "customers"]) -> int:  # noqa: B006 -- a parameter default, as in Prefect examples
    logger = get_run_logger()
    totals = transform.map(extract.map(sources))
    total = sum(totals.result())
    logger.info("loaded %d sources", len(sources))
    print(f"grand total: {total}")
    return total


def main() -> None:
    from gnomon.store import get_store

    state = etl(return_state=True)
    store = get_store()
    run = store.read_runs(limit=1)[0]
    print(f"\nflow run {run.name} ({run.id}): {state.name}, result {state.result()}")
    names = {task_run.id: task_run.name for task_run in store.read_task_runs(run.id)}
    states = [*store.read_states(run.id)]
    for task_run_id in names:
        states.extend(store.read_states(task_run_id=task_run_id))
    for row in sorted(states, key=lambda row: row.id):
        who = names.get(row.task_run_id, "flow") if row.task_run_id else "flow"
        message = f"  {row.message}" if row.message else ""
        print(f"  {row.timestamp:%H:%M:%S.%f}  {who:<14} {row.name:<14}{message}")


if __name__ == "__main__":
    main()
