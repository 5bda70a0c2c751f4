"""Pruning under load (issue 18): a real daemon deletes 1,000,000 old runs while it runs
bench/daemon.py's `fifty` scenario (50 deployments on one cron), and fifty's lateness is
measured over the fires that happen while it prunes.

    python bench/prune.py [--runs 1000000] [--period 15] [--baseline]

The store (SQLite under a fresh GNOMON_HOME, or with GNOMON_BENCH_POSTGRES_URL a database
of its own on that server) is seeded before the daemon starts: --runs Completed runs of 50
other deployments that ended 100 days ago, each with its Completed state row, inserted with
executemany (COPY on PostgreSQL; the run_bins triggers count them as the daemon's writes
would). The daemon's config is fifty's plus `retain_runs = "90d"`; its pruner
starts at READY=1. Fires are counted from the first one after READY=1 until the old runs
are all gone (at least --min-fires), and lateness is flow body start minus nominal time,
as in bench/daemon.py. --baseline first runs the same fires on the same seeded store
without retain_runs, for comparison. Prints one JSON line per scenario and the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon import READY_TIMEOUT, fire_report, sleep_until, wait_for_bodies
from daemon_harness import GNOMON, DaemonProcess, Workspace

SEED_CHUNK = 50_000
OLD = 50  # old deployments whose runs are pruned


def old_rows(count: int) -> Any:
    """``count`` old runs of OLD deployments, ended 100 days ago a minute apart, in chunks:
    (runs, states) with the times as SQLite's text (PostgreSQL reads it as UTC)."""
    ended = datetime.now(UTC) - timedelta(days=100)
    for start in range(0, count, SEED_CHUNK):
        runs, states = [], []
        for i in range(start, min(count, start + SEED_CHUNK)):
            nominal = ended - timedelta(seconds=60 * (i // OLD))
            when = nominal.isoformat(" ", "microseconds")[:26]
            run_id = uuid.uuid4().hex
            runs.append((run_id, f"old-{i}", when, when, when, when, f"old-{i % OLD:02d}", when))
            states.append((run_id, when))
        yield runs, states


def seed(workspace: Workspace, count: int) -> float:
    """Insert ``count`` old runs (and a state each); seconds it took."""
    began = time.monotonic()
    if workspace.database_url:
        _seed_server(workspace.database_url, count)
    else:
        _seed_file(workspace.home / "gnomon.db", count)
    return time.monotonic() - began


RUN_COLUMNS = "id, name, start_time, end_time, created, updated, deployment_name, scheduled_for"


def _seed_server(url: str, count: int) -> None:
    """COPY, with the run_bins trigger counting each row as the daemon's inserts would."""
    import psycopg
    from sqlalchemy import make_url

    parsed = make_url(url)
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as connection:
        for runs, states in old_rows(count):
            with connection.cursor() as cursor:
                copy = (
                    f"COPY flow_runs ({RUN_COLUMNS}, flow_name, parameters, tags, state_type,"
                    " state_name, run_count, trigger, force) FROM STDIN"
                )
                with cursor.copy(copy) as writer:
                    for run in runs:
                        fixed = (
                            "stamp",
                            "{}",
                            "[]",
                            "COMPLETED",
                            "Completed",
                            1,
                            "schedule",
                            False,
                        )
                        writer.write_row((*run, *fixed))
                with cursor.copy(
                    "COPY run_states (flow_run_id, timestamp, type, name) FROM STDIN"
                ) as writer:
                    for run_id, when in states:
                        writer.write_row((run_id, when, "COMPLETED", "Completed"))
            connection.commit()


def _seed_file(database: Path, count: int) -> None:
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA synchronous = OFF")
    run_sql = (
        "INSERT INTO flow_runs (id, name, flow_name, parameters, tags, state_type, state_name,"
        " run_count, start_time, end_time, created, updated, deployment_name, scheduled_for,"
        " trigger, force) VALUES (?, ?, 'stamp', '{}', '[]', 'COMPLETED', 'Completed', 1,"
        " ?, ?, ?, ?, ?, ?, 'schedule', 0)"
    )
    state_sql = (
        "INSERT INTO run_states (flow_run_id, timestamp, type, name) VALUES (?, ?, 'COMPLETED',"
        " 'Completed')"
    )
    for runs, states in old_rows(count):
        connection.execute("BEGIN")
        connection.executemany(run_sql, runs)
        connection.executemany(state_sql, states)
        connection.execute("COMMIT")
    connection.close()


def query(workspace: Workspace, sql: str) -> list[tuple[Any, ...]]:
    """The rows ``sql`` reads from the workspace's store (its SQLite file or database)."""
    if workspace.database_url:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        engine = create_engine(workspace.database_url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.exec_driver_sql(sql)]
        finally:
            engine.dispose()
    database = workspace.home / "gnomon.db"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def old_runs(workspace: Workspace) -> int:
    sql = "SELECT count(*) FROM flow_runs WHERE substr(deployment_name, 1, 4) = 'old-'"
    return int(query(workspace, sql)[0][0])


def prune_audits(workspace: Workspace) -> list[dict[str, Any]]:
    sql = "SELECT timestamp, detail FROM audit_log WHERE action = 'prune' ORDER BY id"
    return [
        {"at": str(at), **(json.loads(detail) if isinstance(detail, str) else detail)}
        for at, detail in query(workspace, sql)
    ]


def write_config(workspace: Workspace, period: int, retain: bool) -> Path:
    cron = (
        "* * * * *"
        if period == 60
        else "* * * * * " + ",".join(str(second) for second in range(0, 60, period))
    )
    names = [f"every-minute-{i:02d}" for i in range(50)]
    config = workspace.write_config([(name, cron) for name in names], None)
    if retain:
        text = config.read_text().replace('api = "off"', 'api = "off"\nretain_runs = "90d"')
        config.write_text(text)
    return config


def measure(
    workspace: Workspace, period: int, retain: bool, min_fires: int, max_fires: int
) -> dict[str, Any]:
    """fifty's fires from READY=1 on: while the old runs last (pruning), or ``min_fires``."""
    names = [f"every-minute-{i:02d}" for i in range(50)]
    config = write_config(workspace, period, retain)
    before = old_runs(workspace)
    with DaemonProcess(workspace, config) as daemon:
        daemon.wait_ready(READY_TIMEOUT)
        assert daemon.ready_at is not None
        first = math.floor(daemon.ready_at / period) * period + period
        fires = 0
        pruned_at = None
        while fires < max_fires:
            fires += 1
            sleep_until(first + period * fires - period + 1)
            if retain and pruned_at is None and old_runs(workspace) == 0:
                pruned_at = time.time()
            if fires >= min_fires and (not retain or pruned_at is not None):
                break
        nominals = [first + period * k for k in range(fires)]
        expected = {(name, float(nominal)) for name in names for nominal in nominals}
        wait_for_bodies(workspace, expected, 60)
        time.sleep(1)
    runs = [run for run in workspace.runs() if run.nominal >= first]
    prunes = prune_audits(workspace)
    result = {
        "retain_runs": "90d" if retain else None,
        "old_runs_before": before,
        "old_runs_after": old_runs(workspace),
        "fires_per_deployment": fires,
        "prunes": prunes,
        **fire_report(runs, expected),
    }
    if prunes:
        # The pass ends with its audit row: the fires before it happened while it pruned.
        at = datetime.fromisoformat(prunes[-1]["at"])
        ended = (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
        during = {(name, nominal) for name, nominal in expected if nominal < ended}
        result["prune_seconds_after_ready"] = round(ended - daemon.ready_at, 1)
        result["fires_while_pruning"] = len(during) // len(names)
        result["while_pruning"] = fire_report(runs, during)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--period", type=int, default=15, help="seconds between fifty's fires")
    parser.add_argument("--min-fires", type=int, default=8)
    parser.add_argument("--max-fires", type=int, default=200)
    parser.add_argument("--baseline", action="store_true", help="also measure without pruning")
    args = parser.parse_args()
    workspace = Workspace()
    try:
        workspace.fresh_home()
        env = {**os.environ, "GNOMON_HOME": str(workspace.home)}
        if workspace.database_url:
            env["GNOMON_DATABASE_URL"] = workspace.database_url
        subprocess.run([sys.executable, str(GNOMON), "db", "upgrade"], env=env, check=True)
        seeded = seed(workspace, args.runs)
        print(f"seeded {args.runs:,} runs in {seeded:.1f} s", file=sys.stderr)
        results = {}
        if args.baseline:
            results["baseline"] = measure(
                workspace, args.period, False, args.min_fires, args.min_fires
            )
            print(json.dumps(results["baseline"]), file=sys.stderr)
        results["pruning"] = measure(workspace, args.period, True, args.min_fires, args.max_fires)
        for label, result in results.items():
            shown = {k: v for k, v in result.items() if k not in ("prunes", "while_pruning")}
            print(label, json.dumps(shown))
        print("while pruning", json.dumps(results["pruning"].get("while_pruning")))
        print("prunes", json.dumps(results["pruning"]["prunes"]))
        print(
            f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus,"
            f" python {platform.python_version()}, seeding {seeded:.1f} s,"
            f" store {'PostgreSQL' if workspace.database_url else 'SQLite'}"
        )
    finally:
        workspace.cleanup()


if __name__ == "__main__":
    main()
