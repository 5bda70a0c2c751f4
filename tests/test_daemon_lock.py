"""One daemon per database: the lock beside the SQLite file, held by real processes."""

from __future__ import annotations

import re
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import read_line, start_python
from gnomon.daemon._lock import (
    DaemonAlreadyRunning,
    DaemonLock,
    find_holder,
    lock_path,
    read_holder,
)

HOLD = """
import sys
from pathlib import Path
from gnomon.daemon._lock import DaemonLock
DaemonLock(Path(sys.argv[1])).acquire(config="/etc/gnomon/config.toml")
print("locked", flush=True)
sys.stdin.read()  # hold until the test closes stdin or kills us
"""


def hold(path: Path, home: Path) -> subprocess.Popen[str]:
    """Another process holding the lock file ``path`` exclusively, as a daemon would."""
    process = start_python(HOLD.replace("sys.argv[1]", repr(str(path))), home)
    assert read_line(process) == "locked\n", process.stderr and process.stderr.read()
    return process


def close(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait(timeout=10)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture
def database(gnomon_home: Path) -> Path:
    return gnomon_home / "gnomon.db"


@pytest.fixture
def lock(database: Path) -> Path:
    return database.with_name("gnomon.db.daemon.lock")


@pytest.fixture
def holder(lock: Path, gnomon_home: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the database's lock, as a running daemon would."""
    process = hold(lock, gnomon_home)
    try:
        yield process
    finally:
        close(process)


def test_the_lock_of_a_sqlite_store_is_beside_its_file_and_of_another_in_the_home(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    assert (
        lock_path(home, f"sqlite:///{tmp_path / 'data/x.db'}") == tmp_path / "data/x.db.daemon.lock"
    )
    assert lock_path(home, "postgresql://gnomon@db/gnomon") == home / "daemon.lock"
    assert lock_path(home, "sqlite://") == home / "daemon.lock"  # in memory: no file


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///relative/gnomon.db",
        "sqlite:////absolute/gnomon.db",
        "sqlite+pysqlite:///x.db",
        "sqlite:///with%20percent.db",
        "sqlite:///x.db?timeout=10",
    ],
)
def test_the_cli_finds_the_file_sqlalchemy_opens(url: str) -> None:
    """The lock goes beside the file the store opens, found without SQLAlchemy."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from gnomon._location import sqlite_file

    engine = create_engine(url)
    [opened], _ = engine.dialect.create_connect_args(make_url(url))
    assert sqlite_file(url) == Path(opened)


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///x.db?mode=memory", "mysql://h/db"]
)
def test_urls_of_no_sqlite_file_have_none(url: str) -> None:
    from gnomon._location import sqlite_file

    assert sqlite_file(url) is None


def test_a_second_daemon_is_refused_with_the_running_ones_identity(
    lock: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(DaemonAlreadyRunning) as refused:
        DaemonLock(lock).acquire()
    message = str(refused.value)
    expected = (
        rf"another gnomon daemon is running on this store: pid {holder.pid} "
        rf"on host {re.escape(socket.gethostname())}, "
        rf"started \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
        rf"\(lock {re.escape(str(lock))}\)"
    )
    assert re.fullmatch(expected, message), message
    assert isinstance(refused.value, RuntimeError)


def test_daemons_with_different_homes_on_one_database_exclude_each_other(
    tmp_path: Path, database: Path, holder: subprocess.Popen[str]
) -> None:
    url = f"sqlite:///{database}"
    with pytest.raises(DaemonAlreadyRunning, match=f"pid {holder.pid} "):
        DaemonLock.for_store(tmp_path / "another-home", url).acquire()
    record = find_holder(tmp_path / "a-third-home", url)
    assert record is not None
    assert record["pid"] == holder.pid


def test_daemons_sharing_a_home_on_different_databases_both_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with (
        DaemonLock.for_store(home, f"sqlite:///{tmp_path / 'a.db'}") as first,
        DaemonLock.for_store(home, f"sqlite:///{tmp_path / 'b.db'}") as second,
    ):
        assert first.held
        assert second.held


def test_a_daemon_of_an_earlier_version_holding_the_home_lock_is_seen_and_excluded(
    gnomon_home: Path, database: Path
) -> None:
    old = hold(gnomon_home / "daemon.lock", gnomon_home)  # where earlier versions lock
    try:
        url = f"sqlite:///{database}"
        record = find_holder(gnomon_home, url)
        assert record is not None
        assert record["pid"] == old.pid
        with pytest.raises(DaemonAlreadyRunning, match=f"pid {old.pid} "):
            DaemonLock.for_store(gnomon_home, url).acquire()
        assert read_holder(database.with_name("gnomon.db.daemon.lock")) is None
    finally:
        close(old)


def test_an_earlier_version_cannot_start_beside_a_daemon_of_this_one(
    gnomon_home: Path, database: Path
) -> None:
    with DaemonLock.for_store(gnomon_home, f"sqlite:///{database}"):
        # An earlier version takes <home>/daemon.lock exclusively: the shared hold refuses it.
        with pytest.raises(DaemonAlreadyRunning):
            DaemonLock(gnomon_home / "daemon.lock").acquire()
        assert read_holder(gnomon_home / "daemon.lock") is None  # shared holds name no one


def test_lock_files_are_private(gnomon_home: Path, database: Path, lock: Path) -> None:
    with DaemonLock.for_store(gnomon_home, f"sqlite:///{database}"):
        for path in (lock, gnomon_home / "daemon.lock"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_read_holder_names_the_running_daemon(lock: Path, holder: subprocess.Popen[str]) -> None:
    record = read_holder(lock)
    assert record is not None
    assert record["pid"] == holder.pid
    assert record["hostname"] == socket.gethostname()
    assert record["config"] == "/etc/gnomon/config.toml"
    assert record["argv"] == ["-c"]
    started = datetime.strptime(record["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - started).total_seconds()) < 60


def test_a_sigkilled_daemon_does_not_keep_the_store_locked(
    lock: Path, holder: subprocess.Popen[str]
) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert lock.read_text()  # its record is still in the file...
    assert read_holder(lock) is None  # ...but the lock decides
    with DaemonLock(lock) as taken:
        assert taken.held
        record = read_holder(lock)
        assert record is not None
        assert record["pid"] != holder.pid


def test_a_daemon_that_exits_frees_the_lock(lock: Path, holder: subprocess.Popen[str]) -> None:
    holder.communicate(timeout=10)  # closes its stdin: it exits without calling release()
    assert holder.returncode == 0
    DaemonLock(lock).acquire()


def test_release_lets_the_next_daemon_in_and_clears_the_record(lock: Path) -> None:
    first = DaemonLock(lock)
    first.acquire(config=Path("/etc/gnomon/config.toml"))
    first.acquire()  # again while held: nothing happens
    with pytest.raises(DaemonAlreadyRunning):
        DaemonLock(lock).acquire()  # another open file description conflicts, too
    first.release()
    assert not first.held
    assert lock.read_text() == ""
    assert read_holder(lock) is None
    with DaemonLock(lock):
        assert read_holder(lock) is not None
    assert read_holder(lock) is None


def test_read_holder_of_a_store_never_locked_is_none(tmp_path: Path) -> None:
    assert read_holder(tmp_path / "no-such-home" / "daemon.lock") is None
    assert find_holder(tmp_path / "no-such-home", "sqlite:///" + str(tmp_path / "x.db")) is None
    assert not (tmp_path / "no-such-home").exists()


def test_a_holder_still_writing_its_record_is_reported_as_starting(lock: Path) -> None:
    error = DaemonAlreadyRunning({}, lock)
    assert str(error) == (
        f"another gnomon daemon is running on this store: it is still starting (lock {lock})"
    )
