"""Rolling upgrades of the schema, on SQLite and on PostgreSQL: a store a newer gnomon
migrated is refused by every entry of this one, in one line (the command line, its fast
path, the daemon, ``flow.serve``, the store's face); a daemon started before that
migration works on beside it; and the previous revision's code reads and writes the head
schema.

The previous release's code cannot be checked out in a test, so "the previous code" is its
view of the schema: the tables as the previous revision's migrations leave them, reflected
from a database migrated that far. Its statements through that view, on the database then
migrated to head, are those of a daemon not yet upgraded: they name only the columns it
knows.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    ColumnElement,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.pool import NullPool

from conftest import REPO
from gnomon import flow, get_run_logger, task
from gnomon._settings import get_settings
from gnomon._version import __version__
from gnomon.exceptions import StoreSchemaTooNew
from gnomon.store import (
    HEAD_REVISION,
    current_revision,
    get_store,
    open_fast,
    store_at,
    store_name,
    upgrade,
)
from gnomon.task_runners import ProcessPoolTaskRunner
from test_cli_daemon import gnomon
from test_daemon import INTERVAL_TICK, completed, runs, start_daemon, wait_for, write_config

pytestmark = pytest.mark.backends

NEWER = f"{int(HEAD_REVISION) + 1:04d}"  # the name of the next gnomon's first migration


@pytest.fixture
def url(backend: str) -> str:
    return get_settings().effective_database_url


@contextlib.contextmanager
def engine_at(url: str) -> Iterator[Engine]:
    """An engine of the test's own, not gnomon's: what it does, no gnomon code does."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def migrate_as_a_newer_gnomon(url: str, revision: str = NEWER) -> None:
    """What a newer gnomon's additive migration does: a new nullable column, and the
    revision this gnomon does not know."""
    with engine_at(url) as engine, engine.begin() as connection:
        connection.execute(text("ALTER TABLE flow_runs ADD COLUMN newer_note VARCHAR(20)"))
        connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def refusal(url: str, revision: str = NEWER) -> str:
    return (
        f"store {store_name(url)}: its schema is at revision {revision}, which gnomon"
        f" {__version__} does not know (its newest is {HEAD_REVISION}): a newer gnomon"
        " migrated it; upgrade gnomon on this host"
    )


# A store a newer gnomon migrated.


def test_every_entry_refuses_a_store_a_newer_gnomon_migrated_in_one_line(
    url: str, gnomon_home: Path, tmp_path: Path
) -> None:
    upgrade(url)
    migrate_as_a_newer_gnomon(url)
    line = refusal(url)

    with pytest.raises(StoreSchemaTooNew) as refused:
        store_at(url)
    assert str(refused.value) == line
    with pytest.raises(StoreSchemaTooNew):
        open_fast(url)  # the command line's fast path, without SQLAlchemy
    for command in (
        ["runs", "list"],  # the fast path
        ["logs"],
        ["pause", "ticker"],
        ["deployments", "list"],  # Store
        ["db", "upgrade"],
    ):
        result = gnomon(gnomon_home, *command)
        assert (result.returncode, result.stderr, result.stdout) == (1, f"Error: {line}\n", "")
    daemon = start_daemon(write_config(tmp_path, INTERVAL_TICK), gnomon_home)
    out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 1
    assert err == f"gnomon daemon: {line}\n"
    assert "Traceback" not in out
    served = run_script(tmp_path / "served.py", SCRIPT + "f.serve(name='f', interval=60)\n")
    assert (served.returncode, served.stderr) == (1, f"gnomon serve: {line}\n")
    # A flow called directly raises it, with the same line, to the code that called it.
    called = run_script(tmp_path / "called.py", SCRIPT + "f()\n")
    assert called.returncode == 1
    assert called.stderr.splitlines()[-1] == f"gnomon.exceptions.StoreSchemaTooNew: {line}"
    assert current_revision(url) == NEWER  # nothing migrated


SCRIPT = "from gnomon import flow\n\n@flow\ndef f() -> None: ...\n\n"


def run_script(path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path.write_text(text)
    environment = {**os.environ}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "src"), environment.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=path.parent,
        timeout=60,
        check=False,
    )


@pytest.mark.sqlite_only
def test_a_revision_that_is_no_gnomon_number_is_refused_as_unknown(url: str) -> None:
    upgrade(url)
    migrate_as_a_newer_gnomon(url, "1a2b3c4d5e6f")

    with pytest.raises(StoreSchemaTooNew) as refused:
        store_at(url)
    assert str(refused.value) == refusal(url, "1a2b3c4d5e6f")


@pytest.mark.postgresql_only
def test_the_refusal_masks_the_password_in_the_url(url: str, gnomon_home: Path) -> None:
    upgrade(url)
    migrate_as_a_newer_gnomon(url)
    with_password = url.replace("postgres@", "postgres:hunter2@", 1)  # trust auth ignores it
    assert with_password != url

    result = gnomon(gnomon_home, "runs", "list", GNOMON_DATABASE_URL=with_password)

    assert result.returncode == 1
    assert "hunter2" not in result.stderr
    assert "postgres:***@" in result.stderr
    assert f"revision {NEWER}" in result.stderr


def test_db_status_says_where_the_schema_stands_and_migrates_nothing(
    url: str, gnomon_home: Path
) -> None:
    name = store_name(url)
    upgrade(url)
    current = gnomon(gnomon_home, "db", "status")
    assert (current.returncode, current.stdout) == (
        0,
        f"store {name}: schema revision {HEAD_REVISION}, the newest gnomon {__version__} knows\n",
    )

    with engine_at(url) as engine, engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    behind = gnomon(gnomon_home, "db", "status")
    assert behind.returncode == 0
    assert behind.stdout.startswith(f"store {name}: schema revision 0001, behind the newest")
    assert current_revision(url) == "0001"  # told, not migrated

    migrate_as_a_newer_gnomon(url)
    ahead = gnomon(gnomon_home, "db", "status")
    assert (ahead.returncode, ahead.stdout) == (1, refusal(url) + "\n")
    as_json = gnomon(gnomon_home, "db", "status", "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {
        "store": name,
        "revision": NEWER,
        "newest_known": HEAD_REVISION,
        "version": __version__,
        "status": "ahead",
    }


@pytest.mark.sqlite_only
def test_db_status_of_a_store_not_made_yet_does_not_make_it(gnomon_home: Path) -> None:
    result = gnomon(gnomon_home, "db", "status")

    assert result.returncode == 0, result.stderr
    assert "does not exist yet" in result.stdout
    assert not gnomon_home.exists()


def test_a_daemon_started_before_a_newer_gnomon_migrated_runs_on_beside_it(
    url: str, tmp_path: Path, gnomon_home: Path, store: Any, daemons: list[Any]
) -> None:
    """Mid rolling upgrade: another host's newer daemon migrated the database; this host's
    daemon, not upgraded yet, keeps running its deployments in workers it forks after that,
    while new processes of the old gnomon on this host refuse the store."""
    config = write_config(tmp_path, INTERVAL_TICK, daemon="workers = 1\nmax_runs_per_worker = 1")
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "ticker", 1), timeout=60, what="a run before the migration")

    migrate_as_a_newer_gnomon(url)
    before = sum(row.state_name == "Completed" for row in runs(store, "ticker"))
    # One run per worker: each of these ran in a worker forked after the migration.
    wait_for(completed(store, "ticker", before + 3), timeout=60, what="runs after it")

    refused = gnomon(gnomon_home, "runs", "list")
    assert (refused.returncode, refused.stderr) == (1, f"Error: {refusal(url)}\n")
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert not [row for row in runs(store, "ticker") if row.state_name == "Crashed"]


def test_a_flow_started_before_a_newer_gnomon_migrated_runs_its_tasks_in_other_processes(
    url: str, store: Any
) -> None:
    """Task workers (a process pool's, a Dask cluster's) write to the store of the flow
    that sent them, which checked its schema: they leave that to it, as a daemon's do."""
    migrate_as_a_newer_gnomon(url)

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def fan_out() -> list[int]:
        return [future.result() for future in add_one.map([1, 2])]

    assert fan_out() == [2, 3]
    (run,) = store.read_runs(limit=10)
    assert [row.state_name for row in store.read_task_runs(run.id)] == ["Completed"] * 2


# The previous revision's code on the head schema.


@flow
def tally(n: int) -> int:
    get_run_logger().info("tallying %s", n)
    return add_one(n)


@task
def add_one(n: int) -> int:
    return n + 1


@pytest.mark.empty_database
def test_the_previous_revisions_code_reads_and_writes_the_head_schema(url: str) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    # The store's own Alembic config: the one way to stop at a revision short of head.
    from gnomon.store._migrate import alembic_config

    config = alembic_config(url)
    previous = ScriptDirectory.from_config(config).get_revision(HEAD_REVISION).down_revision
    assert isinstance(previous, str)
    command.upgrade(config, previous)
    old = MetaData()
    with engine_at(url) as engine:
        old.reflect(engine)  # the previous code's view: the tables and columns it knows
    upgrade(url)  # the first host's new daemon migrates to head
    assert tally(41) == 42  # and writes a run, its task, states and a log line
    store = get_store()
    store.flush()
    (original,) = store.read_runs(limit=10)

    with engine_at(url) as engine, engine.begin() as connection:
        for table in old.sorted_tables:  # the old code reads every row the new one wrote
            listed = connection.execute(select(*table.columns)).all()
            counted = connection.execute(select(func.count()).select_from(table)).scalar_one()
            assert len(listed) == counted, table.name
        copy_run(connection, old.tables, original.id, "c" * 32, "d" * 32)

    copy = store.read_flow_run("c" * 32)  # what the old code wrote, as the new code reads it
    assert copy is not None
    assert known(copy.as_dict(), old.tables["flow_runs"]) == {
        **known(original.as_dict(), old.tables["flow_runs"]),
        "id": "c" * 32,
    }
    (task_run,) = store.read_task_runs("c" * 32)
    assert (task_run.id, task_run.state_name) == ("d" * 32, "Completed")
    assert [row.name for row in store.read_states(flow_run_id="c" * 32)] == [
        row.name for row in store.read_states(flow_run_id=original.id)
    ]
    assert len(store.read_states(task_run_id="d" * 32)) >= 2


def known(row: dict[str, Any], table: Table) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key in table.columns}


def copy_run(connection: Any, tables: Any, run_id: str, copy_id: str, task_copy_id: str) -> None:
    """Write run ``run_id`` again as ``copy_id`` (with its one task run as
    ``task_copy_id``, its states and log lines) through ``tables``, the old code's view:
    INSERT ... SELECT naming only the columns that view has."""
    flow_runs, task_runs = tables["flow_runs"], tables["task_runs"]
    task_id = connection.execute(
        select(task_runs.c.id).where(task_runs.c.flow_run_id == run_id)
    ).scalar_one()
    copy_rows(connection, flow_runs, flow_runs.c.id == run_id, id=copy_id)
    copy_rows(
        connection,
        task_runs,
        task_runs.c.id == task_id,
        id=task_copy_id,
        flow_run_id=copy_id,
    )
    for name in ("run_states", "run_logs"):
        table = tables[name]
        own = (table.c.flow_run_id == run_id) & table.c.task_run_id.is_(None)
        copy_rows(connection, table, own, flow_run_id=copy_id)
        of_task = table.c.task_run_id == task_id
        copy_rows(connection, table, of_task, flow_run_id=copy_id, task_run_id=task_copy_id)


def copy_rows(connection: Any, table: Table, where: ColumnElement[bool], **values: str) -> None:
    """Insert the rows of ``table`` that ``where`` selects again, with ``values`` in place
    of theirs and new ids where the database numbers them."""
    columns = [
        column
        for column in table.columns
        if not (column.primary_key and isinstance(column.type, Integer))
    ]
    chosen = [
        literal(values[column.name]) if column.name in values else column for column in columns
    ]
    connection.execute(
        insert(table).from_select([column.name for column in columns], select(*chosen).where(where))
    )
