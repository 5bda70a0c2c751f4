"""The invariants users rely on, checked on a store after a fault test.

- every fire time of an interval deployment has exactly one row (a run, Skipped or
  Missed), except inside a pause;
- no run has two final states in a row (a Completed run never also ends Crashed);
- nothing is left Running, Pending or Cancelling once the daemon is gone;
- the SQLite file passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

FINAL_TYPES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
UNSETTLED_TYPES = {"RUNNING", "PENDING", "CANCELLING"}


def _connect(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)


def fire_times(database: Path, deployment: str) -> list[datetime]:
    with _connect(database) as connection:
        rows = connection.execute(
            "SELECT scheduled_for FROM flow_runs WHERE deployment_name = ?"
            " AND trigger IN ('schedule', 'catchup') ORDER BY scheduled_for",
            (deployment,),
        ).fetchall()
    return [datetime.fromisoformat(value) for (value,) in rows]


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


def assert_no_second_final_state(database: Path) -> None:
    with _connect(database) as connection:
        rows = connection.execute(
            "SELECT flow_run_id, type, name FROM run_states WHERE task_run_id IS NULL"
            " ORDER BY flow_run_id, id"
        ).fetchall()
    for run_id, states in itertools.groupby(rows, key=lambda row: row[0]):
        listed = [(kind, name) for _, kind, name in states]
        for first, second in itertools.pairwise(listed):
            assert not (first[0] in FINAL_TYPES and second[0] in FINAL_TYPES), (
                f"run {run_id} has two final states in a row: {listed}"
            )


def assert_nothing_left_running(database: Path) -> None:
    with _connect(database) as connection:
        rows = connection.execute(
            "SELECT id, deployment_name, state_name FROM flow_runs WHERE state_type IN (?, ?, ?)",
            tuple(sorted(UNSETTLED_TYPES)),
        ).fetchall()
    assert not rows, f"runs left unsettled by a daemon that is gone: {rows[:5]}"


def assert_integrity(database: Path) -> None:
    with _connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def assert_store_sound(database: Path) -> None:
    """The invariants that hold for every store once its daemon has stopped."""
    assert_integrity(database)
    assert_no_second_final_state(database)
    assert_nothing_left_running(database)
