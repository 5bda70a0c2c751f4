"""The dashboard benchmark's scripts at tiny sizes, so that they keep working as the store
and the app change: the generator builds the sizes asked for on each database, and the
measuring script serves every page of the tree over it. No timing is asserted (the
figures are in docs/benchmarks.md)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import POSTGRES_URL, REPO

BENCH = REPO / "bench"
SIZES = ["--deployments", "40", "--runs", "3000", "--logs", "20000", "--history", "1000"]
SIZES += ["--big-tasks", "300", "--audit", "50"]


def _bench(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _counts(connection: sqlite3.Connection) -> dict[str, int]:
    # Counted straight from the file: what the generator put in each table.
    queries = {
        "deployments": "SELECT count(*) FROM deployments",
        "paused": "SELECT count(*) FROM deployments WHERE paused AND paused_reason != ''",
        "flow_runs": "SELECT count(*) FROM flow_runs",
        "run_logs": "SELECT count(*) FROM run_logs",
        "audit": "SELECT count(*) FROM audit_log",
        "big run tasks": (
            "SELECT count(*) FROM task_runs JOIN flow_runs ON flow_runs.id = flow_run_id "
            "WHERE deployment_name = 'etl-warehouse-big'"
        ),
        "retried big run tasks": "SELECT count(*) FROM task_runs WHERE run_count = 2",
        "failed runs": "SELECT count(*) FROM flow_runs WHERE state_name = 'Failed'",
        "running runs": "SELECT count(*) FROM flow_runs WHERE state_name = 'Running'",
        "states": "SELECT count(*) FROM run_states",
    }
    return {name: connection.execute(sql).fetchone()[0] for name, sql in queries.items()}


def test_the_generator_builds_a_sqlite_store_of_the_sizes_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "dash.sqlite"
    printed = _bench("dashboard_data.py", "--store", f"sqlite:{path}", *SIZES)
    assert "built in" in printed
    with sqlite3.connect(path) as connection:
        counts = _counts(connection)
    assert counts["deployments"] == 40
    assert counts["paused"] >= 1
    assert counts["flow_runs"] == 3000
    assert counts["run_logs"] == 20000
    assert counts["audit"] >= 50  # the generated ones, and the apply's and pauses' own
    assert counts["big run tasks"] >= 300
    assert counts["retried big run tasks"] >= 1
    assert counts["failed runs"] >= 1
    assert counts["running runs"] >= 1
    assert counts["states"] >= 3 * 1000
    again = subprocess.run(
        [sys.executable, str(BENCH / "dashboard_data.py"), "--store", f"sqlite:{path}"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        check=False,
    )
    assert again.returncode != 0  # never overwritten unasked
    assert "--replace" in again.stderr


def test_the_measuring_script_serves_every_page_of_the_tree_over_a_generated_store(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dash.sqlite"
    _bench("dashboard_data.py", "--store", f"sqlite:{path}", *SIZES)
    printed = _bench("dashboard.py", "--store", f"sqlite:{path}", "--repeat", "1")
    measured = {}  # request: its status (the table's columns after the tree's name)
    for line in printed.splitlines():
        if line.startswith("/"):
            label, _, rest = line.partition(" this ")
            measured[label.strip()] = rest.split()[0]
    assert {"/deployments", "/login", "/api/v1/deployments", "/api/v1/runs/{run_id}"} <= set(
        measured
    )
    assert all(status in ("200", "303", "307") for status in measured.values()), measured


@pytest.mark.skipif(
    not POSTGRES_URL and not os.environ.get("GNOMON_TEST_REQUIRE_POSTGRES"),
    reason="needs GNOMON_TEST_POSTGRES_URL",
)
def test_the_generator_builds_a_postgresql_store_in_a_database_of_its_own() -> None:
    if not POSTGRES_URL:
        pytest.fail("GNOMON_TEST_REQUIRE_POSTGRES is set but GNOMON_TEST_POSTGRES_URL is not")
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    name = f"gnomon_bench_dash_{os.environ.get('GNOMON_TEST_DB_TAG', '')}{os.getpid()}"
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        _bench("dashboard_data.py", "--store", url, *SIZES)
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                runs = connection.execute(text("SELECT count(*) FROM flow_runs")).scalar_one()
                logs = connection.execute(text("SELECT count(*) FROM run_logs")).scalar_one()
        finally:
            engine.dispose()
        assert (runs, logs) == (3000, 20000)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
