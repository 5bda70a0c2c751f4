"""One daemon per store: an exclusive ``flock`` on ``<state dir>/daemon.lock``.

Two daemons on one SQLite store would each fire every schedule (the uniqueness of
(deployment, fire time) keeps the runs single, but each daemon would also mark the other's
runs Crashed at start-up). The lock is an ``flock`` rather than a pid in a file because the
kernel drops it when its holder dies, even by SIGKILL, so a restart never has to guess whether
a recorded pid is stale. The file also carries a JSON line saying who holds it, for the
refusal message and for ``read_holder``; the lock, not the file's content, decides.

The descriptor is not inherited across ``exec``, but a child made by a bare ``fork`` shares
it: such a child keeps the store locked after the daemon dies, until it exits too.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gnomon.exceptions import GnomonError

LOCK_NAME = "daemon.lock"


class DaemonAlreadyRunning(GnomonError, RuntimeError):
    """Another daemon holds the store's lock; the message says which one."""

    def __init__(self, holder: dict[str, Any], lock_path: Path) -> None:
        self.holder = holder
        self.lock_path = lock_path
        if "pid" in holder:
            who = (
                f"pid {holder['pid']} on host {holder.get('hostname', '?')}, "
                f"started {holder.get('started_at', '?')}"
            )
        else:
            who = "it is still starting"
        super().__init__(
            f"another gnomon daemon is running on this store: {who} (lock {lock_path})"
        )


def _read_record(fd: int) -> dict[str, Any]:
    """The holder's JSON record; empty if it is being written or is not ours."""
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        record = json.loads(raw)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


class DaemonLock:
    """The store's daemon lock: ``acquire()`` and ``release()``, or ``with DaemonLock(home):``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, config: str | Path | None = None) -> None:
        """Take the lock without waiting, and record this process as its holder.

        ``config``, the daemon's config file, goes into the record so that ``read_holder``
        shows what the running daemon was started with. Raises DaemonAlreadyRunning, naming
        the holder, if another process has the lock. Calling it again while held does nothing.
        """
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_record(fd)
            os.close(fd)
            raise DaemonAlreadyRunning(holder, self.path) from None
        except BaseException:
            os.close(fd)
            raise
        record = {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "argv": sys.argv,
            "config": None if config is None else str(config),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock up. The file stays (removing it would race with a new acquirer)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # a daemon that stopped cleanly is not left named in it
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def read_holder(state_dir: Path) -> dict[str, Any] | None:
    """Who holds the store's daemon lock: its JSON record, or None if no process holds it.

    The lock is tested (a non-blocking shared ``flock``), not the file trusted, so a record
    left by a killed daemon reads as None. A holder still writing its record reads as ``{}``.
    """
    path = Path(state_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _read_record(fd) if locked_elsewhere(fd) else None
    finally:
        os.close(fd)


def locked_elsewhere(fd: int) -> bool:
    """Whether some other open file description holds an ``flock`` on ``fd``'s file.

    Tested with a non-blocking shared lock, dropped again at once.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
