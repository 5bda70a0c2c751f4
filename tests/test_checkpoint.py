"""The daemon's WAL checkpoints: its connections (and its workers') leave the WAL alone in
their commits, and the checkpointer copies it into the database file at quiet moments."""

from __future__ import annotations

import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from gnomon.daemon._checkpoint import Checkpointer
from gnomon.store import EXTERNAL_CHECKPOINTS_ENV, Store, get_store
from gnomon.store._schema import flow_runs


@pytest.fixture
def store(gnomon_home: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv(EXTERNAL_CHECKPOINTS_ENV, "daemon")
    store = get_store()
    with sqlite3.connect(gnomon_home / "gnomon.db") as connection:  # the schema, in the file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return store


def write_runs(store: Store, count: int) -> None:
    """``count`` runs, each with a parameter of 4 KiB: about a WAL page per run."""
    rows = [
        {
            "id": uuid.uuid4().hex,
            "name": f"run-{i}",
            "flow_name": "f",
            "parameters": {"x": "y" * 4096},
        }
        for i in range(count)
    ]
    for start in range(0, count, 100):
        with store.engine.begin() as connection:
            connection.execute(flow_runs.insert(), rows[start : start + 100])


def runs_in_database_file(database: Path, tmp_path: Path) -> int:
    """Runs the database file holds by itself, without its WAL: what is checkpointed."""
    alone = tmp_path / "alone.db"
    shutil.copyfile(database, alone)
    with sqlite3.connect(alone) as connection:
        return int(connection.execute("SELECT count(*) FROM flow_runs").fetchone()[0])


def test_commits_leave_the_wal_to_the_checkpointer(
    store: Store, gnomon_home: Path, tmp_path: Path
) -> None:
    database = gnomon_home / "gnomon.db"
    write_runs(store, 1500)  # past SQLite's automatic checkpoint at 1,000 pages

    assert runs_in_database_file(database, tmp_path) == 0

    busy = True
    checkpointer = Checkpointer(database, busy=lambda: busy)
    assert not checkpointer.run_once()  # runs are busy: later
    assert runs_in_database_file(database, tmp_path) == 0

    busy = False
    assert checkpointer.run_once()
    assert runs_in_database_file(database, tmp_path) == 1500
    assert not checkpointer.run_once()  # nothing written since: no work every second

    write_runs(store, 10)
    assert checkpointer.run_once()
    checkpointer.stop()
    assert runs_in_database_file(database, tmp_path) == 1510


def test_a_wal_past_the_cap_is_checkpointed_even_while_busy(
    store: Store, gnomon_home: Path, tmp_path: Path
) -> None:
    database = gnomon_home / "gnomon.db"
    write_runs(store, 300)
    checkpointer = Checkpointer(database, busy=lambda: True, cap=256 * 1024)

    assert checkpointer.run_once()
    checkpointer.stop()
    assert runs_in_database_file(database, tmp_path) == 300


def test_the_checkpointer_thread_checkpoints_once_idle_and_stops_cleanly(
    store: Store, gnomon_home: Path, tmp_path: Path
) -> None:
    database = gnomon_home / "gnomon.db"
    write_runs(store, 50)
    checkpointer = Checkpointer(database, busy=lambda: False)
    checkpointer.start()
    try:
        deadline = time.monotonic() + 30
        while runs_in_database_file(database, tmp_path) < 50:
            assert time.monotonic() < deadline, "no checkpoint within 30 s"
            time.sleep(0.1)
    finally:
        checkpointer.stop()  # from this thread: closes the connection its thread opened
