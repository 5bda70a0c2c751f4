"""Changes made on other hosts, heard at once: a thread LISTENing on a PostgreSQL store.

An operator's change is written to the store, and the command that made it signals the
daemon of its host (``_poll``). Daemons on other hosts sharing the database get no signal:
on PostgreSQL the change's transaction also sends a NOTIFY (``gnomon.store.Nudge``, on
``NOTIFY_CHANNEL``), which the server delivers on commit to every session listening.

Each daemon listens on a connection of its own, outside the store's pool (a pooled session
would be handed to other work, and a LISTEN is the session's), named in
``pg_stat_activity`` as "gnomon daemon listener <host>:<pid>". Every notification wakes the
loop as SIGUSR1 or SIGHUP would (``Daemon.nudge``: a flag and a wake-up byte, safe from any
thread). The timed poll, every second, stays: it is the fallback. A session that ends
(server restart, failover, ``pg_terminate_backend``) is replaced with back-off, logged once
per outage rather than per attempt, and each new session starts with a poll, since a
change committed while nobody listened was heard by no one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator

from sqlalchemy import Connection, Engine, create_engine, make_url
from sqlalchemy.pool import NullPool

from gnomon.store import NOTIFY_CHANNEL, SERVER_CONNECTION, Nudge

log = logging.getLogger("gnomon.daemon")

APPLICATION = "gnomon daemon listener"
LISTEN_WAIT = 0.25  # seconds a wait for notifications lasts: how soon ``stop`` is heard
FIRST_RETRY = 0.5  # seconds before a lost session is replaced, doubling ...
MAX_RETRY = 10.0  # ... up to this; the timed poll covers the gap meanwhile
STOP_WAIT = 2.0  # seconds ``stop`` waits for the thread (a connection attempt may hang)


class Listener:
    """Hands each notification on ``NOTIFY_CHANNEL`` of the database at ``url`` to
    ``nudge`` (its payload, a ``Nudge``), from a thread of its own, until ``stop``."""

    def __init__(self, url: str, nudge: Callable[[str], None]) -> None:
        self.url = url
        self._nudge = nudge
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gnomon-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: the thread ends within ``LISTEN_WAIT`` and closes its session."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT)

    def _run(self) -> None:
        import psycopg
        from sqlalchemy.exc import SQLAlchemyError

        name = f"{APPLICATION} {socket.gethostname()}:{os.getpid()}"[:63]
        engine = create_engine(
            self.url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",  # a notification waits for no transaction's end
            connect_args={**SERVER_CONNECTION, "application_name": name},
        )
        lost = False  # the session failed, and that was logged
        attempts = 0  # since the last session ended
        try:
            while not self._stopped.is_set():
                try:
                    with _listening(engine) as connection:
                        if lost:
                            log.info(
                                "hearing changes made on other hosts at once again",
                                extra={"event_kind": "listener_back"},
                            )
                        lost, attempts = False, 0
                        self._hear(connection)
                except (SQLAlchemyError, psycopg.Error, OSError) as error:
                    if not lost:
                        log.warning(
                            "not hearing changes made on other hosts at once (%s): the"
                            " daemon reads them at its poll, every second, until it does",
                            _first_line(error),
                            extra={"event_kind": "listener_lost"},
                        )
                        lost = True
                    else:
                        log.debug(
                            "still not listening: %s",
                            _first_line(error),
                            extra={"event_kind": "listener_retry"},
                        )
                    self._stopped.wait(min(MAX_RETRY, FIRST_RETRY * 2**attempts))
                    attempts = min(attempts + 1, 10)  # the wait is MAX_RETRY long by then
        finally:
            engine.dispose()

    def _hear(self, connection: Connection) -> None:
        """Hand the notifications of ``connection``'s session on until stopped; raises
        when the session fails."""
        # A change committed before the LISTEN (at start, or while the session was gone)
        # notified no one here: read the store now rather than at the next timed poll.
        self._nudge(Nudge.POLL)
        driver = connection.connection.driver_connection
        assert driver is not None  # an open connection has its driver's
        while not self._stopped.is_set():
            for notification in driver.notifies(timeout=LISTEN_WAIT):
                self._nudge(notification.payload)


@contextlib.contextmanager
def _listening(engine: Engine) -> Iterator[Connection]:
    """A new session of ``engine`` that LISTENs on ``NOTIFY_CHANNEL``, closed after."""
    connection = engine.connect()
    try:
        connection.exec_driver_sql(f"LISTEN {NOTIFY_CHANNEL}")
        yield connection
    finally:
        # A session the server ended fails to close too: the error that ended it is the
        # one to tell, not this one.
        with contextlib.suppress(Exception):
            connection.close()


def listen_for_changes(url: str, nudge: Callable[[str], None]) -> Listener | None:
    """A started ``Listener`` for a PostgreSQL store at ``url``; None for any other store
    (SQLite: its daemon is on this host, and signalled)."""
    if make_url(url).get_backend_name() != "postgresql":
        return None
    listener = Listener(url, nudge)
    listener.start()
    return listener


def _first_line(error: Exception) -> str:
    with contextlib.suppress(IndexError):
        return str(error).strip().splitlines()[0]
    return type(error).__name__
