"""A backfill of 10,000 nominal times (issue 18), against a real `gnomon daemon` subprocess.

    python bench/backfill.py [--times 10000] [--workers 4] [--max-concurrent 4]

Three figures, on a fresh store (SQLite in a temporary GNOMON_HOME; PostgreSQL with
GNOMON_BENCH_POSTGRES_URL, see bench/server_databases.py):

- ask: what `gnomon backfill NAME --from --to` waits for, in process: the range planned
  (the schedule's --times nominal times) and the backfill recorded (BackfillOperations).
- create: the store's batches alone, in process, on another deployment of the same
  schedule: every run of --times times made by ``Store.create_backfill_runs`` in the
  daemon's batches of 500 times (runs per second of the inserts, their first states and
  the cursor's moves).
- run: the daemon (--workers workers) running the first backfill, --max-concurrent at
  once: seconds from the request to the backfill completed, runs started per second over
  that time, and the first run's start after the request.

The flow does nothing (``pass``): what is measured is the daemon's and the store's part.
Prints one JSON line, then the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from daemon_harness import DaemonProcess, Workspace, deadline_passed

READY_TIMEOUT = 120.0
BATCH = 500  # times per batch, as the daemon's runner (daemon/_backfills.py BATCH_TIMES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--times", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--max-concurrent", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800.0)
    options = parser.parse_args()
    workspace = Workspace()
    try:
        result = measure(workspace, options)
    finally:
        workspace.cleanup()
    print(json.dumps(result))
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )


def measure(workspace: Workspace, options: argparse.Namespace) -> dict[str, Any]:
    workspace.fresh_home()
    config = workspace.write_config(
        [("backfilled", "* * * * *"), ("created", "* * * * *")], options.workers
    )
    os.environ["GNOMON_HOME"] = str(workspace.home)
    if workspace.database_url:
        os.environ["GNOMON_DATABASE_URL"] = workspace.database_url
    from gnomon.control import BackfillOperations, Operations, iso
    from gnomon.store import Actor, Origin, get_store

    store = get_store()
    ops = Operations(store, Actor("bench", Origin.CLI))
    applied = ops.apply(config)
    assert applied.status == "applied", applied.detail
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=options.times + 10)
    end = start + timedelta(minutes=options.times - 1)
    backfills = BackfillOperations(ops)

    # create: the store's batches, on the other deployment.
    plan = backfills.plan("created", iso(start) or "", iso(end) or "", now)
    row = backfills.start(plan, max_concurrent=1000)  # the batches below set their own
    began = time.perf_counter()
    made = _create_all(store, row, plan.times)
    create_seconds = time.perf_counter() - began

    with DaemonProcess(workspace, config) as daemon:
        daemon.wait_ready(READY_TIMEOUT)
        # ask: the command line's part, for the deployment the daemon runs.
        asked = time.time()
        began = time.perf_counter()
        plan = backfills.plan("backfilled", iso(start) or "", iso(end) or "", now)
        row = backfills.start(plan, max_concurrent=options.max_concurrent)
        ask_seconds = time.perf_counter() - began
        os.kill(daemon.pid, 10)  # SIGUSR1: what the CLI's nudge sends
        deadline = time.time() + options.timeout
        while store.read_backfill(row.id).status == "running":  # type: ignore[union-attr]
            if deadline_passed(deadline):
                raise RuntimeError(f"the backfill did not complete in {options.timeout:g} s")
            time.sleep(0.2)
        done = store.read_backfill(row.id)
    runs = store.read_backfill_runs(row.id, options.times + 1)
    starts = sorted(r.start_time.timestamp() for r in runs if r.start_time is not None)
    ended = max(r.end_time.timestamp() for r in runs if r.end_time is not None)
    elapsed = ended - asked
    return {
        "times": options.times,
        "workers": options.workers,
        "max_concurrent": options.max_concurrent,
        "store": "postgresql" if workspace.database_url else "sqlite",
        "ask_seconds": round(ask_seconds, 3),
        "create_seconds": round(create_seconds, 3),
        "create_runs_per_second": round(made / create_seconds),
        "run_seconds": round(elapsed, 2),
        "runs_started_per_second": round(len(starts) / elapsed, 1),
        "first_start_seconds": round(starts[0] - asked, 3),
        "runs": len(runs),
        "completed": sum(r.state_name == "Completed" for r in runs),
        "status": str(done.status) if done else None,
    }


def _create_all(store: Any, backfill: Any, times: list[datetime]) -> int:
    """Every run of ``times`` made in the daemon's batches, as its runner makes them."""
    import uuid

    from gnomon.states import StateName, StateType

    def make(nominal: datetime, generation: int) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "id": uuid.uuid4().hex,
            "name": f"created@{nominal:%Y-%m-%dT%H:%M:%SZ}",
            "flow_name": "stamp",
            "entrypoint": "bench_flows.py:stamp",
            "parameters": {},
            "tags": [],
            "state_type": StateType.PENDING,
            "state_name": StateName.PENDING,
            "run_count": 0,
            "deployment_name": "created",
            "scheduled_for": nominal,
            "expected_start_time": now,
            "trigger": "backfill",
            "generation": generation,
            "backfill_id": backfill.id,
            "force": True,
            "created": now,
            "updated": now,
        }

    made = 0
    for first in range(0, len(times), BATCH):
        step = store.create_backfill_runs(backfill, times[first : first + BATCH], BATCH, make)
        made += len(step.created)
    return made


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    main()
