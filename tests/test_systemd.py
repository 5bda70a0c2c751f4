"""The sd_notify protocol against real datagram sockets, and the shipped unit file."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO
from gnomon.daemon import _systemd
from gnomon.daemon._storefile import EXIT_STORE_GONE
from gnomon.daemon._systemd import Notifier, notify, watchdog_interval

UNIT = REPO / "systemd" / "gnomon.service"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_systemd, "_failing", False)
    yield
    # The notifier keeps its socket for the process's life; a test process closes it.
    if _systemd._socket is not None:
        _systemd._socket.close()
        _systemd._socket = None


def _receiver(address: str | bytes) -> socket.socket:
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(5)
    return receiver


@pytest.fixture
def systemd_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A socket standing in for systemd's, bound at a path named by NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    with _receiver(str(path)) as receiver:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield receiver


def _nothing_waiting(receiver: socket.socket) -> bool:
    receiver.setblocking(False)
    try:
        receiver.recv(4096)
    except BlockingIOError:
        return True
    finally:
        receiver.settimeout(5)
    return False


def test_notify_sends_the_fields_as_one_datagram(systemd_socket: socket.socket) -> None:
    assert notify("READY=1", "STATUS=3 deployments, 2 workers") is True
    assert systemd_socket.recv(4096) == b"READY=1\nSTATUS=3 deployments, 2 workers"


def test_notify_reaches_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"gnomon-test-{uuid.uuid4().hex}"
    with _receiver(b"\0" + name.encode()) as receiver:
        monkeypatch.setenv("NOTIFY_SOCKET", f"@{name}")
        assert notify("WATCHDOG=1") is True
        assert receiver.recv(4096) == b"WATCHDOG=1"


def test_notify_outside_systemd_does_nothing() -> None:
    assert notify("READY=1") is False
    assert Notifier().ready("up") is False


def test_a_socket_nobody_listens_on_is_reported_once_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    with caplog.at_level(logging.WARNING, logger="gnomon.daemon"):
        assert notify("READY=1") is False
        assert notify("WATCHDOG=1") is False
    assert len(caplog.records) == 1
    assert "gone.sock" in caplog.records[0].getMessage()


def test_a_failure_after_recovery_is_reported_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "notify.sock"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    with caplog.at_level(logging.WARNING, logger="gnomon.daemon"):
        assert notify("STATUS=a") is False
        with _receiver(str(path)):
            assert notify("STATUS=b") is True
        assert path.exists()  # closed, not removed: the send is refused
        assert notify("STATUS=c") is False
    assert len(caplog.records) == 2


def test_a_non_unix_notify_socket_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert notify("READY=1") is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("30000000", "other", None),
        ("500000", None, 0.25),
        (None, None, None),
        ("0", None, None),
        ("soon", None, None),
        ("30000000", "not-a-pid", None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_for_this_process(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        pids = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}
        monkeypatch.setenv("WATCHDOG_PID", pids.get(pid, pid))
    assert watchdog_interval() == expected


def test_notifier_messages(systemd_socket: socket.socket) -> None:
    notifier = Notifier()
    notifier.ready("2 deployments")
    assert systemd_socket.recv(4096) == b"READY=1\nSTATUS=2 deployments"
    notifier.status("firing nightly-report")
    assert systemd_socket.recv(4096) == b"STATUS=firing nightly-report"
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    reloading, stamp = systemd_socket.recv(4096).decode().split("\n")
    assert reloading == "RELOADING=1"
    assert before <= int(stamp.removeprefix("MONOTONIC_USEC=")) <= after
    notifier.ready()
    assert systemd_socket.recv(4096) == b"READY=1"
    notifier.stopping("waiting for 1 run")
    assert systemd_socket.recv(4096) == b"STOPPING=1\nSTATUS=waiting for 1 run"


def test_watchdog_pings_at_most_once_per_interval(
    systemd_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    now = [100.0]
    notifier = Notifier(monotonic=lambda: now[0])
    assert notifier.watchdog_interval == 5.0
    assert notifier.watchdog() is True
    assert systemd_socket.recv(4096) == b"WATCHDOG=1"
    now[0] += 4.9
    assert notifier.watchdog() is False
    assert _nothing_waiting(systemd_socket)
    now[0] += 0.1
    assert notifier.watchdog() is True
    assert systemd_socket.recv(4096) == b"WATCHDOG=1"


def test_watchdog_is_silent_when_systemd_did_not_enable_it(
    systemd_socket: socket.socket,
) -> None:
    notifier = Notifier()
    assert notifier.watchdog_interval is None
    assert notifier.watchdog() is False
    assert _nothing_waiting(systemd_socket)


def test_a_child_process_notifies_the_socket_it_inherited(
    systemd_socket: socket.socket, tmp_path: Path
) -> None:
    """What systemd sees from the daemon: a separate process writing to NOTIFY_SOCKET."""
    code = "from gnomon.daemon._systemd import Notifier; Notifier().ready('warm')"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    assert systemd_socket.recv(4096) == b"READY=1\nSTATUS=warm"


# The shipped unit file.

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine"
)


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's gnomon, which verify requires."""
    gnomon = Path(sys.executable).with_name("gnomon")
    assert gnomon.exists(), "the package is not installed in this interpreter's environment"
    text = UNIT.read_text().replace("ExecStart=/usr/local/bin/gnomon ", f"ExecStart={gnomon} ")
    assert str(gnomon) in text
    copy = tmp_path / "gnomon.service"
    copy.write_text(text)
    return copy


def _analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(unit_copy: Path) -> None:
    result = _analyze("verify", "--man=no", unit_copy.name, cwd=unit_copy.parent)
    # verify exits 0 on unknown keys too, but warns about them: no output means no problem.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd_analyze
def test_unit_exposure_score_is_at_most_2_5(unit_copy: Path) -> None:
    result = _analyze("security", "--offline=true", unit_copy.name, cwd=unit_copy.parent)
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for gnomon\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout
    assert float(match.group(1)) <= 2.5, result.stdout


def test_unit_has_the_settings_the_daemon_relies_on() -> None:
    """Type=notify for READY/WATCHDOG, mixed kill so the daemon ends its own workers, and a
    delegated, writable cgroup subtree for a cgroup per worker."""
    settings = {
        line.partition("=")[0]: line.partition("=")[2]
        for line in UNIT.read_text().splitlines()
        if line and not line.startswith(("#", "["))
    }
    assert settings["Type"] == "notify"
    assert settings["NotifyAccess"] == "main"
    assert settings["KillMode"] == "mixed"
    assert settings["Restart"] == "on-failure"
    # A daemon whose database file was deleted or replaced stays stopped (see _storefile).
    assert settings["RestartPreventExitStatus"] == str(EXIT_STORE_GONE)
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["Environment"] == "GNOMON_HOME=/var/lib/gnomon"
    assert int(settings["TimeoutStopSec"].removesuffix("s")) > 30  # default shutdown_grace
    assert (settings["Delegate"], settings["ProtectControlGroups"]) == ("yes", "no")
