"""The command line's SQLAlchemy-free store (``LiteStore``) against ``Store``: the same calls
on the same SQLite file give the same rows, and its writes read back through ``Store``."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from gnomon.states import parse_state_filter
from gnomon.store import Actor, LogQuery, Store
from gnomon.store._lite import LiteStore, open_lite

ACTOR = Actor("alice", "cli")


@pytest.fixture
def seeded(store: Store) -> Store:
    """Deployments, runs in several states and log lines, written through Store."""
    from gnomon.deployments import Deployment, sync_deployments

    now = datetime.now(UTC)
    deployments = [
        Deployment(name="alpha", flow="m:f", cron="0 * * * *", tags=["crm"], parameters={"x": 1}),
        Deployment(name="beta", flow="m:f", interval="15m"),
        Deployment(name="gamma", flow="m:f", interval="1h", paused=True),
    ]
    sync_deployments(store, deployments, now)
    for index, (deployment, state) in enumerate(
        [("alpha", "Completed"), ("alpha", "Failed"), ("beta", "Completed"), ("beta", "Running")]
    ):
        when = now - timedelta(minutes=10 - index)
        store.create_flow_run(
            {
                "id": f"{index:032x}",
                "name": f"run-{index}",
                "flow_name": "f",
                "parameters": {"token": "s3cret", "n": index},
                "tags": ["crm"],
                "state_type": state.upper(),
                "state_name": state,
                "deployment_name": deployment,
                "scheduled_for": when,
                "start_time": when,
                "trigger": "schedule",
                "created": when,
                "updated": when,
            }
        )
    for index in range(6):
        store.add_log(
            {
                "flow_run_id": f"{index % 4:032x}",
                "timestamp": now - timedelta(minutes=6 - index),
                "level": logging.ERROR if index % 3 == 0 else logging.INFO,
                "logger": "test",
                "message": f"line {index}",
                "extra": {"i": index},
                "deployment_name": "alpha" if index % 2 else "beta",
            }
        )
    store.flush()
    return store


@pytest.fixture
def lite(seeded: Store) -> LiteStore:
    opened = open_lite(seeded.url)
    assert opened is not None
    yield opened
    opened.close()


def test_reads_match_the_store(seeded: Store, lite: LiteStore) -> None:
    since = datetime.now(UTC) - timedelta(minutes=8)
    assert lite.read_deployment_names() == seeded.read_deployment_names()
    assert lite.read_deployments() == seeded.read_deployments()
    assert lite.read_deployment("alpha") == seeded.read_deployment("alpha")
    assert lite.read_deployment("nope") is None
    failed, only_failed = parse_state_filter("failed"), parse_state_filter("only:Failed")
    for arguments in [(), ("alpha",), (None, failed), (None, only_failed), (None, None, since)]:
        assert lite.read_runs(*arguments) == seeded.read_runs(*arguments), arguments
    assert lite.read_runs(limit=2) == seeded.read_runs(limit=2)
    assert lite.read_flow_run(f"{1:032x}") == seeded.read_flow_run(f"{1:032x}")
    assert lite.find_runs_by_prefix("0000") == seeded.find_runs_by_prefix("0000")
    assert lite.last_log_id() == seeded.last_log_id()


@pytest.mark.parametrize(
    "query",
    [
        LogQuery(),
        LogQuery(deployment="alpha"),
        LogQuery(flow_run_id=f"{2:032x}"),
        LogQuery(min_level=logging.ERROR),
        LogQuery(since=datetime.now(UTC) - timedelta(minutes=3)),
        LogQuery(after_id=2),
    ],
)
@pytest.mark.parametrize(("limit", "newest"), [(None, True), (2, True), (3, False)])
def test_log_searches_match_the_store(
    seeded: Store, lite: LiteStore, query: LogQuery, limit: int | None, newest: bool
) -> None:
    assert lite.search_logs(query, limit, newest) == seeded.search_logs(query, limit, newest)


def test_pauses_written_by_either_read_the_same_through_the_store(
    seeded: Store, lite: LiteStore
) -> None:
    assert lite.set_paused(["alpha", "gamma"], True, ACTOR, "incident") == ["alpha"]
    by_lite = seeded.read_deployment("alpha")
    assert seeded.set_paused(["alpha"], False, ACTOR, None) == ["alpha"]
    assert seeded.set_paused(["alpha"], True, ACTOR, "incident") == ["alpha"]
    by_store = seeded.read_deployment("alpha")

    ignored = {"paused_at", "updated", "fires_from"}  # times of the writes; the store resumed
    assert {k: v for k, v in by_lite.items() if k not in ignored} == {
        k: v for k, v in by_store.items() if k not in ignored
    }
    assert by_lite["paused_at"].tzinfo is UTC
    lite_audit, _, store_audit = seeded.read_audit()[::-1][:3]
    assert {k: v for k, v in lite_audit.items() if k not in ("id", "timestamp")} == {
        k: v for k, v in store_audit.items() if k not in ("id", "timestamp")
    }
    assert lite.set_paused(["alpha"], False, ACTOR, None) == ["alpha"]
    resumed = seeded.read_deployment("alpha")
    assert resumed["paused"] is False
    assert resumed["fires_from"] > by_store["fires_from"]  # a resume is not caught up


def test_only_a_current_sqlite_store_opens(store: Store, tmp_path) -> None:
    assert open_lite(f"sqlite:///{tmp_path / 'missing.db'}") is None
    assert open_lite("postgresql://localhost/test") is None
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'")
    assert open_lite(store.url) is None


def test_the_fast_commands_do_not_import_sqlalchemy_or_pydantic(seeded: Store) -> None:
    code = (
        "import sys\n"
        "from gnomon.cli import main\n"
        "for argv in (\n"
        "    ['pause', 'alpha'], ['resume', 'alpha'], ['pause', '--tag', 'crm'],\n"
        "    ['resume', '--tag', 'crm'], ['runs', 'list'], ['logs'],\n"
        "    ['runs', 'list', '--state', 'failed', '--since', '1d', '--limit', '5'],\n"
        "    ['logs', '--level', 'warning', '--since', '2020-01-01T00:00', '-n', '3'],\n"
        "):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exit:\n"
        "        assert not exit.code, (argv, exit.code)\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'pydantic'})\n"
        "print('heavy:', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "heavy: []"
