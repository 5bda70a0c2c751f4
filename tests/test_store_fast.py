"""The command line's SQLAlchemy-free store (``FastStore``) against ``Store``, on SQLite and
on PostgreSQL: every method of ``FastControl`` called on both with the same arguments gives
the same rows (the same keys, values and Python types), and writes made through either read
back the same through ``Store``. ``FastStore`` is reached through the store's face
(``open_fast``); its URL rule (``_connect``) is private, and tested against SQLAlchemy's."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import create_run
from gnomon.states import StateFilter, StateName, StateType, parse_state_filter
from gnomon.store import Actor, FastStore, LogQuery, Store, open_fast
from test_cli_daemon import gnomon

ACTOR = Actor("alice", "cli")
# The seeded rows' times: fixed, so that the filters below select a known part of them.
T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
RUN_STATES = [
    ("alpha", StateName.COMPLETED),
    ("alpha", StateName.FAILED),
    ("alpha", StateName.TIMED_OUT),
    ("beta", StateName.CRASHED),
    ("beta", StateName.COMPLETED),
    ("beta", StateName.RUNNING),
    ("gamma", StateName.SKIPPED),
    (None, StateName.CANCELLED),  # a flow run outside any deployment
]
TYPES = {
    StateName.COMPLETED: StateType.COMPLETED,
    StateName.FAILED: StateType.FAILED,
    StateName.TIMED_OUT: StateType.FAILED,
    StateName.CRASHED: StateType.CRASHED,
    StateName.RUNNING: StateType.RUNNING,
    StateName.SKIPPED: StateType.CANCELLED,
    StateName.CANCELLED: StateType.CANCELLED,
}


# Several types and several names, in one filter.
MIXED = StateFilter(
    types=frozenset({StateType.COMPLETED}), names=frozenset({StateName.FAILED, StateName.SKIPPED})
)


def run_id(index: int) -> str:
    return f"{index:032x}"


@pytest.fixture
def seeded(store: Store) -> Store:
    """Deployments (one removed from the config, one paused), runs in several states and
    log lines (one stored late), written through Store: every column type, NULLs among them."""
    from gnomon.deployments import Deployment, sync_deployments

    config = [
        Deployment(name="alpha", flow="m:f", cron="0 * * * *", tags=["crm"], parameters={"x": 1}),
        Deployment(name="beta", flow="m:f", interval="15m", description="every quarter"),
        Deployment(name="gamma", flow="m:f", interval="1h", paused=True, tags=["crm", "eu"]),
        Deployment(name="delta", flow="m:f", interval="1d"),
    ]
    sync_deployments(store, config, T0 - timedelta(days=1))
    sync_deployments(store, config[:3], T0 - timedelta(hours=1))  # delta: inactive
    for index, (deployment, state) in enumerate(RUN_STATES):
        when = T0 - timedelta(minutes=10 - index, microseconds=index)
        finished = TYPES[state] not in (StateType.RUNNING,)
        create_run(
            store,
            {
                "id": run_id(index),
                "name": f"run-{index}",
                "flow_name": "f",
                "parameters": {"token": "s3cret", "n": index, "nested": [1.5, None, True]}
                if index % 3
                else None,
                "tags": ["crm"] if index % 2 else [],
                "state_type": TYPES[state],
                "state_name": state,
                "deployment_name": deployment,
                "scheduled_for": when,
                "start_time": when,
                "end_time": when + timedelta(seconds=3) if finished else None,
                "result_ref": {"storage": "local", "key": f"k{index}"} if index == 0 else None,
                "trigger": "schedule" if deployment else None,
                "force": index == 4,
                "cancel_requested_at": when if state == StateName.CANCELLED else None,
                "exit_code": 1 if index == 3 else None,
                "created": when,
                "updated": when,
            },
        )
    lines = [(T0 - timedelta(minutes=8 - index), index) for index in range(8)]
    lines.append((T0 - timedelta(minutes=3, seconds=30), 8))  # stored after later lines
    for when, index in lines:
        store.add_log(
            {
                "flow_run_id": run_id(index % 4) if index % 5 else None,
                "timestamp": when,
                "level": logging.ERROR if index % 3 == 0 else logging.INFO,
                "logger": "test",
                "message": f"line {index}",
                "extra": {"i": index, "ok": index % 2 == 0} if index % 4 else None,
                "deployment_name": "alpha" if index % 2 else "beta",
            }
        )
    store.flush()
    return store


@pytest.fixture
def fast(seeded: Store) -> Iterator[FastStore]:
    opened = open_fast(seeded.url)
    assert opened is not None
    yield opened
    opened.close()


def same(by_fast: Any, by_store: Any) -> None:
    """The same values of the same types, in the same order (``==`` alone takes 1 for True,
    and any time zone for UTC)."""
    assert repr(by_fast) == repr(by_store)


@pytest.mark.backends
def test_deployment_and_run_reads_match_the_store(seeded: Store, fast: FastStore) -> None:
    assert len(seeded.read_deployments(active_only=False)) == 4
    for method, arguments in [
        ("read_deployment_names", ()),
        ("read_deployments", ()),
        ("read_deployments", (False,)),
        ("read_deployment", ("gamma",)),
        ("read_deployment", ("delta",)),
        ("read_deployment", ("nope",)),
        ("read_flow_run", (run_id(0),)),
        ("read_flow_run", (run_id(4),)),
        ("read_flow_run", (run_id(5),)),
        ("read_flow_run", ("f" * 32,)),
        ("find_runs_by_prefix", ("0000",)),
        ("find_runs_by_prefix", ("0000", 5)),
        ("find_runs_by_prefix", (run_id(7),)),
        ("find_runs_by_prefix", ("abc",)),
        ("last_log_id", ()),
    ]:
        by_store = getattr(seeded, method)(*arguments)
        same(getattr(fast, method)(*arguments), by_store)


@pytest.mark.backends
@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"deployment": "alpha"},
        {"state": parse_state_filter("failed")},
        {"state": parse_state_filter("only:Failed")},
        {"state": MIXED},
        {"state": StateFilter()},
        {"since": T0 - timedelta(minutes=6, seconds=30)},
        {"deployment": "beta", "state": parse_state_filter("failed"), "since": T0 - timedelta(1)},
        {"limit": 2},
        {"state": parse_state_filter("completed"), "limit": 1},
    ],
    ids=lambda arguments: "-".join(arguments) or "all",
)
def test_run_lists_match_the_store(
    seeded: Store, fast: FastStore, arguments: dict[str, Any]
) -> None:
    by_store = seeded.read_runs(**arguments)
    if not arguments or arguments.get("state") == parse_state_filter("failed"):
        assert by_store  # the filters select something
    same(fast.read_runs(**arguments), by_store)


@pytest.mark.backends
@pytest.mark.parametrize(
    "query",
    [
        LogQuery(),
        LogQuery(deployment="alpha"),
        LogQuery(flow_run_id=run_id(2)),
        LogQuery(min_level=logging.ERROR),
        LogQuery(since=T0 - timedelta(minutes=5, seconds=45)),
        LogQuery(after_id=2),
        LogQuery("beta", run_id(3), logging.ERROR, T0 - timedelta(hours=1), after_id=1),
    ],
    ids=["all", "deployment", "run", "level", "since", "after", "every-filter"],
)
@pytest.mark.parametrize(("limit", "newest"), [(None, True), (2, True), (None, False), (3, False)])
def test_log_searches_match_the_store(
    seeded: Store, fast: FastStore, query: LogQuery, limit: int | None, newest: bool
) -> None:
    same(fast.search_logs(query, limit, newest), seeded.search_logs(query, limit, newest))


@pytest.mark.backends
def test_the_newest_lines_are_in_time_order_with_a_late_one_in_its_place(
    seeded: Store, fast: FastStore
) -> None:
    newest = fast.search_logs(LogQuery(), 5, newest=True)
    assert [row.message for row in newest] == [f"line {i}" for i in (4, 8, 5, 6, 7)]


@pytest.mark.backends
def test_pauses_written_by_either_read_the_same_through_the_store(
    seeded: Store, fast: FastStore
) -> None:
    assert fast.set_paused(["alpha", "gamma"], True, ACTOR, "incident") == ["alpha"]
    by_fast = seeded.read_deployment("alpha")
    assert seeded.set_paused(["alpha"], False, ACTOR, None) == ["alpha"]
    assert seeded.set_paused(["alpha"], True, ACTOR, "incident") == ["alpha"]
    by_store = seeded.read_deployment("alpha")

    assert by_fast is not None
    assert by_store is not None
    ignored = {"paused_at", "updated", "fires_from"}  # times of the writes; the store resumed
    same(
        {k: v for k, v in by_fast.as_dict().items() if k not in ignored},
        {k: v for k, v in by_store.as_dict().items() if k not in ignored},
    )
    assert by_fast.paused_at.tzinfo is UTC
    fast_audit, _, store_audit = seeded.read_audit()[::-1][:3]
    same(
        {k: v for k, v in fast_audit.as_dict().items() if k not in ("id", "timestamp")},
        {k: v for k, v in store_audit.as_dict().items() if k not in ("id", "timestamp")},
    )
    assert fast.set_paused(["alpha"], False, ACTOR, None) == ["alpha"]
    resumed = seeded.read_deployment("alpha")
    assert resumed is not None
    assert resumed.paused is False
    assert resumed.fires_from > by_store.fires_from  # a resume is not caught up
    same(fast.read_deployment("alpha"), resumed)


@pytest.mark.backends
def test_a_failed_pause_writes_neither_flag_nor_audit(seeded: Store, fast: FastStore) -> None:
    import psycopg

    before = seeded.read_audit()
    # An actor without a name: the audit row's insert fails, after the first UPDATE.
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        fast.set_paused(["alpha", "beta"], True, Actor(None, "cli"), None)  # type: ignore[arg-type]
    assert seeded.read_audit() == before
    assert [row.paused for row in seeded.read_deployments()] == [False, False, True]


@pytest.mark.backends
def test_only_a_store_at_head_reached_as_the_store_would_opens_fast(
    store: Store, backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        assert open_fast(f"sqlite:///{tmp_path / 'missing.db'}") is None
        assert open_fast(f"{store.url}?timeout=5") is None  # an option SQLAlchemy applies
    else:
        assert open_fast(store.url.replace("+psycopg", "")) is None  # psycopg2's URL
    opened = open_fast(store.url)
    assert opened is not None
    opened.close()
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'")
    assert open_fast(store.url) is None


@pytest.mark.backends
def test_the_fast_commands_do_not_import_sqlalchemy_or_pydantic(seeded: Store) -> None:
    code = (
        "import sys\n"
        "from gnomon.cli import main\n"
        "for argv in (\n"
        "    ['pause', 'alpha'], ['resume', 'alpha'], ['pause', '--tag', 'crm'],\n"
        "    ['resume', '--tag', 'crm'], ['runs', 'list'], ['logs'],\n"
        "    ['runs', 'list', '--state', 'failed', '--since', '1d', '--limit', '5'],\n"
        "    ['logs', '--level', 'warning', '--since', '2020-01-01T00:00', '-n', '3'],\n"
        "    ['logs', '--run', '00000000000000000000000000000003', '--deployment', 'beta'],\n"
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
    assert "paused alpha" in result.stdout


def test_a_server_out_of_reach_is_one_line_from_a_fast_command(gnomon_home) -> None:
    url = "postgresql+psycopg://gnomon:secret@127.0.0.1:1/gnomon"
    result = gnomon(gnomon_home, "runs", "list", GNOMON_DATABASE_URL=url)

    assert result.returncode == 1
    assert result.stderr.startswith(
        "Error: store postgresql+psycopg://gnomon:***@127.0.0.1:1/gnomon: OperationalError: "
    ), result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "postgresql+psycopg://u%40x:p%3Aw%2Fd@db.example:6543/gnomon",
        "postgresql+psycopg://localhost/gnomon?sslmode=require&application_name=ops",
        "postgresql+psycopg://gnomon@/gnomon?host=/run/postgresql",
        "postgresql+psycopg:///gnomon",
        "postgresql+psycopg://",
        "postgresql+psycopg://h/d?port=5433",
        "postgresql+psycopg://h/d?options=-csearch_path%3Dx&connect_timeout=3",
    ],
)
def test_a_server_url_gives_the_connection_settings_the_store_connects_with(url: str) -> None:
    """``FastStore`` connects as ``Store``'s engine would (SQLAlchemy's reading of the URL,
    then the store's settings over it). The rule is private (``_connect``): no public face
    turns a URL into settings."""
    from sqlalchemy import make_url
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    from gnomon.store._connect import libpq_parameters, server_settings

    parsed = make_url(url)
    _, by_sqlalchemy = PGDialect_psycopg().create_connect_args(parsed)
    name = parsed.query.get("application_name")
    expected = {**by_sqlalchemy, **server_settings(name if isinstance(name, str) else None)}
    assert libpq_parameters(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://localhost/gnomon",  # psycopg2, as SQLAlchemy reads it
        "sqlite:///gnomon.db",
        "postgresql+psycopg://[::1]:5432/gnomon",
        "postgresql+psycopg://h/d?host=a,b",
        "postgresql+psycopg://h/d?host=a:5433",
        "postgresql+psycopg://h/d?sslmode=require&sslmode=disable",
        "postgresql+psycopg://u:p@ss@h/d",
    ],
)
def test_a_url_read_otherwise_is_left_to_the_store(url: str) -> None:
    from gnomon.store._connect import libpq_parameters

    assert libpq_parameters(url) is None
