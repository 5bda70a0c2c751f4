"""One daemon per store: the lock in the state directory, held by real processes."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import read_line, start_python
from gnomon.daemon._lock import DaemonAlreadyRunning, DaemonLock, read_holder

HOLD = """
import sys
from pathlib import Path
from gnomon.daemon._lock import DaemonLock
DaemonLock(Path(sys.argv[1])).acquire(config="/etc/gnomon/config.toml")
print("locked", flush=True)
sys.stdin.read()  # hold until the test closes stdin or kills us
"""


@pytest.fixture
def holder(gnomon_home: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock on ``gnomon_home``, as a running daemon would."""
    process = start_python(HOLD.replace("sys.argv[1]", repr(str(gnomon_home))), gnomon_home)
    try:
        assert read_line(process) == "locked\n", process.stderr and process.stderr.read()
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_a_second_daemon_is_refused_with_the_running_ones_identity(
    gnomon_home: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(DaemonAlreadyRunning) as refused:
        DaemonLock(gnomon_home).acquire()
    message = str(refused.value)
    expected = (
        rf"another gnomon daemon is running on this store: pid {holder.pid} "
        rf"on host {re.escape(socket.gethostname())}, "
        rf"started \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
        rf"\(lock {re.escape(str(gnomon_home / 'daemon.lock'))}\)"
    )
    assert re.fullmatch(expected, message), message
    assert isinstance(refused.value, RuntimeError)


def test_read_holder_names_the_running_daemon(
    gnomon_home: Path, holder: subprocess.Popen[str]
) -> None:
    record = read_holder(gnomon_home)
    assert record is not None
    assert record["pid"] == holder.pid
    assert record["hostname"] == socket.gethostname()
    assert record["config"] == "/etc/gnomon/config.toml"
    assert record["argv"] == ["-c"]
    started = datetime.strptime(record["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - started).total_seconds()) < 60


def test_a_sigkilled_daemon_does_not_keep_the_store_locked(
    gnomon_home: Path, holder: subprocess.Popen[str]
) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert (gnomon_home / "daemon.lock").read_text()  # its record is still in the file...
    assert read_holder(gnomon_home) is None  # ...but the lock decides
    with DaemonLock(gnomon_home) as lock:
        assert lock.held
        record = read_holder(gnomon_home)
        assert record is not None
        assert record["pid"] != holder.pid


def test_a_daemon_that_exits_frees_the_lock(
    gnomon_home: Path, holder: subprocess.Popen[str]
) -> None:
    holder.communicate(timeout=10)  # closes its stdin: it exits without calling release()
    assert holder.returncode == 0
    DaemonLock(gnomon_home).acquire()


def test_release_lets_the_next_daemon_in_and_clears_the_record(gnomon_home: Path) -> None:
    first = DaemonLock(gnomon_home)
    first.acquire(config=Path("/etc/gnomon/config.toml"))
    first.acquire()  # again while held: nothing happens
    with pytest.raises(DaemonAlreadyRunning):
        DaemonLock(gnomon_home).acquire()  # another open file description conflicts, too
    first.release()
    assert not first.held
    assert (gnomon_home / "daemon.lock").read_text() == ""
    assert read_holder(gnomon_home) is None
    with DaemonLock(gnomon_home):
        assert read_holder(gnomon_home) is not None
    assert read_holder(gnomon_home) is None


def test_read_holder_of_a_store_never_locked_is_none(tmp_path: Path) -> None:
    assert read_holder(tmp_path / "no-such-home") is None
    assert not (tmp_path / "no-such-home").exists()


def test_a_holder_still_writing_its_record_is_reported_as_starting(gnomon_home: Path) -> None:
    error = DaemonAlreadyRunning({}, gnomon_home / "daemon.lock")
    assert str(error) == (
        "another gnomon daemon is running on this store: it is still starting "
        f"(lock {gnomon_home / 'daemon.lock'})"
    )
