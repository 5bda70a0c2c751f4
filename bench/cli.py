"""Command-line latency for issue 4's targets: each command end to end, as an operator types
it, against a store holding 100,000 runs and 1,000,000 log lines; medians printed.

    python bench/cli.py [--repeat 11] [--runs 100000] [--logs 1000000] [--tree NAME=SRC ...]

Measures the wall time of the installed ``gnomon`` script (process start to exit) for
``gnomon pause NAME``, ``gnomon runs list``, ``gnomon runs list --deployment D --state
Failed``, ``gnomon logs``, ``gnomon logs --deployment D --level ERROR`` and ``gnomon logs
--run RUN``, plus ``gnomon --help`` as the floor (Python, click and the command table).
The store is seeded once, with SQLAlchemy Core bulk inserts, in a temporary GNOMON_HOME;
with GNOMON_BENCH_POSTGRES_URL (a server's URL) it is a new database on that server
instead, dropped at the end. ``--tree NAME=SRC`` (repeatable) runs each command under each
source tree (``PYTHONPATH=SRC``; the trees must read the same schema), interleaved, so
trees are compared in one run; without it, the tree that runs this script is measured.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server_databases import drop_database, new_database, server_url

GNOMON = Path(sys.executable).with_name("gnomon")
DEPLOYMENTS = [f"deployment-{i:03d}" for i in range(100)]
STATES = [("COMPLETED", "Completed")] * 17 + [("FAILED", "Failed"), ("CRASHED", "Crashed")]


def seed(home: Path, run_count: int, log_count: int) -> str:
    """Fill a store; returns the id of a run that has log lines."""
    os.environ["GNOMON_HOME"] = str(home)
    from gnomon.store import get_store
    from gnomon.store._schema import deployments, flow_runs, run_logs

    store = get_store()
    start = datetime.now(UTC) - timedelta(days=30)
    with store.engine.begin() as connection:
        connection.execute(
            deployments.insert(),
            [
                {
                    "name": name,
                    "flow": "flows.py:tick",
                    "schedule_kind": "interval",
                    "schedule": "1m",
                    "anchor": start,
                    "registered_at": start,
                    "updated": start,
                }
                for name in DEPLOYMENTS
            ],
        )
    rng = random.Random(4)
    run_ids: list[tuple[str, str]] = []
    for chunk in range(0, run_count, 10_000):
        rows = []
        for i in range(chunk, min(chunk + 10_000, run_count)):
            when = start + timedelta(seconds=i * 25)
            state_type, state_name = rng.choice(STATES)
            deployment = DEPLOYMENTS[i % len(DEPLOYMENTS)]
            run_id = uuid.uuid4().hex
            run_ids.append((run_id, deployment))
            rows.append(
                {
                    "id": run_id,
                    "name": f"{deployment}@{when:%Y-%m-%dT%H:%M:%SZ}",
                    "flow_name": "tick",
                    "entrypoint": "flows.py:tick",
                    "parameters": {},
                    "state_type": state_type,
                    "state_name": state_name,
                    "deployment_name": deployment,
                    "scheduled_for": when,
                    "trigger": "schedule",
                    "start_time": when,
                    "end_time": when + timedelta(seconds=1),
                    "created": when,
                    "updated": when,
                }
            )
        with store.engine.begin() as connection:
            connection.execute(flow_runs.insert(), rows)
    per_run = max(1, log_count // max(1, run_count))
    for chunk in range(0, log_count, 50_000):
        rows = []
        for i in range(chunk, min(chunk + 50_000, log_count)):
            run_id, deployment = run_ids[(i // per_run) % len(run_ids)]
            rows.append(
                {
                    "flow_run_id": run_id,
                    "timestamp": start + timedelta(seconds=i * 2.5),
                    "level": logging.ERROR if i % 97 == 0 else logging.INFO,
                    "logger": "gnomon.flow_runs",
                    "message": f"line {i} of a run of {deployment}",
                    "deployment_name": deployment,
                }
            )
        with store.engine.begin() as connection:
            connection.execute(run_logs.insert(), rows)
    with store.engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    store.close()
    return run_ids[-1][0]


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([str(GNOMON), *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def trees(specs: list[str]) -> dict[str, dict[str, str]]:
    """The environment changes of each tree to measure, by name (``NAME=SRC``)."""
    if not specs:
        return {"this tree": {}}
    chosen = {}
    for spec in specs:
        name, _, source = spec.partition("=")
        chosen[name] = {"PYTHONPATH": str(Path(source).resolve())}
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=SRC")
    options = parser.parse_args()

    server = server_url()
    database = new_database(server, f"gnomon_bench_cli_{os.getpid()}") if server else None
    try:
        with tempfile.TemporaryDirectory() as directory:
            measure(Path(directory) / "home", database, options)
    finally:
        if server and database:
            drop_database(server, database)


def measure(home: Path, database: str | None, options: argparse.Namespace) -> None:
    if database:
        os.environ["GNOMON_DATABASE_URL"] = database
    began = time.perf_counter()
    run_id = seed(home, options.runs, options.logs)
    print(
        f"seeded {options.runs} runs and {options.logs} log lines "
        f"in {time.perf_counter() - began:.1f} s ({'PostgreSQL' if database else 'SQLite'})"
    )
    env = {**os.environ, "GNOMON_HOME": str(home)}
    env.pop("GNOMON_CONFIG", None)
    # Bytecode cached, as an installed gnomon's is (the first repeat writes it).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    commands = {
        "gnomon --help (floor)": ["--help"],
        "gnomon pause NAME": ["pause", DEPLOYMENTS[7], "--reason", "bench"],
        "gnomon resume NAME": ["resume", DEPLOYMENTS[7]],
        "gnomon runs list": ["runs", "list"],
        "gnomon runs list --deployment D --state Failed": [
            "runs",
            "list",
            "--deployment",
            DEPLOYMENTS[3],
            "--state",
            "Failed",
        ],
        "gnomon logs": ["logs"],
        "gnomon logs --deployment D --level ERROR": [
            "logs",
            "--deployment",
            DEPLOYMENTS[3],
            "--level",
            "ERROR",
        ],
        "gnomon logs --run RUN": ["logs", "--run", run_id],
    }
    measured = trees(options.tree)
    samples: dict[tuple[str, str], list[float]] = {
        (name, tree): [] for name in commands for tree in measured
    }
    # Interleaved, so that load spikes hit every command and every tree.
    for _ in range(options.repeat):
        for name, args in commands.items():
            for tree, changes in measured.items():
                samples[name, tree].append(timed(args, {**env, **changes}))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}; python {platform.python_version()}"
    )
    print(f"{'command':<50} {'tree':<12} {'median':>8} {'min':>8} {'max':>8}")
    for (name, tree), values in samples.items():
        print(
            f"{name:<50} {tree:<12} {statistics.median(values) * 1000:>6.0f}ms "
            f"{min(values) * 1000:>6.0f}ms {max(values) * 1000:>6.0f}ms"
        )


if __name__ == "__main__":
    main()
