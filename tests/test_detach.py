"""``--detach``: a real process daemonizes, is found by its pidfile, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import run_python
from gnomon.daemon._detach import (
    DaemonNotRunning,
    PidfileInUse,
    read_pidfile,
    status,
    stop,
)

# Daemonizes, says so in its log, drops a marker in its working directory, waits for SIGTERM.
SCRIPT = """
import os, signal
from pathlib import Path
from gnomon.daemon._detach import detach

env = os.environ
detach(Path(env["TEST_PIDFILE"]), Path(env["TEST_LOG"]), Path(env["TEST_WORKDIR"]))
mode = env["TEST_MODE"]
if mode == "exit":  # as the daemon does once its runs are done
    def on_term(signum, frame):
        print("terminated")
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_term)
elif mode == "linger":  # as the daemon does while runs finish within shutdown_grace
    signal.signal(signal.SIGTERM, lambda *_: print("finishing runs"))
# mode "default": the SIGTERM handler detach() installed
print(f"detached as {os.getpid()}")
Path("marker").write_text(str(os.getpid()))
while True:
    signal.pause()
"""


def _wait_for(condition: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Launch:
    def __init__(self, tmp_path: Path, gnomon_home: Path) -> None:
        self.pidfile = tmp_path / "run" / "gnomon.pid"
        self.pidfile.parent.mkdir()
        self.log = tmp_path / "logs" / "daemon.log"
        self.workdir = tmp_path / "work"
        self.workdir.mkdir()
        self.home = gnomon_home

    def __call__(self, mode: str = "exit") -> subprocess.CompletedProcess[str]:
        """Run the script; it returns as soon as its first fork has happened."""
        (self.workdir / "marker").unlink(missing_ok=True)
        return run_python(
            SCRIPT,
            self.home,
            timeout=30,
            TEST_PIDFILE=str(self.pidfile),
            TEST_LOG=str(self.log),
            TEST_WORKDIR=str(self.workdir),
            TEST_MODE=mode,
        )

    def started(self) -> int:
        """The daemon's pid, once it is fully up (pidfile written, marker dropped)."""
        marker = self.workdir / "marker"
        _wait_for(lambda: marker.exists() and marker.read_text())
        pid = read_pidfile(self.pidfile)
        assert pid == int(marker.read_text())
        return pid


@pytest.fixture
def launch(tmp_path: Path, gnomon_home: Path) -> Iterator[Launch]:
    launcher = Launch(tmp_path, gnomon_home)
    yield launcher
    pid = read_pidfile(launcher.pidfile)
    if pid is not None:  # a failed test must not leave a daemon behind
        os.kill(pid, signal.SIGKILL)


def test_detach_returns_at_once_and_leaves_a_daemon_behind(launch: Launch) -> None:
    launched = launch()
    assert (launched.returncode, launched.stdout, launched.stderr) == (0, "", "")
    pid = launch.started()
    assert pid != os.getpid()
    # Double fork: not the process we ran, not even its child leading a session.
    assert os.getsid(pid) not in {os.getsid(0), pid}
    assert status(launch.pidfile) == (True, pid)
    marker = launch.workdir / "marker"
    umask = os.umask(0o022)
    os.umask(umask)
    # The command's umask is kept for what the daemon's flows write; gnomon's own log file
    # is private whatever it is.
    assert stat.S_IMODE(marker.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(launch.log.stat().st_mode) == 0o600
    assert stat.S_IMODE(launch.pidfile.stat().st_mode) == 0o644  # anyone may ask for status

    assert stop(launch.pidfile, timeout=10) is True
    assert not launch.pidfile.exists()
    assert status(launch.pidfile) == (False, None)
    assert launch.log.read_text() == f"detached as {pid}\nterminated\n"


def test_without_its_own_handler_sigterm_still_exits_cleanly(launch: Launch) -> None:
    assert launch("default").returncode == 0
    pid = launch.started()
    assert stop(launch.pidfile, timeout=10) is True
    assert not launch.pidfile.exists()
    assert launch.log.read_text() == f"detached as {pid}\n"


def test_a_second_detach_on_a_live_pidfile_is_refused_before_forking(launch: Launch) -> None:
    assert launch().returncode == 0
    pid = launch.started()
    second = launch()
    assert second.returncode == 1
    assert f"{PidfileInUse.__name__}: a gnomon daemon is already running with pid {pid}" in (
        second.stderr
    )
    assert read_pidfile(launch.pidfile) == pid


def test_a_sigkilled_daemons_pidfile_is_stale(launch: Launch) -> None:
    assert launch().returncode == 0
    pid = launch.started()
    os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: read_pidfile(launch.pidfile) is None)
    assert launch.pidfile.exists()
    assert status(launch.pidfile) == (False, pid)
    with pytest.raises(DaemonNotRunning, match="is missing or stale"):
        stop(launch.pidfile, timeout=1)
    assert launch().returncode == 0  # a new daemon replaces the stale pidfile
    assert launch.started() != pid


def test_a_pidfile_naming_a_live_stranger_is_stale(tmp_path: Path) -> None:
    """A reused pid is not our daemon: the pidfile's lock, not the pid, says who runs."""
    pidfile = tmp_path / "gnomon.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    assert read_pidfile(pidfile) is None
    assert status(pidfile) == (False, os.getpid())
    with pytest.raises(DaemonNotRunning):
        stop(pidfile, timeout=1)


def test_a_missing_or_garbled_pidfile_is_not_running(tmp_path: Path) -> None:
    pidfile = tmp_path / "gnomon.pid"
    assert status(pidfile) == (False, None)
    pidfile.write_text("not a pid\n")
    assert status(pidfile) == (False, None)
    assert read_pidfile(pidfile) is None


def test_stop_reports_a_daemon_that_outlives_the_deadline(launch: Launch) -> None:
    """A daemon still finishing its runs at the deadline is reported, not assumed stopped."""
    assert launch("linger").returncode == 0
    pid = launch.started()
    assert stop(launch.pidfile, timeout=0.2) is False
    _wait_for(lambda: "finishing runs" in launch.log.read_text())
    assert status(launch.pidfile) == (True, pid)
