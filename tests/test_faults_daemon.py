"""The daemon under the faults of real operations: signal floods and parallel CLI writers,
a store another program locks, a full or read-only file system, a stuck loop, and broken
config reloads. Real daemon subprocesses, real signals, real SQLite files, real HTTP.

Each test checks what users rely on afterwards (see ``invariants``): every fire time has one
row, no run has two final states, nothing is left Running, the file passes integrity_check.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import REPO
from faults import Database, assert_every_fire_once, assert_store_sound, fire_times, read_rows
from test_cli_daemon import gnomon
from test_daemon import INTERVAL_TICK, start_daemon, wait_for, write_config

pytestmark = pytest.mark.slow

SECOND = timedelta(seconds=1)


def serving(
    tmp_path: Path, home: Path, daemons: list[Any], deployments: str, settings: str = ""
) -> Any:
    """A daemon with its API on ``deployments`` (and ``[daemon]`` ``settings``) that is
    ready and has fired each once: (the process, its API's URL, its database). Its output
    goes to files in ``tmp_path``, off the store's file system.

    Ready, not only fired: the start-up's catch-up fires before READY=1, and a fault
    injected before then is one in the start-up (which ends it), not under a running
    daemon."""
    daemon_table = f'workers = 2\napi = "127.0.0.1:0"\n{settings}'
    config = write_config(tmp_path, deployments, daemon=daemon_table)
    daemon = start_daemon(config, home, output_dir=tmp_path)
    daemons.append(daemon)
    url = api_url(daemon)
    wait_ready(daemon)
    database: Database = os.environ.get("GNOMON_DATABASE_URL") or home / "gnomon.db"
    count = deployments.count("[[deployments]]")
    wait_for(lambda: row_count(database) >= count, what="the first fires")
    return daemon, url, database


def tickers(count: int, every: str = "1s") -> str:
    return "".join(
        f'\n[[deployments]]\nname = "d{i}"\nflow = "flows.py:tick"\ninterval = "{every}"\n'
        for i in range(count)
    )


def wait_ready(daemon: Any) -> None:
    """Until the daemon logs that it is ready (its timer runs, its catch-up is done)."""
    for line in daemon.output_lines(30):
        if line.startswith("{") and json.loads(line)["event"].startswith("daemon ready"):
            return
    raise AssertionError("the daemon never became ready")


def api_url(process: Any, timeout: float = 30) -> str:
    """The API's URL, from the daemon's "api listening" log line."""
    for line in process.output_lines(timeout):
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("api_url"):
            return str(event["api_url"])
    raise AssertionError("the daemon never said where its API listens")


def healthz(url: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{url}/healthz", timeout=5)
    return response.status_code, response.json()


def row_count(database: Database) -> int:
    """Runs in the store; 0 before the daemon has created it (never creates the file)."""
    if isinstance(database, str):
        return int(read_rows(database, "SELECT count(*) FROM flow_runs")[0][0])
    if not database.exists():
        return 0
    uri = f"file:{database}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
        try:
            return int(connection.execute("SELECT count(*) FROM flow_runs").fetchone()[0])
        except sqlite3.OperationalError:  # not migrated yet
            return 0


def stop(daemon: Any, within: float = 30) -> str:
    """SIGTERM the daemon; it must exit 0 within ``within`` seconds. Returns its stdout."""
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=within) == 0, daemon.error_path.read_text()[-2000:]
    return daemon.output_path.read_text()


def hook_dir(tmp_path: Path, hook: str) -> Path:
    """A directory for the daemon's PYTHONPATH whose ``sitecustomize`` injects ``hook``
    (the daemon's own code carries no test hooks)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(hook)
    return hooks


def events(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


# Signals.


def test_a_flood_of_sigusr1_and_parallel_pause_resume_never_stop_the_fires(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    """Every `gnomon pause/resume` sends SIGUSR1: a handler that took a lock froze the loop
    within seconds under such a burst, and SIGTERM then did nothing."""
    daemon, url, database = serving(tmp_path, gnomon_home, daemons, tickers(30))

    done = threading.Event()

    def flood() -> None:
        while not done.is_set():
            os.kill(daemon.pid, signal.SIGUSR1)
            time.sleep(0.001)

    def pause_resume(name: str) -> None:
        while not done.is_set():
            for command in ("pause", "resume"):
                gnomon(gnomon_home, command, name)

    threads = [threading.Thread(target=flood)] + [
        threading.Thread(target=pause_resume, args=(f"d{i}",)) for i in range(4)
    ]
    for thread in threads:
        thread.start()
    try:
        counts = []
        for _ in range(5):
            before = row_count(database)
            wait_for(
                lambda before=before: row_count(database) >= before + 30,
                timeout=10,
                what="fires still being created during the flood",
            )
            counts.append(row_count(database))
            code, body = healthz(url)
            assert (code, body["status"]) == (200, "ok")
    finally:
        done.set()
        for thread in threads:
            thread.join()
    # SIGTERM still works at once, the flood notwithstanding.
    started = time.monotonic()
    stop(daemon, within=15)
    assert time.monotonic() - started < 15
    for name in (f"d{i}" for i in range(4, 30)):  # the ones never paused
        assert_every_fire_once(database, name, SECOND)
    assert_store_sound(database)


# The store failing under the daemon.


@contextlib.contextmanager
def external_write_lock(database: Path) -> Iterator[None]:
    """Another program holding the database's write lock (BEGIN IMMEDIATE)."""
    connection = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def test_a_store_locked_by_another_program_degrades_the_daemon_which_then_catches_up(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    daemon, url, database = serving(tmp_path, gnomon_home, daemons, tickers(3))

    with external_write_lock(database):
        degraded = wait_for(
            lambda: healthz(url)[1]["status"] == "degraded", timeout=15, what="degraded"
        )
        assert degraded
        code, body = healthz(url)
        assert code == 200
        assert body["reason"].startswith(("the store cannot be written", "waiting"))
        # The status file follows within the monitor's half second.
        status = wait_for(
            lambda: (done := gnomon(gnomon_home, "daemon", "status")).returncode == 1 and done,
            what="daemon status saying degraded",
        )
        assert "degraded" in status.stdout
        time.sleep(6)  # several of its store attempts fail meanwhile
        assert daemon.poll() is None
    wait_for(lambda: healthz(url)[1]["status"] == "ok", timeout=20, what="ok again")
    after = row_count(database)
    wait_for(lambda: row_count(database) >= after + 6, what="fires after the outage")

    output = stop(daemon)
    lines = events(output)
    failures = [e for e in lines if e.get("error_type") == "OperationalError"]
    assert failures
    assert failures[0]["level"] == "error"
    assert "database is locked" in failures[0]["event"]
    assert any("the store works again" in e["event"] for e in lines)
    with contextlib.closing(sqlite3.connect(database)) as connection:
        missed = connection.execute(
            "SELECT count(*) FROM flow_runs WHERE state_name = 'Missed'"
            " AND state_message LIKE 'missed while the store failed%'"
        ).fetchone()[0]
    assert missed > 0  # the outage was downtime for catchup = "latest"
    for name in ("d0", "d1", "d2"):
        assert_every_fire_once(database, name, SECOND)
    assert_store_sound(database)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 128 MB tmpfs of the test's own (root can mount one; others skip)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` up; returns the filler file."""
    filler = directory / "filler"
    with filler.open("wb") as stream:
        chunk = b"\0" * (1 << 20)
        with contextlib.suppress(OSError):
            while True:
                stream.write(chunk)
                stream.flush()
    return filler


def test_below_the_free_space_floor_runs_go_on_but_their_log_lines_are_not_kept(
    tmp_path: Path, small_tmpfs: Path, daemons: list[Any]
) -> None:
    home = small_tmpfs / "home"
    config = write_config(
        tmp_path, tickers(2), daemon='workers = 2\napi = "127.0.0.1:0"\nmin_free_space = "30MB"'
    )
    daemon = start_daemon(config, home, output_dir=tmp_path)
    daemons.append(daemon)
    url = api_url(daemon)
    database: Database = os.environ.get("GNOMON_DATABASE_URL") or home / "gnomon.db"
    wait_for(lambda: row_count(database) >= 4, what="the first fires")
    filler = small_tmpfs / "filler"
    free = shutil.disk_usage(small_tmpfs).free
    with filler.open("wb") as stream:  # leave 10 MB: below the floor, not full
        stream.write(b"\0" * (free - 10_000_000))

    wait_for(lambda: healthz(url)[1].get("reason") == "low disk space", what="low disk space")
    time.sleep(3)  # rows queued before each process read the free space are written
    lines = log_rows(database)
    count = row_count(database)
    wait_for(lambda: row_count(database) >= count + 6, what="runs still created and stored")
    assert log_rows(database) == lines  # their log lines were not
    filler.unlink()
    wait_for(lambda: healthz(url)[1]["status"] == "ok", timeout=20, what="room again")
    wait_for(lambda: log_rows(database) > lines, what="log lines stored again")

    said = [e["event"] for e in events(stop(daemon)) if "free on the store's disk" in e["event"]]
    assert len(said) == 2
    assert said[0].startswith("only ")
    assert "again" in said[1]
    for name in ("d0", "d1"):
        assert_every_fire_once(database, name, SECOND)
    assert_store_sound(database)


def log_rows(database: Path) -> int:
    uri = f"file:{database}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
        return int(connection.execute("SELECT count(*) FROM run_logs").fetchone()[0])


def test_a_full_file_system_degrades_the_daemon_until_space_is_freed(
    tmp_path: Path, small_tmpfs: Path, daemons: list[Any]
) -> None:
    home = small_tmpfs / "home"
    # No free-space floor: the log file's own write errors are what is tested here.
    daemon, url, database = serving(tmp_path, home, daemons, tickers(3), "min_free_space = 0")

    filler = fill(small_tmpfs)
    wait_for(lambda: healthz(url)[1]["status"] == "degraded", timeout=20, what="degraded")
    time.sleep(4)
    assert daemon.poll() is None
    assert healthz(url)[1]["status"] == "degraded"
    filler.unlink()
    wait_for(lambda: healthz(url)[1]["status"] == "ok", timeout=30, what="ok again")
    after = row_count(database)
    wait_for(lambda: row_count(database) >= after + 6, what="fires after the fault")

    output = stop(daemon)
    # The log file that could not be written is told once each way on stdout, never as a
    # traceback per line.
    said = [
        e["event"]
        for e in events(output)
        if e["event"].startswith(("cannot write the log", "the log file"))
    ]
    assert len(said) == 2, said
    assert "Traceback" not in daemon.error_path.read_text()
    for name in ("d0", "d1", "d2"):
        assert_every_fire_once(database, name, SECOND)
    assert_store_sound(database)


class Volume:
    """A small ext4 file system on a loop device, mounted ``errors=remount-ro`` as system
    disks are: ``fail()`` raises an ext4 error, which turns it read-only under the open
    files, as a failing disk does; ``repair()`` checks and mounts it again (nothing may
    have it open)."""

    def __init__(self, image: Path, mount: Path) -> None:
        self.image = image
        self.path = mount

    def mount(self) -> None:
        subprocess.run(
            ["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.path)],
            check=True,
            capture_output=True,
        )

    def fail(self) -> None:
        device = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", str(self.path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("gnomon test\n")

    def repair(self) -> None:
        subprocess.run(["umount", str(self.path)], check=True, capture_output=True)
        # e2fsck exits 1 when it fixed something: the error the test raised.
        fsck = subprocess.run(
            ["e2fsck", "-fy", str(self.image)], check=False, capture_output=True, text=True
        )
        assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr
        self.mount()


@pytest.fixture
def ext4_volume(tmp_path: Path) -> Iterator[Volume]:
    """A 64 MB ext4 volume of the test's own (root with loop devices; others skip)."""
    missing = [tool for tool in ("mkfs.ext4", "e2fsck", "findmnt") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (e2fsprogs, util-linux)")
    image, mount = tmp_path / "volume.img", tmp_path / "volume"
    mount.mkdir()
    with image.open("wb") as stream:
        stream.truncate(64 << 20)
    made = subprocess.run(
        ["mkfs.ext4", "-q", "-F", str(image)], check=False, capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot make an ext4 file system here: {made.stderr.strip()}")
    volume = Volume(image, mount)
    try:
        volume.mount()
    except subprocess.CalledProcessError as error:
        pytest.skip(f"cannot mount a loop device here: {error.stderr.decode().strip()}")
    try:
        yield volume
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_store_whose_disk_turns_read_only_degrades_the_daemon_which_stops_cleanly(
    tmp_path: Path, ext4_volume: Volume, daemons: list[Any]
) -> None:
    """A disk error remounts the store's file system read-only under the running daemon:
    it stays up and says why, stops on SIGTERM, and once the disk is repaired, the next
    daemon settles what the first could not store and records the outage's fires as
    Missed (``catchup`` is off) - one row per fire time, nothing left Running."""
    home = ext4_volume.path / "home"
    daemon, url, database = serving(tmp_path, home, daemons, tickers(3))

    ext4_volume.fail()
    wait_for(lambda: healthz(url)[1]["status"] == "degraded", timeout=20, what="degraded")
    time.sleep(3)
    assert daemon.poll() is None
    assert healthz(url)[1]["status"] == "degraded"
    # Its status file cannot be rewritten either (nor created, if the disk failed before
    # the daemon's health monitor started): `daemon status` tells why from the file system
    # once the file has gone silent or if there is none, rather than calling the daemon
    # stuck or its health unknown.
    said = [""]

    def status_says_read_only() -> bool:
        said[0] = gnomon(home, "daemon", "status").stdout
        return "read-only" in said[0]

    try:
        wait_for(status_says_read_only, timeout=20, what="daemon status saying why")
    except AssertionError as error:
        files = sorted(p.name for p in home.iterdir())
        raise AssertionError(f"{error}; it said: {said[0]!r}; home has {files}") from None
    status = gnomon(home, "daemon", "status")
    assert status.returncode == 1, status
    assert "degraded" in status.stdout, status
    output = stop(daemon)
    errors = [e for e in events(output) if e.get("level") == "error"]
    assert any("read-only" in str(e).lower() for e in errors), errors[-3:]
    assert "Traceback" not in daemon.error_path.read_text()
    # Nor did a worker die in the interpreter's shutdown (its output is relayed in the log).
    lines = (output + daemon.error_path.read_text()).splitlines()
    assert not [line for line in lines if "Fatal Python error" in line], lines[-20:]

    ext4_volume.repair()
    config = write_config(tmp_path, tickers(3), daemon='workers = 2\napi = "127.0.0.1:0"')
    again = start_daemon(config, home, output_dir=tmp_path)
    daemons.append(again)
    api_url(again)
    after = row_count(database)
    wait_for(lambda: row_count(database) >= after + 6, what="fires after the repair")
    stop(again)
    for name in ("d0", "d1", "d2"):
        assert_every_fire_once(database, name, SECOND)
    assert_store_sound(database)


# A stuck loop.

STUCK_HOOK = textwrap.dedent(
    """
    import os, sys, time

    flag = os.environ.get("GNOMON_STUCK_FLAG")
    if flag and "gnomon.daemon._template" not in sys.orig_argv:
        from gnomon.daemon import _scheduler

        original = _scheduler.Scheduler.tick

        def tick(self, now):
            while os.path.exists(flag):  # a loop stuck in gnomon's own code
                time.sleep(0.05)
            return original(self, now)

        _scheduler.Scheduler.tick = tick
    """
)


class Pings:
    """A dead man's switch on loopback: records the time of every GET."""

    def __init__(self) -> None:
        self.times: list[float] = []
        pings = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                pings.times.append(time.monotonic())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping/uuid"


def test_a_stuck_loop_is_reported_stops_the_watchdog_and_the_heartbeat_and_recovers(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    hooks = hook_dir(tmp_path, STUCK_HOOK)
    flag = tmp_path / "stuck"
    pings = Pings()
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(0.2)
    config = write_config(
        tmp_path,
        tickers(2),
        daemon=(
            f'workers = 2\napi = "127.0.0.1:0"\nstuck_after = "2s"\n'
            f'heartbeat_url = "{pings.url}"\nheartbeat_interval = "1s"'
        ),
    )
    daemon = start_daemon(
        config,
        gnomon_home,
        PYTHONPATH=str(hooks),
        GNOMON_STUCK_FLAG=str(flag),
        NOTIFY_SOCKET=str(notify_path),
        WATCHDOG_USEC="1000000",
    )
    daemons.append(daemon)
    url = api_url(daemon)

    def watchdog_pings(seconds: float) -> int:
        count, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                count += "WATCHDOG=1" in listener.recv(4096).decode()
        return count

    try:
        assert watchdog_pings(2) >= 2
        wait_for(lambda: len(pings.times) >= 2, what="heartbeat pings")
        flag.touch()
        wait_for(lambda: healthz(url)[0] == 503, timeout=10, what="/healthz saying stuck")
        code, body = healthz(url)
        assert (code, body["status"]) == (503, "stuck")
        assert set(body) == {"status", "last_tick_age_seconds", "reason"}
        # The status file follows within the monitor's half second.
        status = wait_for(
            lambda: (done := gnomon(gnomon_home, "daemon", "status")).returncode == 1 and done,
            what="daemon status saying stuck",
        )
        assert "stuck" in status.stdout
        watchdog_pings(1)  # drain what was sent before it noticed
        heartbeats = len(pings.times)
        assert watchdog_pings(3) == 0  # systemd would now restart it
        assert len(pings.times) <= heartbeats + 1
        flag.unlink()
        wait_for(lambda: healthz(url)[1]["status"] == "ok", what="ticking again")
        assert watchdog_pings(2) >= 2
    finally:
        listener.close()
        pings.server.shutdown()
        pings.server.server_close()
    stop(daemon)
    assert_store_sound(gnomon_home / "gnomon.db")


# Reloads.

GOOD = tickers(2) + textwrap.dedent(
    """
    [[deployments]]
    name = "hourly"
    flow = "flows.py:tick"
    cron = "0 * * * *"
    """
)


def active(gnomon_home: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(gnomon_home / "gnomon.db")) as connection:
        rows = connection.execute("SELECT name, schedule FROM deployments WHERE active").fetchall()
    return dict(rows)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda text: text + "\n[[deployments]\n", "invalid TOML"),
        (lambda text: text + tickers(1, "5s"), "also defined in"),
        (lambda text: 'include = ["nowhere.toml"]\n' + text, "no such file"),
        (lambda text: None, "no such file"),  # the config file is gone
    ],
    ids=["toml", "duplicate", "include", "missing"],
)
def test_a_reload_of_a_broken_config_changes_nothing_and_says_so_with_exit_2(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any], edit: Any, problem: str
) -> None:
    daemon, _url, database = serving(tmp_path, gnomon_home, daemons, GOOD)
    config = tmp_path / "gnomon.toml"
    before = active(gnomon_home)
    text = config.read_text()
    edited = edit(text)
    if edited is None:
        config.unlink()
    else:
        config.write_text(edited)

    daemon.send_signal(signal.SIGHUP)  # as systemctl reload does
    reload = gnomon(gnomon_home, "daemon", "reload")

    assert reload.returncode == 2, reload.stdout + reload.stderr
    assert problem in reload.stderr
    assert "nothing applied" in reload.stderr
    assert "Traceback" not in reload.stderr
    assert active(gnomon_home) == before
    count = row_count(database)
    wait_for(lambda: row_count(database) >= count + 4, what="the deployments still firing")
    output = stop(daemon)
    refusals = [e for e in events(output) if e.get("reload") == "refused"]
    assert len(refusals) in (1, 2)  # the SIGHUP's and the command's, maybe in one load
    for name in ("d0", "d1"):
        assert_every_fire_once(database, name, SECOND)
    assert_store_sound(database)


def test_a_reload_keeps_a_broken_deployments_last_good_version_applies_the_rest_and_audits(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    daemon, _url, database = serving(tmp_path, gnomon_home, daemons, GOOD)
    config = tmp_path / "gnomon.toml"
    # d0 broken, d1 removed, d2 added, hourly's cron changed.
    header = config.read_text().split("[[deployments]]")[0]
    config.write_text(
        header
        + textwrap.dedent(
            """
            [[deployments]]
            name = "d0"
            flow = "flows.py:tick"
            interval = "soon"

            [[deployments]]
            name = "d2"
            flow = "flows.py:tick"
            interval = "1s"

            [[deployments]]
            name = "hourly"
            flow = "flows.py:tick"
            cron = "30 * * * *"
            """
        )
    )

    reload = gnomon(gnomon_home, "daemon", "reload")

    assert reload.returncode == 1, reload.stdout + reload.stderr
    assert 'deployment "d0": interval "soon"' in reload.stderr
    assert reload.stdout.splitlines() == [
        "added: d2",
        "removed: d1",
        "changed: hourly (cron)",
        "kept last good version: d0",
        "partial: 1 added, 1 removed, 1 changed",
    ]
    assert active(gnomon_home) == {"d0": "1s", "d2": "1s", "hourly": "30 * * * *"}
    count = len(fire_times(database, "d0"))
    wait_for(lambda: len(fire_times(database, "d0")) >= count + 2, what="d0 firing as it was")
    (entry,) = [
        e
        for e in gnomon_json(gnomon_home, "audit", "--json")
        if e["action"] == "reload" and e["detail"]["status"] == "partial"
    ]
    assert entry["origin"] == "cli"
    assert entry["detail"]["changed"] == {"hourly": ["cron"]}
    assert entry["detail"]["kept_last_good"] == ["d0"]
    stop(daemon)
    assert_every_fire_once(database, "d0", SECOND)
    assert_store_sound(database)


def gnomon_json(home: Path, *args: str) -> Any:
    result = gnomon(home, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_reload_and_apply_with_no_daemon_running_say_so(tmp_path: Path, gnomon_home: Path) -> None:
    config = write_config(tmp_path, GOOD)
    reload = gnomon(gnomon_home, "daemon", "reload", "--config", str(config))
    assert (reload.returncode, reload.stderr) == (1, "no gnomon daemon is running on this store\n")
    apply = gnomon(gnomon_home, "deployments", "apply", "--config", str(config))
    assert apply.returncode == 0, apply.stderr
    assert apply.stdout.startswith("no gnomon daemon is running on this store")


# Time.

CLOCK_HOOK = textwrap.dedent(
    """
    import os, sys
    from datetime import timedelta

    offset_file = os.environ.get("GNOMON_CLOCK_OFFSET_FILE")
    if offset_file and "gnomon.daemon._template" not in sys.orig_argv:
        from gnomon.daemon import _service

        real_now = _service.SystemClock.now

        def now():  # the daemon's wall clock, stepped by the test through its seam
            with open(offset_file) as stream:
                return real_now() + timedelta(seconds=float(stream.read() or 0))

        _service.SystemClock.now = staticmethod(now)
    """
)

MINUTELY = """
[[deployments]]
name = "minutely"
flow = "flows.py:tick"
cron = "* * * * *"
"""


def test_a_wall_clock_stepped_forward_is_downtime_and_stepped_back_repeats_nothing(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    hooks = hook_dir(tmp_path, CLOCK_HOOK)
    offset = tmp_path / "offset"
    offset.write_text("0")
    config = write_config(tmp_path, MINUTELY)
    daemon = start_daemon(
        config, gnomon_home, PYTHONPATH=str(hooks), GNOMON_CLOCK_OFFSET_FILE=str(offset)
    )
    daemons.append(daemon)
    database = gnomon_home / "gnomon.db"
    wait_ready(daemon)

    step_clock(offset, 3 * 3600)  # an NTP step, or a VM resumed three hours later
    wait_for(lambda: row_count(database) >= 180, timeout=20, what="the jump caught up")
    time.sleep(2)
    jumped = row_count(database)
    step_clock(offset, -3600)  # and back, to an hour before the real time
    time.sleep(4)
    assert row_count(database) == jumped  # nothing decided before is decided again

    output = stop(daemon)
    with contextlib.closing(sqlite3.connect(database)) as connection:
        states = dict(
            connection.execute(
                "SELECT state_name, count(*) FROM flow_runs GROUP BY state_name"
            ).fetchall()
        )
    # catchup = "latest": the newest minute runs, the others are Missed, none twice.
    assert states.get("Missed", 0) in (179, 180)
    assert states.get("Completed", 0) + states.get("Missed", 0) == jumped
    assert_every_fire_once(database, "minutely", timedelta(minutes=1))
    steps = [e for e in events(output) if "the wall clock was stepped" in e["event"]]
    assert [e["event"].split(" by ")[0].rsplit(" ", 1)[1] for e in steps] == ["forward", "back"]
    assert all(e["level"] == "warning" for e in steps)
    assert_store_sound(database)


def step_clock(offset: Path, seconds: float) -> None:
    """Set the daemon's clock offset in one rename, so it never reads a half-written file."""
    new = offset.with_suffix(".new")
    new.write_text(str(seconds))
    new.replace(offset)


def test_a_daemon_stopped_for_seconds_catches_up_by_its_policy_without_duplicates(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    config = write_config(tmp_path, tickers(2))
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    database = gnomon_home / "gnomon.db"
    wait_for(lambda: row_count(database) >= 4, what="the first fires")

    daemon.send_signal(signal.SIGSTOP)  # a frozen VM, a debugger, an operator's mistake
    time.sleep(8)
    daemon.send_signal(signal.SIGCONT)
    count = row_count(database)
    wait_for(lambda: row_count(database) >= count + 6, what="firing again")

    output = stop(daemon)
    assert any("no tick for" in e["event"] for e in events(output))
    with contextlib.closing(sqlite3.connect(database)) as connection:
        missed = connection.execute(
            "SELECT count(*) FROM flow_runs WHERE state_name = 'Missed'"
            " AND state_message LIKE 'missed in a gap in the ticks%'"
        ).fetchone()[0]
    assert missed >= 2 * 5
    for name in ("d0", "d1"):
        assert_every_fire_once(database, name, SECOND)
    assert_store_sound(database)


def test_sigusr2_reopens_the_log_file_that_logrotate_moved_away(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    config = write_config(tmp_path, MINUTELY)
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_ready(daemon)
    log_file = gnomon_home / "logs" / "gnomon.jsonl"
    assert "daemon ready" in log_file.read_text()
    log_file.rename(log_file.with_suffix(".jsonl.1"))

    daemon.send_signal(signal.SIGUSR2)  # logrotate's postrotate
    wait_for(log_file.exists, what="the log file opened anew")
    stop(daemon)
    assert "daemon stopped" in log_file.read_text()
    assert "daemon stopped" not in log_file.with_suffix(".jsonl.1").read_text()


def test_the_apis_apply_reloads_the_daemon_and_answers_with_the_outcome(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    daemon, url, _database = serving(tmp_path, gnomon_home, daemons, GOOD)
    config = tmp_path / "gnomon.toml"
    token = (gnomon_home / "api-token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    config.write_text(config.read_text().replace('cron = "0 * * * *"', 'cron = "15 * * * *"'))

    applied = httpx.post(f"{url}/api/v1/apply", headers=headers, timeout=60)
    assert applied.status_code == 200, applied.text
    body = applied.json()
    assert (body["status"], body["changed"], body["problems"]) == (
        "applied",
        {"hourly": ["cron"]},
        [],
    )

    config.write_text(config.read_text() + "\n[[deployments]\n")
    refused = httpx.post(f"{url}/api/v1/apply", headers=headers, timeout=60)
    assert refused.status_code == 422
    assert refused.json()["status"] == "refused"
    assert "invalid TOML" in refused.json()["problems"][0]
    assert active(gnomon_home)["hourly"] == "15 * * * *"
    stop(daemon)
    assert_store_sound(gnomon_home / "gnomon.db")


# Runs the daemon must settle.

UNRECORDED_HOOK = textwrap.dedent(
    """
    import os, sys

    flag = os.environ.get("GNOMON_FAIL_WORKER_WRITES")
    if flag and "gnomon.daemon._template" in sys.orig_argv:
        import sqlite3
        from gnomon.store import _db

        original = _db._SerialisedWriter.commit

        def commit(self):  # the worker's store refuses every write while the flag is there
            if os.path.exists(flag):
                self.rollback()
                raise sqlite3.OperationalError("disk I/O error")
            return original(self)

        _db._SerialisedWriter.commit = commit
    """
)


def test_a_run_whose_worker_could_not_store_its_end_is_recorded_crashed_not_left_running(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    hooks = hook_dir(tmp_path, UNRECORDED_HOOK)
    flag = tmp_path / "failing"
    config = write_config(tmp_path, tickers(1, "2s"))
    daemon = start_daemon(
        config,
        gnomon_home,
        PYTHONPATH=str(hooks),
        GNOMON_FAIL_WORKER_WRITES=str(flag),
        GNOMON_FINAL_STATE_PATIENCE="1",  # how long a finished run waits for its store
    )
    daemons.append(daemon)
    database = gnomon_home / "gnomon.db"
    wait_for(lambda: row_count(database) >= 1, what="the first fire")
    flag.touch()  # the workers' writes fail from now on; the daemon's still work

    def crashed() -> list[Any]:
        uri = f"file:{database}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
            return connection.execute(
                "SELECT state_message FROM flow_runs WHERE state_name = 'Crashed'"
            ).fetchall()

    (message,) = wait_for(crashed, what="the run recorded Crashed")[0]
    assert message.startswith("the worker could not record the run's end")
    flag.unlink()  # the worker's own rows for that run, retried now, add no final state
    count = row_count(database)
    wait_for(lambda: row_count(database) >= count + 2, what="firing on")
    stop(daemon)
    assert_every_fire_once(database, "d0", timedelta(seconds=2))
    assert_store_sound(database)


def test_runs_waiting_for_a_worker_at_shutdown_go_back_to_scheduled_and_run_at_next_start(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    slow = "".join(
        f'\n[[deployments]]\nname = "s{i}"\nflow = "flows.py:slow"\ninterval = "1h"\n'
        f"parameters = {{ seconds = 60 }}\n"
        for i in range(4)
    )
    config = write_config(tmp_path, slow, daemon="workers = 1")
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    database = gnomon_home / "gnomon.db"
    wait_ready(daemon)
    for name in ("s0", "s1", "s2", "s3"):
        assert gnomon(gnomon_home, "run", name).returncode == 0
    wait_for(
        lambda: states(database).get("Pending", 0) >= 2 and states(database).get("Running"),
        what="one running, the rest waiting",
    )
    stop(daemon)  # shutdown_grace 5 s: the running one is cancelled

    after = states(database)
    assert "Pending" not in after
    assert "Running" not in after
    assert after["Scheduled"] == 3
    again = start_daemon(config, gnomon_home)
    daemons.append(again)
    wait_for(lambda: states(database).get("Running"), what="a waiting run started again")
    stop(again)
    assert_store_sound(database)


def states(database: Path) -> dict[str, int]:
    if not database.exists():
        return {}
    uri = f"file:{database}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
        try:
            rows = connection.execute(
                "SELECT state_name, count(*) FROM flow_runs GROUP BY state_name"
            ).fetchall()
        except sqlite3.OperationalError:
            return {}
    return dict(rows)


# The daemon's start failing after its worker pool launched, at catch-up (as a fire near
# year 9999 plus jitter once did): no input makes it fail there now, so the fault is put in.
FAILING_CATCH_UP = """
import sys
from gnomon.daemon._service import Daemon

def fail(self):
    raise RuntimeError("injected at catch-up")

Daemon._catch_up_at_start = fail
sys.argv = ["gnomon", "daemon", "--config", sys.argv[1]]
from gnomon.cli import main
main()
"""


def test_a_start_that_fails_after_the_pool_launched_exits_in_one_line(
    tmp_path: Path, gnomon_home: Path
) -> None:
    """It stops its workers and exits 1 with one line, instead of hanging with warm
    workers (and SIGTERM ignored: the signal handlers were installed)."""
    config = write_config(tmp_path, INTERVAL_TICK)
    started = subprocess.run(
        [sys.executable, "-c", FAILING_CATCH_UP, str(config)],
        env={**os.environ, "GNOMON_HOME": str(gnomon_home), "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert started.returncode == 1, started.stderr
    assert "gnomon daemon: start-up failed: RuntimeError: injected at catch-up" in started.stderr
    assert "Traceback" not in started.stderr
