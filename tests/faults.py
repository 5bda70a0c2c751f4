"""What the fault tests check after every fault: the invariants operators rely on, read
straight from the SQLite file (no gnomon code in between)."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

FINAL_TYPES = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")


# A store as these checks read it: a SQLite file, or a PostgreSQL database's URL.
Database = Path | str


def location(store) -> Database:  # type: ignore[no-untyped-def]
    """What the checks below read for ``store``: its SQLite file, else its URL."""
    from gnomon.store import sqlite_path

    return sqlite_path(store.url) or store.url


def read_rows(database: Database, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple]:
    """Rows of ``sql`` (``?`` placeholders) read over a connection of the checker's own."""
    if isinstance(database, str):
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        engine = create_engine(database, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                statement = sql.replace("?", "%s")
                return [tuple(row) for row in connection.exec_driver_sql(statement, parameters)]
        finally:
            engine.dispose()
    assert database.is_file(), f"{database} does not exist"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=rw", uri=True)) as db:
        return db.execute(sql, parameters).fetchall()


CHECK = """
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=rw", uri=True)
print("; ".join(row[0] for row in db.execute("PRAGMA integrity_check")))
"""


def integrity(database: Database) -> str:
    """``PRAGMA integrity_check``'s verdict: "ok" for a sound database.

    Checked in a process of its own: SQLite shares its locks and WAL index per file within
    a process, so a test's own connections to a file deleted or replaced under it would
    stand in the way (a "disk I/O error"), as they would for no operator.

    PostgreSQL has no such check without extensions; there every table is read in full
    (a sequential scan reads, and checksums, every page), and "ok" means that succeeded.
    """
    if isinstance(database, str):
        for table in ("flow_runs", "task_runs", "run_states", "run_logs", "deployments"):
            read_rows(database, f"SELECT count(*) FROM {table}")
        return "ok"
    assert database.is_file(), f"{database} does not exist"
    check = subprocess.run(
        [sys.executable, "-c", CHECK, str(database)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    return check.stdout.strip()


def run_ids(database: Database) -> set[str]:
    return {row[0] for row in read_rows(database, "SELECT id FROM flow_runs")}


def final_states(database: Database, flow_run_id: str) -> list[str]:
    """The run's own final states (names) since it last went back to AwaitingRetry: a
    deployment's retry reopens a finished run on purpose."""
    rows = read_rows(
        database,
        "SELECT type, name FROM run_states WHERE flow_run_id = ? AND task_run_id IS NULL"
        " ORDER BY id",
        (flow_run_id,),
    )
    finals: list[str] = []
    for state_type, name in rows:
        if name == "AwaitingRetry":
            finals = []
        elif state_type in FINAL_TYPES:
            finals.append(name)
    return finals


def assert_one_final_state_per_run(database: Database) -> None:
    """No run has two final states, and a finished run's row shows the one it has."""
    for run_id, state_type, name in read_rows(
        database, "SELECT id, state_type, state_name FROM flow_runs"
    ):
        finals = final_states(database, run_id)
        assert len(finals) <= 1, f"run {run_id} has final states {finals}"
        if state_type in FINAL_TYPES:
            assert finals == [name], f"run {run_id} is {name} with final states {finals}"


def assert_nothing_left_running(database: Database) -> None:
    """Nothing stays Running, Pending or Cancelling once the daemon is gone (runs it never
    started go back to Scheduled for the next daemon: docs/design.md)."""
    left = read_rows(
        database,
        "SELECT id, state_name FROM flow_runs"
        " WHERE state_type IN ('RUNNING', 'PENDING', 'CANCELLING')",
    )
    assert not left, f"runs left unsettled by a daemon that is gone: {left[:5]}"


def fire_times(database: Database, deployment: str) -> list[datetime]:
    """The nominal fire times of ``deployment``'s scheduled runs (Skipped and Missed
    included), oldest first."""
    rows = read_rows(
        database,
        "SELECT scheduled_for FROM flow_runs WHERE deployment_name = ?"
        " AND trigger IN ('schedule', 'catchup') ORDER BY scheduled_for",
        (deployment,),
    )
    return [
        value.replace(tzinfo=None) if isinstance(value, datetime) else datetime.fromisoformat(value)
        for (value,) in rows
    ]


def assert_every_fire_once(
    database: Path,
    deployment: str,
    every: timedelta,
    paused: Sequence[tuple[datetime, datetime]] = (),
) -> int:
    """Each fire time of ``deployment`` between its first and last row is there once, but
    inside the ``paused`` spans; returns how many there are."""
    times = fire_times(database, deployment)
    assert times, f"{deployment} has no fire at all"
    assert len(times) == len(set(times)), f"{deployment}: a fire time has two rows"
    for before, after in itertools.pairwise(times):
        if after - before == every:
            continue
        hidden = any(start <= before + every and after - every <= end for start, end in paused)
        assert hidden, f"{deployment}: fire times missing between {before} and {after}"
    return len(times)


def assert_store_sound(database: Database) -> None:
    """What holds for every store once its daemon has stopped: it passes integrity_check,
    no run has two final states, nothing is left Running or Pending."""
    assert integrity(database) == "ok"
    assert_one_final_state_per_run(database)
    assert_nothing_left_running(database)
