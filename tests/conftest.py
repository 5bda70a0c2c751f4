"""Shared fixtures: every test gets its own state directory (real SQLite file, real results).

Tests marked ``backends`` run once per store backend: on a SQLite file, and on a database
of its own in the PostgreSQL server that ``GNOMON_TEST_POSTGRES_URL`` names (copied from a
template migrated once per session). Without that variable the PostgreSQL runs skip and
say why, unless ``GNOMON_TEST_REQUIRE_POSTGRES`` is set (as ``.ci/run`` does): then they
fail, so CI never skips them quietly.
"""

from __future__ import annotations

import math
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gnomon._settings import reset_settings
from gnomon.flows import _results
from gnomon.flows._clock import Clock, use_clock
from gnomon.states import StateName, StateType

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Compile gnomon's source and the tests' modules to bytecode once, in the controller,
    before any worker starts: the suite starts a few thousand interpreters (daemons, their
    worker templates, commands), and where PYTHONDONTWRITEBYTECODE is set (as on the CI
    machines) each of them compiled every module it imported from source again, a sixth
    of the suite's CPU. Interpreters still read bytecode that exists under that setting."""
    import compileall

    if hasattr(config, "workerinput"):  # an xdist worker: the controller did it
        return
    for directory in (REPO / "src", REPO / "tests"):
        compileall.compile_dir(directory, quiet=2)


# The files that take longest, longest first (test-seconds in a full run, 2026-12-07).
# xdist hands out whole files (--dist loadfile), in collection order under
# --no-loadscope-reorder (else those with the most tests first, which left a file of one
# 75-second test running alone at the end): started first, the long ones end with the rest.
LONGEST_FIRST = (
    "test_cli_control.py",
    "test_cluster.py",
    "test_faults_daemon.py",
    "test_daemon.py",
    "test_backfill.py",
    "test_serve.py",
    "test_cli_daemon.py",
    "test_api.py",
    "test_upstreams_daemon.py",
    "test_pools_daemon.py",
    "test_faults_containment.py",
    "test_dashboard_basics.py",
    "test_faults_input.py",
    "test_faults_store.py",
    "test_faults_postgres.py",
    "test_flow_runs_daemon.py",
    "test_cluster_netns.py",
    "test_cli_operate.py",
    "test_netns.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


@pytest.fixture(autouse=True)
def gnomon_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh GNOMON_HOME for each test, with the per-process singletons reset around it."""
    from gnomon.store import reset_store

    home = tmp_path / "gnomon-home"
    monkeypatch.setenv("GNOMON_HOME", str(home))
    monkeypatch.delenv("GNOMON_DATABASE_URL", raising=False)
    monkeypatch.delenv("GNOMON_CONFIG", raising=False)
    monkeypatch.setenv("GNOMON_LOG_FORMAT", "json")
    monkeypatch.chdir(tmp_path)
    reset_settings()
    reset_store()
    _results._stores.clear()
    _reset_concurrency_snapshot()
    yield home
    reset_store()
    reset_settings()
    _results._stores.clear()


def _reset_concurrency_snapshot() -> None:
    from gnomon.flows import _concurrency

    _concurrency._limits.invalidate()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Captured output with lone surrogates (tests of gnomon's handling of them log some)
    escaped: pytest-xdist's workers send reports as UTF-8 and would crash the session."""
    outcome = yield
    report = outcome.get_result()
    report.sections = [
        (title, content.encode("utf-8", "backslashreplace").decode("utf-8"))
        for title, content in report.sections
    ]


POSTGRES_URL = os.environ.get("GNOMON_TEST_POSTGRES_URL")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not POSTGRES_URL and not os.environ.get("GNOMON_TEST_REQUIRE_POSTGRES"),
            reason="PostgreSQL store tests need GNOMON_TEST_POSTGRES_URL (.ci/run sets it)",
        ),
    ),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("backends"):
        if "backend" not in metafunc.fixturenames:  # tests that reach the store themselves
            metafunc.fixturenames.append("backend")
        backends = BACKENDS
        if metafunc.definition.get_closest_marker("sqlite_only"):
            backends = BACKENDS[:1]
        elif metafunc.definition.get_closest_marker("postgresql_only"):
            backends = BACKENDS[1:]
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture(autouse=True)
def _backend_first(request: pytest.FixtureRequest, gnomon_home: Path) -> None:
    """In a test marked ``backends``, the database is switched before any other fixture
    (one that applies a config, say) reaches the store."""
    if request.node.get_closest_marker("backends"):
        request.getfixturevalue("backend")


@pytest.fixture
def backend(
    request: pytest.FixtureRequest, gnomon_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The store backend of this test: "sqlite" (the default), or "postgresql" for tests
    marked ``backends``, with ``GNOMON_DATABASE_URL`` set to a fresh database of their own
    (daemons and commands the test starts inherit it)."""
    from gnomon.store import reset_store

    name = getattr(request, "param", "sqlite")
    if name == "sqlite":
        yield name
        return
    from pg_databases import fresh_database

    if not POSTGRES_URL:
        pytest.fail("GNOMON_TEST_REQUIRE_POSTGRES is set but GNOMON_TEST_POSTGRES_URL is not")
    empty = request.node.get_closest_marker("empty_database") is not None
    with fresh_database(POSTGRES_URL, empty=empty) as url:
        monkeypatch.setenv("GNOMON_DATABASE_URL", url)
        reset_settings()
        reset_store()
        yield name
        reset_store()


@pytest.fixture
def store(backend: str):
    from gnomon.store import get_store

    return get_store()


class FakeClock(Clock):
    """Records requested sleeps and advances its own time instead of sleeping."""

    def __init__(self, random_values: list[float] | None = None) -> None:
        self.offset = timedelta()
        self.sleeps: list[float] = []
        self._random = list(random_values or [])

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += timedelta(seconds=seconds)

    def random(self) -> float:
        return self._random.pop(0) if self._random else 0.5

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with use_clock(FakeClock()) as fake:
        yield fake


def _python_env(home: Path, env: dict[str, str]) -> dict[str, str]:
    environment = {**os.environ, "GNOMON_HOME": str(home), "GNOMON_LOG_FORMAT": "json", **env}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "src"), str(REPO / "tests"), environment.get("PYTHONPATH")])
    )
    return environment


def run_python(
    code: str, home: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter against the same state directory."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_python_env(home, env),
        check=False,
    )


def start_python(code: str, home: Path, **env: str) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh interpreter against the same state directory, without waiting.

    Its stdin, stdout and stderr are text pipes, so a test can signal it and read its progress.
    """
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_python_env(home, env),
    )


def read_line(process: subprocess.Popen[str], timeout: float = 30) -> str:
    """The next line ``process`` writes to stdout; "" if it exits or ``timeout`` passes first.

    Meant for a process that writes one line and then waits: a line read ahead into the
    pipe's buffer would not wake a later call.
    """
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline() if ready else ""


def stop_python(process: subprocess.Popen[str]) -> None:
    """Kill ``process`` if it is still running, reap it and close its pipes."""
    if process.poll() is None:
        process.kill()
    process.communicate()


def approx_equal(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def schedule_run(
    store,
    entrypoint: str,
    parameters: dict | None = None,
    name: str = "scheduled-run",
    **columns: object,
) -> str:
    """Insert a Scheduled flow run, committed at once, as the daemon does; returns its id.
    ``columns`` adds to the row (a deployment's run: ``deployment_name``, ...)."""
    import uuid

    run_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    create_run(
        store,
        {
            "id": run_id,
            "name": name,
            "flow_name": entrypoint.rpartition(":")[2],
            "entrypoint": entrypoint,
            "parameters": parameters or {},
            "tags": [],
            "state_type": StateType.SCHEDULED,
            "state_name": StateName.SCHEDULED,
            "run_count": 0,
            "expected_start_time": now,
            "created": now,
            "updated": now,
            **columns,
        },
    )
    return run_id


def create_run(store, row: dict) -> None:
    """Insert a flow run with its first state, committed at once, as the daemon creates
    runs (``create_runs``); a run Scheduled now unless ``row`` says otherwise."""
    run = {
        "created": datetime.now(UTC),
        "state_type": StateType.SCHEDULED,
        "state_name": StateName.SCHEDULED,
        "deployment_name": None,
        **row,
    }
    assert store.create_runs([run]) == {run["id"]}


def subflows(store, parent_id: str) -> list:
    """The runs of ``parent_id``'s subflows, newest first."""
    return [run for run in store.read_runs(limit=1000) if run.parent_flow_run_id == parent_id]


def all_states(store, flow_run_id: str) -> list:
    """Every state of a flow run and of its task runs, in the order they were stored."""
    return [row for row in store.read_states() if row.flow_run_id == flow_run_id]


def logs_of(store, flow_run_id: str | None = None, task_run_id: str | None = None) -> list:
    """Every log line stored of a flow run, or of a task run, in id order."""
    from gnomon.store import LogQuery

    rows = store.search_logs(LogQuery(flow_run_id=flow_run_id), None, newest=False)
    return [row for row in rows if task_run_id is None or row.task_run_id == task_run_id]


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A webhook receiver on loopback (``test_notify.Receiver``), closed after the test."""
    from test_notify import Receiver

    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def daemons() -> Iterator[list[subprocess.Popen[str]]]:
    """Daemon subprocesses a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.fixture
def netns() -> Iterator[Any]:
    """A network namespace linked to a private PostgreSQL, to cut off at will
    (``netns.Network``; skipped where namespaces cannot be made)."""
    from netns import private_network

    with private_network() as network:
        yield network
