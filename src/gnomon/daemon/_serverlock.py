"""Daemons of this version on one server database, apart from daemons of earlier ones: a
PostgreSQL advisory lock held *shared*, by a connection of its own.

Several daemons of this version share a PostgreSQL database as a cluster (``_cluster``):
each holds this lock shared. Daemons of versions before the cluster held it exclusively
and ran alone; the lock keeps the two apart during an upgrade from such a version: an
old daemon refuses to start beside new ones, and a new one beside an old one, naming it.

The lock's session names its holder in ``application_name``, so a refused daemon says who
holds it, read from ``pg_stat_activity``.

A server restart or failover ends the session, and with it the lock, while the daemon goes
on (its pool reconnects). ``keep`` checks the session every ``KEEP_EVERY`` seconds from a
thread of its own and takes the lock again on a new session; if an old daemon took it in
between, the daemon is told (``on_lost``) and stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from gnomon.daemon._lock import DaemonAlreadyRunning
from gnomon.store import SERVER_CONNECTION

# "gnomon" in ASCII, then 2 (the migrations' lock is 1).
DAEMON_LOCK_KEY = 0x676E6F6D6F6E_02
_APPLICATION = "gnomon daemon"
KEEP_EVERY = 2.0  # seconds between checks that the lock's session still holds it

log = logging.getLogger("gnomon.daemon")

_HOLDER = text(
    "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l"
    " JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.database = ("
    "   SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND (l.classid::bigint << 32) | l.objid::bigint = :key"
)


class ServerLock:
    """The daemon lock of the server database at ``url``: ``acquire`` and ``release``."""

    def __init__(self, url: str, *, alone: bool = False) -> None:
        self.url = url
        # Exclusive, as before clusters: a daemon serving a script's deployments runs alone
        # on its database (it decides their fires itself, and settles every run it finds).
        self.alone = alone
        self._engine: Engine | None = None
        self._connection: Connection | None = None
        self._guard = threading.Lock()  # the session is used by acquire, keep and release
        self._stopped = threading.Event()

    @property
    def held(self) -> bool:
        return self._connection is not None

    def acquire(self) -> None:
        """Take the lock without waiting; DaemonAlreadyRunning, naming the holder, if
        another session has it. Calling it again while held does nothing."""
        with self._guard:
            if self._connection is None:
                self._take()

    def _take(self) -> None:
        name = f"{_APPLICATION} {socket.gethostname()}:{os.getpid()}"[:63]
        engine = create_engine(
            self.url,
            poolclass=NullPool,
            connect_args={
                **SERVER_CONNECTION,  # a check never hangs on a server gone silent
                "application_name": name,
                "options": "-c statement_timeout=5000",
            },
        )
        try:
            connection = engine.connect()
            try:
                taken = connection.execute(
                    text(
                        "SELECT pg_try_advisory_lock(:key)"
                        if self.alone
                        else "SELECT pg_try_advisory_lock_shared(:key)"
                    ),
                    {"key": DAEMON_LOCK_KEY},
                ).scalar_one()
                connection.commit()  # the lock is the session's, not the transaction's
                if not taken:
                    holder = _holder(connection)
                    raise DaemonAlreadyRunning(
                        holder, f"PostgreSQL advisory lock {DAEMON_LOCK_KEY}"
                    )
            except BaseException:
                connection.close()
                raise
        except BaseException:
            engine.dispose()
            raise
        self._engine, self._connection = engine, connection

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """Check the lock's session every KEEP_EVERY seconds, in a thread, until released;
        take the lock again on a new session if the server ended the old one, and call
        ``on_lost`` with the reason if another daemon has taken it meanwhile."""
        threading.Thread(
            target=self._keep, args=(on_lost,), name="gnomon-server-lock", daemon=True
        ).start()

    def _keep(self, on_lost: Callable[[str], None]) -> None:
        while not self._stopped.wait(KEEP_EVERY):
            with self._guard:
                if self._stopped.is_set() or self._alive():
                    continue
                self._drop()
                try:
                    self._take()
                except DaemonAlreadyRunning as refusal:
                    self._stopped.set()
                    on_lost(f"the database's daemon lock was lost and taken over: {refusal}")
                    return
                except Exception as error:  # the server is still away: try again later
                    log.warning("cannot take the database's daemon lock again yet: %s", error)
                    continue
                log.warning("the database's daemon lock was lost with its session; held again")

    def _alive(self) -> bool:
        connection = self._connection
        if connection is None:
            return False
        try:
            connection.execute(text("SELECT 1"))
            connection.rollback()
        except Exception:
            return False
        return True

    def release(self) -> None:
        """Give the lock up by ending its session."""
        self._stopped.set()
        with self._guard:
            self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        engine, self._engine = self._engine, None
        if connection is not None:
            # A session already gone has released the lock already.
            with contextlib.suppress(Exception):
                connection.close()
        if engine is not None:
            engine.dispose()


def _holder(connection: Connection) -> dict[str, Any]:
    """The refusal's record of who holds the lock (as ``_lock``'s file records say it)."""
    row = connection.execute(_HOLDER, {"key": DAEMON_LOCK_KEY}).first()
    connection.rollback()
    if row is None:
        return {}  # released in between, or held by a session we may not see
    application, address, started = row
    host, _, pid = str(application or "").removeprefix(f"{_APPLICATION} ").rpartition(":")
    record: dict[str, Any] = {
        "hostname": host or (str(address) if address else "?"),
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ") if started else "?",
    }
    if pid.isdigit():
        record["pid"] = int(pid)
    return record
