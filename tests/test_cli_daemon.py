"""The ``gnomon`` script as operators use it around the daemon: ``deployments list``,
``runs list``, ``daemon --detach``/``stop``/``status``/``reload``, and every ``--help``.

Everything runs the installed script in a subprocess against a real SQLite store, with a
real daemon where one is needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest

from gnomon.cli import main
from gnomon.daemon import read_pidfile
from gnomon.daemon._lock import DaemonLock, find_holder, lock_path
from gnomon.deployments import load_config, sync_deployments
from gnomon.states import parse_state_filter
from gnomon.store import Actor, Store
from test_daemon import INTERVAL_TICK, completed, start_daemon, wait_for, write_config

pytestmark = pytest.mark.backends

GNOMON = Path(sys.executable).with_name("gnomon")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
MS = timedelta(milliseconds=1)  # the CLI prints times to the millisecond
RUN_COLUMNS = (
    "id",
    "deployment",
    "flow",
    "state",
    "trigger",
    "scheduled_for",
    "started_at",
    "ended_at",
)
FAILED = parse_state_filter("failed")
RUN_TIMES = {"scheduled_for": "scheduled_for", "started_at": "start_time", "ended_at": "end_time"}

SCHEDULES = """
[[deployments]]
name = "nightly"
flow = "flows.py:tick"
cron = "30 2 * * *"
timezone = "America/New_York"

[[deployments]]
name = "quarterly"
flow = "flows.py:tick"
interval = "15m"
"""

ADDED = """
[[deployments]]
name = "added"
flow = "flows.py:tick"
interval = "1s"
"""

SLOW = """
[[deployments]]
name = "slowpoke"
flow = "flows.py:slow"
interval = "1s"
"""


def holder_of(home: Path) -> dict[str, Any] | None:
    """The daemon holding the lock of the store at its default place in ``home``."""
    return find_holder(home, f"sqlite:///{home / 'gnomon.db'}")


def gnomon(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``gnomon`` script against the store in ``home``."""
    assert GNOMON.is_file(), f"the gnomon script is not installed beside {sys.executable}"
    return subprocess.run(
        [str(GNOMON), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GNOMON_HOME": str(home), **env},
        check=False,
    )


def table(stdout: str) -> list[list[str]]:
    """A printed table's lines split into cells (columns are two or more spaces apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines()]


def utc(text: str) -> datetime:
    """A time the CLI printed, which must be ISO 8601 in UTC with a Z."""
    assert ISO_UTC.fullmatch(text), f"{text!r} is not ISO 8601 UTC with a Z"
    return datetime.fromisoformat(text)


def near(printed: str | None, expected: datetime | None) -> bool:
    """Whether the printed time is ``expected`` cut to the millisecond (None, or "-" in a
    table, for None)."""
    if printed in (None, "-") or expected is None:
        return printed in (None, "-") and expected is None
    return timedelta(0) <= expected - utc(printed) < MS


def _gone(pid: int, still_running: Callable[[], bool]) -> None:
    """End a daemon we did not start as a child: SIGTERM, then SIGKILL after a deadline."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        try:
            wait_for(lambda: not still_running(), timeout=15, what=f"pid {pid} to exit")
        except AssertionError:
            continue  # SIGTERM was not enough: SIGKILL
        return


@pytest.fixture
def foreground(gnomon_home: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Starts foreground daemons on the test's store; whatever still runs is ended after."""
    started: list[subprocess.Popen[str]] = []

    def start(config: Path, **env: str) -> subprocess.Popen[str]:
        started.append(start_daemon(config, gnomon_home, **env))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        process.communicate(timeout=10)


@pytest.fixture
def pidfiles(gnomon_home: Path) -> Iterator[list[Path]]:
    """Pidfiles of detached daemons; each daemon still running is ended after the test."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        pid = read_pidfile(path)
        if pid is not None:
            _gone(pid, lambda path=path, pid=pid: read_pidfile(path) == pid)
    holder = holder_of(gnomon_home)  # a detached daemon that lost its pidfile
    if holder and "pid" in holder:
        _gone(int(holder["pid"]), lambda: holder_of(gnomon_home) == holder)


# gnomon deployments list


def test_deployments_list_before_any_sync_shows_the_files_deployments_as_not_loaded(
    tmp_path: Path, gnomon_home: Path, store
) -> None:
    config = write_config(tmp_path, SCHEDULES)
    listed = gnomon(gnomon_home, "deployments", "list", "--config", str(config))
    as_json = gnomon(gnomon_home, "deployments", "list", "--config", str(config), "--json")

    assert listed.returncode == 0, listed.stderr
    header, *rows = table(listed.stdout)
    assert header == [
        *("NAME", "SCHEDULE", "TIMEZONE", "PAUSED", "NEXT_FIRE", "LAST_RUNS", "CONFIG")
    ]
    # Nothing schedules them yet, so nothing fires them: no next fire.
    assert rows == [
        ["nightly", "cron 30 2 * * *", "America/New_York", "no", "-", "-", "not loaded"],
        ["quarterly", "interval 15m", "-", "no", "-", "-", "not loaded"],
    ]
    assert "no daemon is running on this store" in listed.stderr

    assert as_json.returncode == 0, as_json.stderr
    listed_json = json.loads(as_json.stdout)
    assert [item["name"] for item in listed_json] == ["nightly", "quarterly"]
    for item in listed_json:
        assert {"name", "schedule", "timezone", "paused", "next_fire"} <= item.keys()
        assert (item["next_fire"], item["loaded"], item["in_config"]) == (None, False, True)
        assert (item["config_drift"], item["changed_fields"]) == ("not_loaded", [])
    first, second = listed_json
    assert (first["schedule"], first["timezone"], first["paused"]) == (
        "cron 30 2 * * *",
        "America/New_York",
        False,
    )
    assert (second["schedule"], second["timezone"], second["paused"]) == (
        "interval 15m",
        None,
        False,
    )
    assert store.read_deployments() == []  # listing registers nothing, so anchors nothing


def test_deployments_list_shows_a_deployment_paused_in_the_store_with_no_next_fire(
    tmp_path: Path, gnomon_home: Path, store
) -> None:
    config = write_config(tmp_path, SCHEDULES)
    deployments = load_config(config, check_flows=False).config.deployments
    now = datetime.now(UTC)
    sync_deployments(store, deployments, now)
    assert store.set_paused(["nightly"], True, Actor("test", "cli"), "maintenance window", now)
    quarterly = deployments[1].timing(store.read_deployment("quarterly").anchor)

    start = datetime.now(UTC)
    listed = gnomon(gnomon_home, "deployments", "list", "--config", str(config))
    as_json = gnomon(gnomon_home, "deployments", "list", "--config", str(config), "--json")
    end = datetime.now(UTC)

    assert listed.returncode == 0, listed.stderr
    _, nightly_row, quarterly_row = table(listed.stdout)
    assert nightly_row == ["nightly", "cron 30 2 * * *", "America/New_York", "yes", "-", "-", "ok"]
    assert (quarterly_row[3], quarterly_row[5:]) == ("no", ["-", "ok"])
    # The stored anchor, not the time of listing, places an interval's fires.
    expected = {quarterly.next_fire(start), quarterly.next_fire(end)}
    assert any(near(quarterly_row[4], fire) for fire in expected)

    assert as_json.returncode == 0, as_json.stderr
    nightly_json, quarterly_json = json.loads(as_json.stdout)
    assert (nightly_json["paused"], nightly_json["next_fire"]) == (True, None)
    assert quarterly_json["paused"] is False
    assert any(near(quarterly_json["next_fire"], fire) for fire in expected)


# gnomon runs list


BROKEN = """
[[deployments]]
name = "broken"
flow = "broken.py:boom"
interval = "1s"
"""


@dataclasses.dataclass(frozen=True)
class Fired:
    """A store a daemon fired runs into (ticker: Completed, broken: Failed) and then left."""

    home: Path
    runs: list[dict[str, Any]]  # as the store has them, newest first


@pytest.fixture(scope="module")
def fired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fired]:
    root = tmp_path_factory.mktemp("fired")
    home = root / "home"
    config = write_config(root, INTERVAL_TICK + BROKEN)
    (root / "broken.py").write_text(
        textwrap.dedent(
            """
            from gnomon import flow

            @flow
            def boom() -> None:
                raise RuntimeError("boom")
            """
        )
    )
    store = Store(f"sqlite:///{home / 'gnomon.db'}")  # migrated before the daemon starts
    daemon = start_daemon(config, home)
    try:
        wait_for(completed(store, "ticker", 2), what="two completed ticker runs")
        wait_for(lambda: len(store.read_runs("broken", FAILED)) >= 2, what="two failed broken runs")
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
        assert daemon.returncode == 0, err
        yield Fired(home, store.read_runs(limit=1000))
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate(timeout=10)
        store.close()


@pytest.mark.sqlite_only  # the module's fired store is a SQLite file
def test_runs_list_prints_every_column_newest_first_with_utc_times(fired: Fired) -> None:
    result = gnomon(fired.home, "runs", "list")

    assert result.returncode == 0, result.stderr
    header, *rows = table(result.stdout)
    assert header == [column.upper() for column in RUN_COLUMNS]
    assert [row[0] for row in rows] == [run.id for run in fired.runs]
    for row, run in zip(rows, fired.runs, strict=True):
        cells = dict(zip(RUN_COLUMNS, row, strict=True))
        assert (cells["deployment"], cells["state"], cells["trigger"]) == (
            run.deployment_name,
            run.state_name,
            "schedule",
        )
        assert cells["flow"] == {"ticker": "tick", "broken": "boom"}[run.deployment_name]
        for column, field in RUN_TIMES.items():
            assert near(cells[column], getattr(run, field)), (
                column,
                cells[column],
                getattr(run, field),
            )


@pytest.mark.sqlite_only  # the module's fired store is a SQLite file
def test_runs_list_json_gives_the_same_runs_as_objects(fired: Fired) -> None:
    result = gnomon(fired.home, "runs", "list", "--json")

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [item["id"] for item in listed] == [run.id for run in fired.runs]
    for item, run in zip(listed, fired.runs, strict=True):
        assert item.keys() == {*RUN_COLUMNS, "generation"}  # the table leaves it out
        assert (item["deployment"], item["state"], item["trigger"]) == (
            run.deployment_name,
            run.state_name,
            run.trigger,
        )
        for column, field in RUN_TIMES.items():
            assert near(item[column], getattr(run, field)), (
                column,
                item[column],
                getattr(run, field),
            )


@pytest.mark.sqlite_only  # the module's fired store is a SQLite file
@pytest.mark.parametrize(
    ("options", "wanted"),
    [
        (["--deployment", "ticker"], lambda run: run.deployment_name == "ticker"),
        (["--state", "Completed"], lambda run: run.state_name == "Completed"),
        (["--state", "COMPLETED"], lambda run: run.state_type == "COMPLETED"),
        (["--state", "FAILED"], lambda run: run.state_type == "FAILED"),
        (["--deployment", "broken", "--state", "Completed"], lambda run: False),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_runs_list_filters_by_deployment_and_by_state_name_or_type(
    fired: Fired, options: list[str], wanted: Callable[[dict[str, Any]], bool]
) -> None:
    result = gnomon(fired.home, "runs", "list", *options, "--json")

    assert result.returncode == 0, result.stderr
    expected = [run.id for run in fired.runs if wanted(run)]
    assert [item["id"] for item in json.loads(result.stdout)] == expected
    assert len({run.id for run in fired.runs}) > len(expected)  # the filter left some out


@pytest.mark.sqlite_only  # the module's fired store is a SQLite file
def test_runs_list_limit_keeps_the_newest_runs(fired: Fired) -> None:
    one = gnomon(fired.home, "runs", "list", "--limit", "1", "--json")
    table_of_one = gnomon(fired.home, "runs", "list", "--limit", "1")

    assert one.returncode == 0, one.stderr
    assert [item["id"] for item in json.loads(one.stdout)] == [fired.runs[0].id]
    assert [row[0] for row in table(table_of_one.stdout)[1:]] == [fired.runs[0].id]


def test_runs_list_limit_below_one_is_a_usage_error_naming_it(gnomon_home: Path) -> None:
    result = gnomon(gnomon_home, "runs", "list", "--limit", "0")

    assert result.returncode == 2
    assert "--limit" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_runs_list_on_an_empty_store_prints_no_rows_and_succeeds(gnomon_home: Path) -> None:
    listed = gnomon(gnomon_home, "runs", "list")
    as_json = gnomon(gnomon_home, "runs", "list", "--json")

    assert (listed.returncode, listed.stdout) == (0, "")
    assert "Traceback" not in listed.stderr
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == []


# gnomon daemon --detach, stop, status, reload


def test_detach_returns_at_once_and_stop_and_status_work_from_the_pidfile(
    tmp_path: Path, gnomon_home: Path, store, pidfiles: list[Path]
) -> None:
    config = write_config(tmp_path, INTERVAL_TICK)
    pidfile = tmp_path / "run" / "gnomon.pid"
    other = tmp_path / "run" / "other.pid"
    pidfiles.extend([pidfile, other])

    started = gnomon(
        gnomon_home, "daemon", "--detach", "--pidfile", str(pidfile), "--config", str(config)
    )

    assert started.returncode == 0, started.stderr
    pid = read_pidfile(pidfile)  # it returns once the daemon is ready
    assert pid is not None
    assert started.stdout == f"gnomon daemon started: pid {pid}, 1 deployments\n"
    wait_for(completed(store, "ticker", 2), what="the detached daemon firing runs")

    # Its health monitor rewrites the status file every second or so: the first one it
    # wrote may predate the first tick.
    status = wait_for(
        lambda: (
            (
                result := gnomon(gnomon_home, "daemon", "status", "--pidfile", str(pidfile))
            ).stdout.startswith(f"gnomon daemon is running (pid {pid}): ok, last tick ")
            and result
        ),
        what="the status with its last tick",
    )
    assert status.returncode == 0
    before_subcommand = gnomon(gnomon_home, "daemon", "--pidfile", str(pidfile), "status")
    assert before_subcommand.returncode == 0, before_subcommand.stderr
    second = gnomon(
        gnomon_home, "daemon", "--detach", "--pidfile", str(other), "--config", str(config)
    )
    assert second.returncode == 1
    assert f"pid {pid}" in second.stderr
    assert not other.exists()

    stopped = gnomon(gnomon_home, "daemon", "stop", "--pidfile", str(pidfile))

    assert (stopped.returncode, stopped.stdout) == (0, "daemon stopped\n"), stopped.stderr
    assert not pidfile.exists()
    assert holder_of(gnomon_home) is None  # the store is free for the next daemon
    after = gnomon(gnomon_home, "daemon", "status", "--pidfile", str(pidfile))
    assert (after.returncode, after.stdout) == (3, "gnomon daemon is not running\n")
    again = gnomon(gnomon_home, "daemon", "stop", "--pidfile", str(pidfile))
    assert again.returncode == 1
    assert "no gnomon daemon is running" in again.stderr
    assert str(pidfile) in again.stderr
    assert "Traceback" not in again.stderr
    states = {run.state_name for run in store.read_runs("ticker", limit=1000)}
    assert states == {"Completed"}  # stopped cleanly, no run left behind Running


def test_of_two_detached_daemons_started_at_once_on_one_store_one_exits_0_and_one_1(
    tmp_path: Path, gnomon_home: Path, store, pidfiles: list[Path]
) -> None:
    config = write_config(tmp_path, INTERVAL_TICK)
    paths = [tmp_path / "run" / f"gnomon-{i}.pid" for i in range(2)]
    pidfiles.extend(paths)
    environment = {**os.environ, "GNOMON_HOME": str(gnomon_home)}

    launched = [
        subprocess.Popen(
            [str(GNOMON), "daemon", "--detach", "--pidfile", str(path), "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for path in paths
    ]
    outcomes = sorted((process.wait(timeout=60), *process.communicate()) for process in launched)

    (won, won_out, _), (lost, _, lost_err) = outcomes
    assert (won, lost) == (0, 1), outcomes
    assert won_out.startswith("gnomon daemon started: pid ")
    assert "another" in lost_err
    assert "running" in lost_err
    assert sum(read_pidfile(path) is not None for path in paths) == 1


def test_reload_status_and_stop_without_a_pidfile_act_on_the_daemon_holding_the_store(
    tmp_path: Path, gnomon_home: Path, store, foreground
) -> None:
    config = write_config(tmp_path, INTERVAL_TICK)
    daemon = foreground(config)
    wait_for(completed(store, "ticker", 1), what="the daemon running")

    status = gnomon(gnomon_home, "daemon", "status")
    assert status.returncode == 0
    assert status.stdout.startswith(f"gnomon daemon is running (pid {daemon.pid}): ok")

    config.write_text(config.read_text() + ADDED)
    reload = gnomon(gnomon_home, "daemon", "reload")

    # It waits for the daemon's outcome, which it prints.
    assert reload.returncode == 0, reload.stderr
    assert reload.stdout.splitlines() == ["added: added", "applied: 1 added, 0 removed, 0 changed"]
    wait_for(completed(store, "added", 1), what="the added deployment firing after the reload")
    # Audited once, as the CLI's user who asked, with what the reload changed.
    reloads = [entry for entry in store.read_audit() if entry.action == "reload"]
    assert [entry.origin for entry in reloads] == ["cli"]
    assert reloads[0].detail["added"] == ["added"]

    stopped = gnomon(gnomon_home, "daemon", "stop")

    assert (stopped.returncode, stopped.stdout) == (0, "daemon stopped\n"), stopped.stderr
    # "stopped" means the store is free: a daemon started now would not be refused.
    assert gnomon(gnomon_home, "daemon", "status").returncode == 3
    assert daemon.wait(timeout=30) == 0


def test_stop_without_a_pidfile_returns_once_the_daemon_has_let_go_of_the_store(
    tmp_path: Path, gnomon_home: Path, store, foreground
) -> None:
    """A run in flight holds the daemon for shutdown_grace: stop waits that out."""
    marker = tmp_path / "slow-started"
    config = write_config(tmp_path, SLOW)
    config.write_text(config.read_text().replace('shutdown_grace = "5s"', 'shutdown_grace = "1s"'))
    daemon = foreground(config, SLOW_MARKER=str(marker))
    wait_for(marker.exists, what="a slow run in flight")

    stopped = gnomon(gnomon_home, "daemon", "stop")

    assert (stopped.returncode, stopped.stdout) == (0, "daemon stopped\n"), stopped.stderr
    assert holder_of(gnomon_home) is None  # `gnomon daemon` may start again at once
    assert daemon.wait(timeout=30) == 0
    states = {run.state_name for run in store.read_runs("slowpoke", limit=1000)}
    assert "Cancelled" in states  # the run in flight, ended after the grace
    assert not states & {"Running", "Pending"}


@pytest.mark.parametrize("command", ["reload", "stop"])
def test_without_a_daemon_reload_and_stop_exit_1_saying_so(gnomon_home: Path, command: str) -> None:
    result = gnomon(gnomon_home, "daemon", command)

    assert result.returncode == 1
    assert result.stderr == "no gnomon daemon is running on this store\n"


def test_without_a_daemon_status_exits_3_like_systemctl(gnomon_home: Path) -> None:
    result = gnomon(gnomon_home, "daemon", "status")

    assert (result.returncode, result.stdout) == (3, "gnomon daemon is not running\n")


def test_commands_not_given_the_daemons_database_url_say_which_store_it_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PostgreSQL daemon's lock is in its home, where a command not given its URL finds it
    # while looking for a SQLite file that is not there.
    gnomon_home = tmp_path / "home"
    monkeypatch.delenv("GNOMON_DATABASE_URL", raising=False)
    url = "postgresql+psycopg://gnomon:secret@db.internal:5432/gnomon"
    store = "postgresql+psycopg://gnomon:***@db.internal:5432/gnomon"
    assert DaemonLock.for_store(gnomon_home, url).store == store
    lock = DaemonLock(lock_path(gnomon_home, url), store=store)
    lock.acquire()
    try:
        runs = gnomon(gnomon_home, "runs", "list")
        status = gnomon(gnomon_home, "daemon", "status")
    finally:
        lock.release()

    told = f"the daemon running in this home (pid {os.getpid()}) uses {store}"
    assert runs.returncode == 1
    assert f"there is no store at {gnomon_home / 'gnomon.db'}: {told}" in runs.stderr
    assert "GNOMON_DATABASE_URL" in runs.stderr
    assert not (gnomon_home / "gnomon.db").exists()
    assert told in status.stdout
    assert "secret" not in runs.stderr + status.stdout


def test_a_daemon_on_a_sqlite_file_named_through_a_link_is_on_the_commands_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same file, by another path: the command is told the file is gone, not that the
    # daemon uses another store.
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.delenv("GNOMON_DATABASE_URL", raising=False)
    database = tmp_path / "link" / "gnomon.db"
    lock = DaemonLock(lock_path(real, f"sqlite:///{real / 'gnomon.db'}"), store=str(database))
    lock.acquire()
    try:
        runs = gnomon(real, "runs", "list")
    finally:
        lock.release()

    assert runs.returncode == 1
    assert f"the database {real / 'gnomon.db'} is missing but daemon pid" in runs.stderr


# A missing config file


COMMANDS = [
    ["daemon"],
    ["daemon", "--detach", "--pidfile", "gnomon.pid"],
    ["daemon", "status"],
    ["deployments", "list"],
    ["runs", "list"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_config_option_naming_a_missing_file_is_an_error_naming_it(
    tmp_path: Path, gnomon_home: Path, command: list[str]
) -> None:
    missing = tmp_path / "missing.toml"

    result = gnomon(gnomon_home, *command, "--config", str(missing))

    assert result.returncode == 2
    assert f"{missing}' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "gnomon.pid").exists()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_gnomon_config_naming_a_missing_file_is_an_error_naming_it(
    tmp_path: Path, gnomon_home: Path, command: list[str]
) -> None:
    missing = tmp_path / "missing.toml"

    result = gnomon(gnomon_home, *command, GNOMON_CONFIG=str(missing))

    assert result.returncode == 2
    assert f"GNOMON_CONFIG={missing}: no such file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "gnomon.pid").exists()


# --help


def _command_paths(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, subcommand in sorted(command.commands.items()):
            yield from _command_paths(subcommand, (*path, name))


@pytest.mark.sqlite_only  # --help never opens the store: once is enough
@pytest.mark.parametrize(
    "path",
    [pytest.param(path, id=" ".join(("gnomon", *path))) for path in _command_paths(main)],
)
def test_every_command_help_has_an_example_of_that_command(
    gnomon_home: Path, path: tuple[str, ...]
) -> None:
    result = gnomon(gnomon_home, *path, "--help")

    assert result.returncode == 0, result.stderr
    _, found, examples = result.stdout.partition("Example")
    assert found, f"no Example section in:\n{result.stdout}"
    assert " ".join(("gnomon", *path)) in examples


def test_gnomon_dashboard_prints_where_the_daemon_serves_it(
    tmp_path: Path, gnomon_home: Path
) -> None:
    def dashboard(daemon: str) -> Any:
        config = tmp_path / "gnomon.toml"
        config.write_text(f"[daemon]\n{daemon}\n")
        return gnomon(gnomon_home, "dashboard", "--config", str(config))

    assert dashboard('api = "127.0.0.1:9191"').stdout == "http://127.0.0.1:9191/\n"
    assert dashboard('public_url = "https://gnomon.example.com/"').stdout == (
        "https://gnomon.example.com/\n"
    )
    off = dashboard('api = "off"')
    assert off.returncode == 1
    assert 'the dashboard is off: [daemon] api = "off" in ' in off.stderr
    broken = dashboard("api = ")
    assert broken.returncode == 1
    assert "gnomon.toml" in broken.stderr
    assert "Traceback" not in broken.stderr
