"""``gnomon daemon --detach``: becoming a background daemon, and stopping one by its pidfile.

python-daemon does the classic dance (PEP 3143): double fork and ``setsid`` so the daemon has
no controlling terminal and is not a session leader, a known working directory, every
inherited descriptor closed, stdin on /dev/null. The umask stays the one the command ran
with: the workers' flows inherit it, and gnomon makes its own files private regardless
(``gnomon._files``). We add the pidfile: written atomically
by the daemon itself after the fork, locked with ``flock`` for the daemon's lifetime and
removed at exit. The lock is what makes a pidfile trustworthy: a pidfile whose lock is free
is stale, even if its pid now belongs to another process, so ``stop`` never signals a
stranger. (Under systemd, run in the foreground instead: systemd is the supervisor.)
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType, TracebackType

import daemon

from gnomon._files import open_private
from gnomon.daemon._lock import locked_elsewhere
from gnomon.daemon._proctree import exists
from gnomon.exceptions import GnomonError

_POLL_INTERVAL = 0.02


class PidfileInUse(GnomonError, RuntimeError):
    """The pidfile names a daemon that is still running; starting another would orphan it."""

    def __init__(self, pidfile: Path, pid: int) -> None:
        self.pidfile = pidfile
        self.pid = pid
        super().__init__(f"a gnomon daemon is already running with pid {pid} (pidfile {pidfile})")


class DaemonNotRunning(GnomonError, LookupError):
    """``stop`` found no running daemon behind the pidfile."""

    def __init__(self, pidfile: Path) -> None:
        self.pidfile = pidfile
        super().__init__(f"no gnomon daemon is running (pidfile {pidfile} is missing or stale)")


class _PidFile:
    """The pidfile as python-daemon's ``pidfile`` context: entered after the fork.

    The pid is written to a temporary file, locked, and renamed into place, so a reader sees
    either no file or the whole pid. On exit it is removed only if it is still ours.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> _PidFile:
        running = read_pidfile(self.path)
        if running is not None:
            raise PidfileInUse(self.path, running)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.fchmod(fd, 0o644)  # a pid is no secret: any user may ask whether gnomon runs
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.replace(temporary, self.path)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Until the daemon installs its own graceful handler: exit cleanly, running atexit
    # hooks (which remove the pidfile). python-daemon's default would exit with status 1.
    raise SystemExit(0)


def detach(
    pidfile: Path,
    log_path: Path | None,
    working_directory: Path,
    keep_fds: tuple[int, ...] = (),
) -> None:
    """Turn the current process into a background daemon; the caller's terminal gets back.

    Returns in the daemon (a grandchild of the caller, in a new session); the original process
    exits 0 at the first fork. stdout and stderr are appended to ``log_path`` (else
    /dev/null), line-buffered. Call it before opening the store, starting threads or
    configuring logging handlers: every open descriptor but the standard streams is closed.

    Raises PidfileInUse if ``pidfile`` names a running daemon, and PermissionError if its
    directory is not writable, before forking, so the refusal reaches the terminal instead
    of the log file. ``keep_fds`` stay open in the daemon (a pipe back to the command).
    """
    pidfile = pidfile.absolute()
    running = read_pidfile(pidfile)
    if running is not None:
        raise PidfileInUse(pidfile, running)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(pidfile.parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "cannot write a pidfile in", str(pidfile.parent))
    log = None
    if log_path is not None:
        log_path = log_path.absolute()
        log = os.fdopen(open_private(log_path, os.O_WRONLY | os.O_APPEND), "ab", buffering=0)
    sys.stdout.flush()
    sys.stderr.flush()
    context = daemon.DaemonContext(
        working_directory=str(working_directory.absolute()),
        umask=_current_umask(),
        detach_process=True,  # python-daemon skips the fork when started by init; --detach means it
        pidfile=_PidFile(pidfile),
        files_preserve=list(keep_fds),
        stdout=log,
        stderr=log,
        signal_map={
            signal.SIGTERM: _exit_on_sigterm,
            signal.SIGTSTP: None,
            signal.SIGTTIN: None,
            signal.SIGTTOU: None,
        },
    )
    context.open()  # closed by python-daemon's atexit hook, which removes the pidfile
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)  # a log file, not a terminal: flush lines


def _current_umask() -> int:
    """The process's umask (reading it means setting it; nothing else runs yet)."""
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def _read(path: Path) -> tuple[int | None, bool]:
    """The pid in ``path`` (None if missing or unreadable) and whether a live daemon holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None, False
    try:
        held = locked_elsewhere(fd)
        content = os.read(fd, 64)
    finally:
        os.close(fd)
    try:
        pid = int(content)
    except ValueError:
        return None, False
    return pid, held and pid > 0 and exists(pid)


def read_pidfile(path: Path) -> int | None:
    """The pid of the daemon running behind ``path``; None if missing, stale or not alive."""
    pid, running = _read(path)
    return pid if running else None


def status(pidfile: Path) -> tuple[bool, int | None]:
    """(running, pid); a stale pidfile gives (False, the pid it names), none (False, None)."""
    pid, running = _read(pidfile)
    return running, pid


def stop(pidfile: Path, timeout: float) -> bool:
    """Send SIGTERM to the daemon behind ``pidfile`` and wait up to ``timeout`` s for it to end.

    True once it has finished: the daemon removes its pidfile and drops the pidfile's lock as
    it exits (the kernel drops the lock if it dies), which works although the daemon is not our
    child. False if it is still running at the deadline, e.g. because runs are finishing within
    ``shutdown_grace``. Raises DaemonNotRunning if none was running.
    """
    pid = read_pidfile(pidfile)
    if pid is None:
        raise DaemonNotRunning(pidfile)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while read_pidfile(pidfile) == pid:
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


class StartReport:
    """How a detached daemon's start-up ended, sent back to the command that launched it.

    ``gnomon daemon --detach`` forks before detaching; the original process waits on a pipe
    until the daemon reports (ready, or why it stopped) or dies, and exits with the
    daemon's start-up exit code: two daemons started at once on one store cannot both
    report success.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()

    def launch(self) -> int | None:
        """Fork: returns the child's pid in the waiting parent, None in the child (which goes
        on to detach and start the daemon)."""
        pid = os.fork()
        if pid:
            os.close(self._write)
            return pid
        os.close(self._read)
        return None

    @property
    def write_fd(self) -> int:
        return self._write

    def send(self, code: int, message: str) -> None:
        """In the daemon: report the start-up's exit code (0: ready) and a message, once."""
        if self._write < 0:
            return
        try:
            os.write(self._write, f"{code} {message}".encode()[:4000])
        finally:
            os.close(self._write)
            self._write = -1

    def wait(self) -> tuple[int, str]:
        """In the parent: the daemon's report; (1, ...) if it died without one."""
        chunks = []
        while chunk := os.read(self._read, 4096):
            chunks.append(chunk)
        os.close(self._read)
        text = b"".join(chunks).decode(errors="replace")
        code, _, message = text.partition(" ")
        if not code.isdigit():
            return 1, "the daemon exited during start-up without saying why; see its log"
        return int(code), message
