"""The database file under fault, with real daemons, real CLI processes and real files: a
database deleted or replaced under the daemon, a backup taken while it runs and restored,
and every command facing a store it cannot use (locked past the busy timeout, read-only,
full, corrupt, in a directory that cannot be made).

Each test ends by checking the store the way an operator would trust it again:
``PRAGMA integrity_check``, one final state per run, nothing left Running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, read_line, start_python
from faults import assert_nothing_left_running, assert_one_final_state_per_run, integrity, run_ids
from gnomon.store import reset_store
from test_cli_daemon import GNOMON, gnomon
from test_daemon import (
    INTERVAL_TICK,
    DaemonProcess,
    completed,
    start_daemon,
    wait_for,
    write_config,
)

EXIT_STORE_GONE = 66  # documented in `gnomon daemon --help`, the README and the unit file


def error_lines(output: str) -> list[str]:
    """The messages of the ERROR lines among a daemon's JSON log lines."""
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [event["event"] for event in events if event.get("level") == "error"]


def ticking(tmp_path: Path, home: Path, store, daemons, runs: int) -> DaemonProcess:
    """A daemon firing the ticker every second, once ``runs`` of them have completed."""
    daemon = start_daemon(write_config(tmp_path, INTERVAL_TICK), home)
    daemons.append(daemon)
    wait_for(completed(store, "ticker", runs), what=f"{runs} completed runs")
    return daemon


def stop_message(daemon: DaemonProcess) -> str:
    """The one ERROR line of a daemon that stopped because its database file changed."""
    assert daemon.wait(timeout=20) == EXIT_STORE_GONE
    out, _ = daemon.communicate()
    [message] = error_lines(out)
    assert f"exit code {EXIT_STORE_GONE}" in message
    return message


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed: exit 1, no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# The database file is the one the daemon opened.


@pytest.mark.slow
def test_a_daemon_whose_database_is_deleted_stops_with_its_exit_code_and_says_why(
    tmp_path: Path, gnomon_home: Path, store, daemons
) -> None:
    daemon = ticking(tmp_path, gnomon_home, store, daemons, runs=2)
    database = gnomon_home / "gnomon.db"
    kept = tmp_path / "deleted.db"
    os.link(database, kept)  # the deleted file, to check afterwards

    database.unlink()

    message = stop_message(daemon)
    assert f"the database file {database} was deleted or moved away" in message
    assert not database.exists()  # nothing made an empty store in its place
    assert not database.with_name("gnomon.db-wal").exists()  # nor left the old WAL for one
    assert integrity(kept) == "ok"


@pytest.mark.slow
def test_a_daemon_whose_database_is_replaced_by_a_backup_stops_and_leaves_the_backup_intact(
    tmp_path: Path, gnomon_home: Path, store, daemons
) -> None:
    daemon = ticking(tmp_path, gnomon_home, store, daemons, runs=2)
    backup = tmp_path / "backup.db"
    assert gnomon(gnomon_home, "db", "backup", str(backup)).returncode == 0
    backed_up = run_ids(backup)
    wait_for(completed(store, "ticker", len(backed_up) + 2), what="runs after the backup")
    database = gnomon_home / "gnomon.db"

    os.replace(backup, database)  # `mv backup.db gnomon.db` under the running daemon

    message = stop_message(daemon)
    assert f"the database file {database} was replaced while the daemon ran" in message
    assert "remove" in message
    assert "gnomon.db-wal" in message
    # The backup as it was: neither the daemon's later runs nor the old file's WAL in it.
    assert run_ids(database) == backed_up
    assert integrity(database) == "ok"
    assert_one_final_state_per_run(database)


@pytest.mark.slow
def test_the_cli_refuses_to_create_a_fresh_store_under_a_running_daemon(
    tmp_path: Path, gnomon_home: Path, store, daemons
) -> None:
    daemon = ticking(tmp_path, gnomon_home, store, daemons, runs=1)
    database = gnomon_home / "gnomon.db"
    daemon.send_signal(signal.SIGSTOP)  # holding its lock, not yet noticing
    try:
        database.unlink()
        for command in (("runs", "list"), ("pause", "ticker"), ("run", "ticker"), ("audit",)):
            line = one_line(gnomon(gnomon_home, *command))
            assert f"the database {database} is missing but daemon pid {daemon.pid}" in line
        assert not database.exists()
    finally:
        daemon.send_signal(signal.SIGCONT)
    assert "was deleted or moved away" in stop_message(daemon)
    assert not database.exists()


def test_a_worker_never_creates_a_missing_database_and_says_so(tmp_path: Path, store) -> None:
    from gnomon.daemon._pool import WorkerPool, WorkerPoolError

    database = tmp_path / "gone" / "gnomon.db"
    lines: list[str] = []
    pool = WorkerPool(
        1,
        [],
        on_finished=lambda _outcome: None,
        log_sink=lambda line, _pid: lines.append(line),
        env={"GNOMON_DATABASE_URL": f"sqlite:///{database}"},  # the workers' database only
    )

    with pytest.raises(WorkerPoolError) as failed:
        pool.start(timeout=60)

    assert f"exited with code {EXIT_STORE_GONE}: its database file is missing" in str(failed.value)
    assert any(f"the database {database} does not exist" in line for line in lines), lines
    assert not database.parent.exists()


# Backups.


@pytest.mark.slow
def test_a_backup_taken_while_the_daemon_runs_restores_to_a_sound_store_with_its_runs(
    tmp_path: Path, gnomon_home: Path, store, daemons
) -> None:
    config = write_config(tmp_path, INTERVAL_TICK)
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "ticker", 3), what="three completed runs")
    backup = tmp_path / "backups" / "gnomon.db"
    backup.parent.mkdir()

    made = gnomon(gnomon_home, "db", "backup", str(backup))

    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"backed up {gnomon_home / 'gnomon.db'} to {backup}")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert integrity(backup) == "ok"
    backed_up = run_ids(backup)
    assert len(backed_up) >= 3
    assert_one_final_state_per_run(backup)

    # The README's restore: stop the daemon, replace the file and its -wal/-shm, start.
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    reset_store()  # nor may this process keep the file it replaces open
    database = gnomon_home / "gnomon.db"
    for leftover in ("gnomon.db-wal", "gnomon.db-shm"):
        database.with_name(leftover).unlink(missing_ok=True)
    shutil.copy(backup, database)
    restarted = start_daemon(config, gnomon_home)
    daemons.append(restarted)
    wait_for(lambda: len(run_ids(database)) > len(backed_up) + 1, what="runs after the restore")
    listed = gnomon(gnomon_home, "runs", "list", "--json", "--limit", "1000")
    assert backed_up <= {run["id"] for run in json.loads(listed.stdout)}
    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(timeout=30) == 0
    assert integrity(database) == "ok"
    assert_one_final_state_per_run(database)
    assert_nothing_left_running(database)


def test_a_backup_does_not_overwrite_a_file_unless_forced(
    tmp_path: Path, gnomon_home: Path, store
) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me")

    refused = gnomon(gnomon_home, "db", "backup", str(target))

    assert one_line(refused) == f"Error: {target} exists; not overwriting it without --force"
    assert target.read_text() == "keep me"
    assert gnomon(gnomon_home, "db", "backup", str(target), "--force").returncode == 0
    assert integrity(target) == "ok"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".precious*"))  # no partial copy left beside it


def test_a_backup_of_a_store_that_does_not_exist_creates_none(
    tmp_path: Path, gnomon_home: Path
) -> None:
    result = gnomon(gnomon_home, "db", "backup", str(tmp_path / "copy.db"))

    database = gnomon_home / "gnomon.db"
    assert one_line(result) == f"Error: no store to back up: {database} does not exist"
    assert not database.exists()
    assert not (tmp_path / "copy.db").exists()


# Commands facing a store they cannot use: one line naming it and the cause, exit 1.

# The commands that write the store, fast path (stdlib sqlite3) and SQLAlchemy path alike.
WRITERS = (
    ("pause", "ticker"),
    ("resume", "ticker"),
    ("run", "ticker"),
    ("runs", "cancel", "RUN"),
    ("deployments", "apply"),
    ("runs", "retry", "RUN"),
    ("concurrency-limit", "set", "crm", "2"),
    ("concurrency-limit", "rm", "crm"),
    ("global-concurrency-limit", "set", "api", "2", "--slot-decay-per-second", "1"),
    ("token", "create", "grafana"),
    ("token", "revoke", "grafana"),
    ("maintenance", "add", "--for", "1h", "--reason", "swap"),
)
# One command of each path that writes, and one that reads: the one-line rule lives in one
# place (the gnomon group), which the corrupt store's test runs every command through.
SOME = (("pause", "ticker"), ("run", "ticker"), ("runs", "list"), ("deployments", "list"))
READERS = (
    ("runs", "list"),
    ("logs",),
    ("runs", "show", "RUN"),
    ("deployments", "list"),
    ("deployments", "show", "ticker"),
    ("deployments", "next", "ticker"),
    ("concurrency-limit", "ls"),
    ("global-concurrency-limit", "ls"),
    ("token", "ls"),
    ("audit",),
    ("maintenance", "ls"),
    ("deployments", "explain", "ticker"),
)


def seeded(tmp_path: Path, home: Path, **env: str) -> str:
    """A store in ``home`` with the ticker deployment and a run of it; the run's id."""
    config = write_config(tmp_path, INTERVAL_TICK)
    assert gnomon(home, "deployments", "apply", "--config", str(config), **env).returncode == 0
    requested = gnomon(home, "run", "ticker", **env)
    assert requested.returncode == 0, requested.stderr
    return requested.stdout.split()[1]


def run_all(
    home: Path, commands: tuple[tuple[str, ...], ...], run_id: str, **env: str
) -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    """Every command at once (each may wait out the busy timeout), with its result."""
    environment = {**os.environ, "GNOMON_HOME": str(home), **env}
    started = {
        command: subprocess.Popen(
            [str(GNOMON), *(run_id if part == "RUN" else part for part in command)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=home.parent,
        )
        for command in commands
    }
    results = {}
    for command, process in started.items():
        out, err = process.communicate(timeout=120)
        results[command] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results


def assert_each_says(
    results: dict[tuple[str, ...], subprocess.CompletedProcess[str]], store: str, cause: str
) -> None:
    for command, result in results.items():
        line = one_line(result)
        assert line.startswith(f"Error: store {store}: "), (command, line)
        assert cause in line, (command, line)


HOLD_WRITE_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # until the test is done
db.execute("ROLLBACK")
"""


@pytest.mark.slow
def test_commands_facing_a_write_lock_held_past_the_busy_timeout_say_so_in_one_line(
    tmp_path: Path, gnomon_home: Path
) -> None:
    run_id = seeded(tmp_path, gnomon_home)
    database = gnomon_home / "gnomon.db"
    holder = start_python(HOLD_WRITE_LOCK.replace("sys.argv[1]", repr(str(database))), gnomon_home)
    # gnomon's own writers on the SQLAlchemy path queue on one another (store._db's write
    # turn), so one of them here, besides those of the fast path: each waits 30 s.
    writers = (("pause", "ticker"), ("resume", "ticker"), ("run", "ticker"))
    try:
        assert read_line(holder) == "locked\n"
        results = run_all(gnomon_home, writers + READERS, run_id)
    finally:
        holder.communicate(timeout=30)
    assert_each_says(
        {command: results[command] for command in writers},
        str(database),
        "the database is locked by another program (waited 30 s",
    )
    for command in READERS:  # WAL: reading never waits for a writer
        assert results[command].returncode == 0, (command, results[command].stderr)
    assert integrity(database) == "ok"
    assert gnomon(gnomon_home, "pause", "ticker").returncode == 0  # works again after


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` and the files in it read-only: a read-only bind mount for root (whom
    file modes do not stop), else the modes."""
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in [directory, *directory.iterdir()]}
        for path, mode in modes.items():
            path.chmod(stat.S_IMODE(mode) & ~0o222)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    _mount(["--bind", str(directory), str(directory)], "a bind mount")
    try:
        _mount(["-o", "remount,ro,bind", str(directory)], "a read-only remount")
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def _mount(arguments: list[str], what: str) -> None:
    done = subprocess.run(["mount", *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot make {what} here: {done.stderr.strip()}")


@pytest.mark.slow
def test_commands_facing_a_read_only_store_say_so_in_one_line(
    tmp_path: Path, gnomon_home: Path
) -> None:
    run_id = seeded(tmp_path, gnomon_home)
    database = gnomon_home / "gnomon.db"
    with read_only(gnomon_home):
        results = run_all(gnomon_home, SOME, run_id)
    for command, result in results.items():
        line = one_line(result)
        assert line.startswith(f"Error: store {database}: "), (command, line)
        assert "read-only" in line.lower(), (command, line)
    assert integrity(database) == "ok"


@contextlib.contextmanager
def small_file_system(directory: Path, size: str) -> Iterator[None]:
    directory.mkdir(parents=True)
    _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], "a tmpfs")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.mark.slow
def test_commands_facing_a_full_disk_say_so_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "small"
    with small_file_system(home, "2m"):
        run_id = seeded(tmp_path, home)
        filler = home / "filler"
        with filler.open("wb") as fill, contextlib.suppress(OSError):
            while True:  # until the file system is full
                fill.write(b"\0" * 65536)
                fill.flush()
        results = run_all(home, (("pause", "ticker"), ("run", "ticker")), run_id)
        database = home / "gnomon.db"
        assert_each_says(results, str(database), "the disk is full")
        filler.unlink()
        assert integrity(database) == "ok"
        assert gnomon(home, "pause", "ticker").returncode == 0  # and works again with room


@pytest.mark.slow
def test_every_command_facing_a_corrupt_database_says_so_in_one_line(
    tmp_path: Path, gnomon_home: Path
) -> None:
    gnomon_home.mkdir()
    database = gnomon_home / "gnomon.db"
    database.write_bytes(b"this is not a SQLite database\n" * 1000)
    write_config(tmp_path, INTERVAL_TICK)

    others = (("db", "upgrade"), ("daemon",))  # the daemon's start-up too
    results = run_all(gnomon_home, WRITERS + READERS + others, "0" * 32)

    assert_each_says(results, str(database), "the file is not a SQLite database")
    assert database.read_bytes().startswith(b"this is not")  # left as it was


@pytest.mark.slow
def test_commands_whose_store_directory_cannot_be_made_say_so_in_one_line(
    tmp_path: Path, gnomon_home: Path
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    database = tmp_path / "a-file" / "store" / "gnomon.db"
    write_config(tmp_path, INTERVAL_TICK)

    results = run_all(gnomon_home, SOME, "0" * 32, GNOMON_DATABASE_URL=f"sqlite:///{database}")

    assert_each_says(results, str(database), f"Not a directory: {database.parent}")


@pytest.mark.slow
def test_a_store_fault_in_the_fast_path_and_the_full_path_reads_the_same(
    tmp_path: Path, gnomon_home: Path
) -> None:
    """``runs list`` (stdlib sqlite3) and ``run`` (SQLAlchemy) name the same cause."""
    run_id = seeded(tmp_path, gnomon_home)
    database = gnomon_home / "gnomon.db"
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with database.open("r+b") as damaged:
        damaged.write(b"\0" * 100)  # the header: no longer a SQLite database
    results = run_all(gnomon_home, (("runs", "list"), ("run", "ticker")), run_id)
    assert_each_says(results, str(database), "the file is not a SQLite database")


def test_the_exit_code_of_a_changed_database_file_is_documented_where_operators_look() -> None:
    help_text = subprocess.run(
        [str(GNOMON), "daemon", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert f"{EXIT_STORE_GONE} if the database file was deleted or replaced" in help_text
    for document in ("README.md", "docs/design.md", "systemd/gnomon.service"):
        assert str(EXIT_STORE_GONE) in (REPO / document).read_text(), document


@pytest.mark.sqlite_only
def test_a_flow_ending_on_a_damaged_database_file_is_not_told_its_state_was_stored(
    store, gnomon_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "database disk image is malformed" is about the file, not the rows: they are kept
    and the flow call raises after its patience, rather than returning as if stored."""
    from gnomon import flow
    from gnomon._settings import reset_settings
    from gnomon.store import StoreWriteError

    monkeypatch.setenv("GNOMON_FINAL_STATE_PATIENCE", "0.5")
    reset_settings()

    @flow
    def warm() -> None:
        pass

    for _ in range(50):  # pages enough to damage
        warm()

    @flow
    def ends_on_a_damaged_file() -> str:
        store.flush()
        database = gnomon_home / "gnomon.db"
        with contextlib.closing(sqlite3.connect(database)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = os.path.getsize(database)
        with open(database, "r+b") as damaged:
            for page in range(2, size // 4096):
                damaged.seek(page * 4096 + 8)
                damaged.write(b"\xff" * 64)
        return "done"

    with pytest.raises(StoreWriteError):
        ends_on_a_damaged_file()
