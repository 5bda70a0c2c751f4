"""A store the size of issue 16's dashboard targets, on SQLite or PostgreSQL, built in minutes.

    python bench/dashboard_data.py --store sqlite:/work/benchdata/dash.sqlite
    python bench/dashboard_data.py --store postgresql+psycopg://postgres@127.0.0.1:5432/gnomon_bench_dash
    [--deployments 1000] [--runs 1000000] [--logs 10000000] [--history 200000]
    [--tasks-every 50] [--big-tasks 10000] [--audit 3000] [--seed 16]

What it holds (sizes from the flags; the defaults are the issue's):
- deployments registered the real way (a generated config and flows file beside the store,
  through ``Operations.apply``, so policies and parameter schemas are what a daemon stores):
  40% cron every minute, 30% every 5 minutes, 12% hourly, 8% daily, in seven time zones;
  10% intervals (2m to 1h); 1-3 tags each; 3% paused with a reason (``Operations.pause``).
- flow runs at their deployments' fire times, the newest of each deployment, so the whole
  store spans about 7 days (a deployment firing every minute keeps its last ~22 hours, a
  daily one its week): mostly Completed, some Failed, TimedOut, Crashed, Skipped, Missed,
  Cancelled, retries and manual runs; the runs still in progress Running, and one next fire
  for every twentieth deployment Scheduled. Parameters, start and end times, errors.
- run states (Scheduled, Pending, Running, final) for the newest ``--history`` runs (and
  the big run); task runs (3-12) for every ``--tasks-every``-th of those runs, with theirs;
- one run of deployment ``BIG_DEPLOYMENT`` with ``--big-tasks`` task runs, 5% of them
  retried and a few failed, two log lines per task (the run page's Gantt chart);
- ``--logs`` log lines in all (that run's included), spread over the runs, chatty
  deployments writing more, about 1% ERROR and 4% WARNING; ``--audit`` audit entries.

The schema is the store's own (opened once with ``gnomon.store.Store``, which migrates it);
then the rows go in through the real tables and indexes: on SQLite with ``executemany`` in
batches of 50,000, one transaction each; on PostgreSQL with ``COPY`` through psycopg, one
transaction a batch, then ``VACUUM ANALYZE`` (what autovacuum does after a bulk load).
SQLite is not ``ANALYZE``d: gnomon never runs it on its stores, so their plans are made
without statistics, and so are the measured ones. A PostgreSQL store is the database the
URL names, dropped and made anew (never ``test`` or ``postgres``); a SQLite file that
exists is refused unless ``--replace``. Prints how long each part took and the size.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dashboard_rows import (
    AUDIT_COLUMNS,
    FLOW_RUN_COLUMNS,
    LOG_COLUMNS,
    SPAN,
    STATE_COLUMNS,
    TASK_RUN_COLUMNS,
    Deployment,
    audit_rows,
    flow_run_rows,
    log_rows,
    make_deployments,
    make_runs,
    plan_fires,
    plan_tasks,
    state_rows,
)

BATCH = 50_000
FLOWS = """
import logging

from gnomon import flow, task

log = logging.getLogger("flows.jobs")


@task
def step(item: int) -> int:
    return item


@flow
def sync(region: str = "eu", full: bool = False) -> None:
    log.info("syncing %s", region)


@flow
def report(day: str = "today") -> str:
    return day


@flow
def warehouse(batches: int = 10000) -> None:
    for item in range(batches):
        step(item)
"""


def store_url(spec: str) -> str:
    """The SQLAlchemy URL of ``--store``: ``sqlite:PATH`` or a ``postgresql+psycopg://`` URL."""
    if spec.startswith("sqlite:") and not spec.startswith("sqlite://"):
        return f"sqlite:///{Path(spec.removeprefix('sqlite:')).resolve()}"
    if spec.startswith(("postgresql", "sqlite://")):
        return spec
    raise SystemExit(f"--store: give sqlite:PATH or a postgresql+psycopg:// URL, got {spec!r}")


def _fresh_database(url: str, replace: bool) -> None:
    from sqlalchemy import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        if path.exists() and not replace:
            raise SystemExit(f"{path} exists; give --replace to build it again")
        for each in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            each.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if parsed.database in (None, "", "test", "postgres", "template0", "template1"):
        raise SystemExit(f"name a database of the benchmark's own, not {parsed.database!r}")
    from server_databases import new_database

    new_database(
        parsed.set(database="postgres").render_as_string(hide_password=False), str(parsed.database)
    )


class Sink:
    """Rows into one database table by table, a transaction per batch."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import make_url

        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        if self.sqlite:
            import sqlite3

            self.connection: Any = sqlite3.connect(str(parsed.database), isolation_level=None)
            # The load only: a crash leaves a store to build again, nothing to recover.
            self.connection.execute("PRAGMA synchronous = OFF")
            self.connection.execute("PRAGMA cache_size = -1000000")
        else:
            import psycopg

            conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            self.connection = psycopg.connect(conninfo)

    def write(self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
        count = 0
        for batch in _batches(rows, BATCH):
            if self.sqlite:
                marks = ", ".join("?" for _ in columns)
                statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                self.connection.execute("BEGIN")
                self.connection.executemany(statement, [_sqlite_row(row) for row in batch])
                self.connection.execute("COMMIT")
            else:
                with self.connection.cursor() as cursor:
                    copy = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                    with cursor.copy(copy) as sink:
                        for row in batch:
                            sink.write_row(_pg_row(row))
                self.connection.commit()
            count += len(batch)
        return count

    def execute(self, statement: str, parameters: Sequence[Any] = ()) -> None:
        if self.sqlite:
            self.connection.execute(statement, parameters)
        else:
            self.connection.execute(statement.replace("?", "%s"), parameters)
            self.connection.commit()

    def finish(self) -> None:
        if self.sqlite:
            self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            self.connection.autocommit = True
            self.connection.execute("VACUUM ANALYZE")
        self.connection.close()


def _batches(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    from gnomon.store._codecs import utc_text

    return tuple(
        utc_text(value)
        if isinstance(value, datetime)
        else json.dumps(value)
        if isinstance(value, (dict, list))
        else value
        for value in row
    )


def _pg_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(json.dumps(value) if isinstance(value, (dict, list)) else value for value in row)


def register(deployments: list[Deployment], directory: Path, url: str, rng: random.Random) -> None:
    """Apply a config of them (with its flows file) as ``gnomon apply`` does; pause 3%."""
    from gnomon.control import Operations
    from gnomon.store import Actor, Store

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "flows.py").write_text(FLOWS)
    config = directory / "gnomon.toml"
    config.write_text("".join(textwrap.dedent(each.text) for each in deployments))
    store = Store(url)
    try:
        operations = Operations(store, Actor("bench", "cli"))
        outcome = operations.apply(config)
        if outcome.status != "applied":
            raise SystemExit(f"the generated config was not applied: {outcome.detail}")
        reasons = ["CRM migration this week", "upstream API down", "waiting for the new schema"]
        for each in rng.sample(deployments[1:], max(1, len(deployments) * 3 // 100)):
            each.paused = True
            operations.pause([each.name], rng.choice(reasons))
    finally:
        store.close()


def build(options: argparse.Namespace) -> None:
    url = store_url(options.store)
    rng = random.Random(options.seed)
    now = datetime.now(UTC)
    clock = Clock()
    _fresh_database(url, options.replace)
    deployments = make_deployments(options.deployments, rng)
    with tempfile.TemporaryDirectory() as scratch:
        where = options.config_dir or _config_dir(url) or scratch
        register(deployments, Path(where), url, rng)
    clock.lap(f"{len(deployments)} deployments applied (schema migrated)")
    plan_fires(deployments, options.runs, now)
    runs = make_runs(deployments, now, rng)
    history = min(options.history, len(runs))
    plan = plan_tasks(runs, history, options.tasks_every, options.big_tasks, rng)
    clock.lap(f"{len(runs)} runs and {len(plan.tasks)} task runs planned")
    sink = Sink(url)
    sink.write("flow_runs", FLOW_RUN_COLUMNS, flow_run_rows(runs, rng))
    clock.lap(f"{len(runs)} flow runs")
    sink.write("task_runs", TASK_RUN_COLUMNS, plan.tasks)
    with_states = runs[len(runs) - history :]
    if plan.big is not None and plan.big not in with_states:
        with_states.insert(0, plan.big)  # its timeline too, older than the rest
    states = sink.write(
        "run_states",
        STATE_COLUMNS,
        itertools.chain(state_rows(with_states), plan.states),
    )
    clock.lap(f"{len(plan.tasks)} task runs, {states} run states")
    logs = sink.write("run_logs", LOG_COLUMNS, log_rows(runs, options.logs, plan, rng))
    clock.lap(f"{logs} log lines")
    audits = sink.write(
        "audit_log", AUDIT_COLUMNS, audit_rows(options.audit, deployments, now, rng)
    )
    # Registered a week ago, as the runs say; the daemon's next fire from now on.
    sink.execute("UPDATE deployments SET registered_at = ?", [now - SPAN - timedelta(days=1)])
    sink.finish()
    clock.lap(
        f"{audits} audit entries, finished ({'checkpoint' if sink.sqlite else 'VACUUM ANALYZE'})"
    )
    print(f"built in {clock.total():.0f} s: {url}")
    print(f"size: {_size(url) / 2**30:.2f} GiB")


def _config_dir(url: str) -> str | None:
    """Beside a SQLite store (a daemon can be started on it); none for PostgreSQL."""
    from sqlalchemy import make_url

    parsed = make_url(url)
    return f"{parsed.database}.config" if parsed.get_backend_name() == "sqlite" else None


def _size(url: str) -> int:
    from sqlalchemy import create_engine, make_url, text

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return Path(str(parsed.database)).stat().st_size
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
            )
    finally:
        engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.began = self.last = time.perf_counter()

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        print(f"{now - self.last:7.1f} s  {what}", flush=True)
        self.last = now

    def total(self) -> float:
        return time.perf_counter() - self.began


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="sqlite:PATH or a postgresql+psycopg:// URL")
    parser.add_argument("--deployments", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--logs", type=int, default=10_000_000)
    parser.add_argument(
        "--history", type=int, default=200_000, help="newest runs with states and tasks"
    )
    parser.add_argument("--tasks-every", type=int, default=50)
    parser.add_argument("--big-tasks", type=int, default=10_000)
    parser.add_argument("--audit", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--config-dir", help="where the generated config goes (default: beside a SQLite store)"
    )
    parser.add_argument(
        "--replace", action="store_true", help="build a SQLite file that exists again"
    )
    options = parser.parse_args(argv)
    if url := store_url(options.store):
        target = (
            Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite") else Path("/")
        )
        free = shutil.disk_usage(target if target.exists() else Path.cwd()).free
        print(f"free disk: {free / 2**30:.0f} GiB", flush=True)
    build(options)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("GNOMON_LOG_FORMAT", "json")
    main()
