"""One daemon per database: an exclusive ``flock`` on ``<database>.daemon.lock``.

Two daemons on one SQLite store would each fire every schedule (the uniqueness of
(deployment, fire time) keeps the runs single, but each daemon would also mark the other's
runs Crashed at start-up). The lock belongs to the database, beside its file, so daemons
with different ``GNOMON_HOME`` but the same ``database_url`` exclude each other too, and
the command line finds the daemon to nudge from the database alone. A store that is not a
SQLite file (PostgreSQL) keeps the file lock in the state directory, ``<home>/daemon.lock``
(for the command line to find the daemon), and takes an advisory lock in the database too
(``_serverlock``): daemons with other homes or on other hosts are excluded by that.

The lock is an ``flock`` rather than a pid in a file because the kernel drops it when its
holder dies, even by SIGKILL, so a restart never has to guess whether a recorded pid is
stale. The file also carries a JSON line saying who holds it, for the refusal message and
for ``read_holder``; the lock, not the file's content, decides.

Upgrades: earlier versions locked ``<home>/daemon.lock`` for every store. A daemon of that
version may still run while the new version's commands are used, so ``find_holder`` looks
there too, and a daemon on a SQLite file also takes a *shared* lock on its home's
``daemon.lock``: it refuses to start beside an old daemon (which holds it exclusively), an
old daemon refuses to start beside it, and daemons of this version, each on its own
database, share it.

The descriptor is not inherited across ``exec``, but a child made by a bare ``fork`` shares
it: such a child keeps the store locked after the daemon dies, until it exits too.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gnomon._location import sqlite_file
from gnomon.exceptions import GnomonError

HOME_LOCK_NAME = "daemon.lock"  # in the state directory: the lock of earlier versions
LOCK_SUFFIX = ".daemon.lock"  # beside a SQLite database file


def lock_path(home: Path, database_url: str) -> Path:
    """The daemon lock of the store at ``database_url``: ``<database>.daemon.lock`` for a
    SQLite file, else ``<home>/daemon.lock`` (see the module's docstring)."""
    database = sqlite_file(database_url)
    if database is None:
        return Path(home) / HOME_LOCK_NAME
    return database.with_name(database.name + LOCK_SUFFIX)


def find_holder(home: Path, database_url: str) -> dict[str, Any] | None:
    """The record of the daemon serving the store at ``database_url`` (see ``read_holder``),
    or None: the holder of the database's lock, else a daemon of an earlier version holding
    ``<home>/daemon.lock``."""
    path = lock_path(home, database_url)
    holder = read_holder(path)
    home_lock = Path(home) / HOME_LOCK_NAME
    if holder is None and home_lock != path:
        holder = read_holder(home_lock)
    return holder


class DaemonAlreadyRunning(GnomonError, RuntimeError):
    """Another daemon holds the store's lock; the message says which one."""

    def __init__(self, holder: dict[str, Any], lock_path: Path | str) -> None:
        self.holder = holder
        self.lock_path = lock_path
        if "pid" in holder:
            who = (
                f"pid {holder['pid']} on host {holder.get('hostname', '?')}, "
                f"started {holder.get('started_at', '?')}"
            )
        else:
            who = "it is still starting"
        source = holder.get("config") or ""
        if source.startswith("serve:"):  # a script serving its flows (gnomon.serve)
            from gnomon.deployments import describe_source

            who += f", {describe_source(source)}"
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


def _open_lock_file(path: Path) -> int:
    """The lock file at ``path``, created private (0600) with its directory if need be."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_lock(path: Path, operation: int) -> int:
    """An open descriptor of ``path`` holding ``operation`` (LOCK_EX or LOCK_SH), taken
    without waiting; DaemonAlreadyRunning, naming the holder, if it conflicts."""
    fd = _open_lock_file(path)
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_record(fd)
        os.close(fd)
        raise DaemonAlreadyRunning(holder, path) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


class DaemonLock:
    """A store's daemon lock: ``acquire()`` and ``release()``, or ``with DaemonLock(path):``.

    ``home_lock``, for a lock beside a SQLite file, is the state directory's
    ``daemon.lock``, held shared alongside (see the module's docstring). ``server_url``,
    for a store on a database server, is that database: its advisory lock is taken too.
    """

    def __init__(
        self,
        path: Path,
        home_lock: Path | None = None,
        server_url: str | None = None,
        store: str | None = None,
        *,
        alone: bool = False,
    ) -> None:
        from gnomon.daemon._serverlock import ServerLock

        self.path = Path(path)
        self.store = store  # recorded for commands that look at another store by mistake
        self.home_lock = None if home_lock is None or home_lock == self.path else home_lock
        self._fd: int | None = None
        self._home_fd: int | None = None
        self._server = None if server_url is None else ServerLock(server_url, alone=alone)

    @classmethod
    def for_store(cls, home: Path, database_url: str, *, alone: bool = False) -> DaemonLock:
        """The lock of the store at ``database_url`` for a daemon whose home is ``home``;
        ``alone``: on a server database, the only daemon there (see ``_serverlock``)."""
        scheme = database_url.partition("://")[0].partition("+")[0]
        server = database_url if scheme == "postgresql" else None
        from gnomon.store import store_name

        return cls(
            lock_path(home, database_url),
            Path(home) / HOME_LOCK_NAME,
            server,
            store_name(database_url),
            alone=alone,
        )

    @property
    def server(self) -> bool:
        """Whether the store is a server database (its lock is an advisory lock too)."""
        return self._server is not None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, config: str | Path | None = None) -> None:
        """Take the lock without waiting, and record this process as its holder.

        ``config``, the daemon's config file, goes into the record so that ``read_holder``
        shows what the running daemon was started with. Raises DaemonAlreadyRunning, naming
        the holder, if another process has the lock (or, for ``home_lock``, a daemon of an
        earlier version holds that). Calling it again while held does nothing.
        """
        if self._fd is not None:
            return
        fd = _try_lock(self.path, fcntl.LOCK_EX)
        try:
            home_fd = None if self.home_lock is None else _try_lock(self.home_lock, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        try:
            if self._server is not None:
                self._server.acquire()
        except BaseException:
            os.close(fd)
            if home_fd is not None:
                os.close(home_fd)
            raise
        record = {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "argv": sys.argv,
            "config": None if config is None else str(config),
            "store": self.store,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)
            if home_fd is not None:
                os.close(home_fd)
            raise
        self._fd, self._home_fd = fd, home_fd

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """For a store on a database server, keep its lock held across a lost session (see
        ``_serverlock``); ``on_lost`` hears if another daemon took it meanwhile."""
        if self._server is not None:
            self._server.keep(on_lost)

    def release(self) -> None:
        """Give the lock up. The file stays (removing it would race with a new acquirer)."""
        if self._server is not None:
            self._server.release()
        if self._home_fd is not None:
            home_fd, self._home_fd = self._home_fd, None
            os.close(home_fd)
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # a daemon that stopped cleanly is not left named in it
        except OSError:
            pass  # a read-only or failing disk: the record names a process that has ended
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


def read_holder(path: Path) -> dict[str, Any] | None:
    """Who holds the daemon lock file at ``path`` exclusively: its JSON record, or None if
    no process does.

    The lock is tested (a non-blocking shared ``flock``), not the file trusted, so a record
    left by a killed daemon reads as None, and so do the shared holds of ``home_lock``.
    A holder still writing its record reads as ``{}``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return _read_record(fd) if locked_elsewhere(fd) else None
    finally:
        os.close(fd)


def locked_elsewhere(fd: int) -> bool:
    """Whether some other open file description holds an exclusive ``flock`` on ``fd``'s
    file.

    Tested with a non-blocking shared lock, dropped again at once.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
