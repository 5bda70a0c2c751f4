"""Engine creation, with the SQLite settings that let many processes share one file.

On SQLite every transaction starts with ``BEGIN IMMEDIATE``: a writer takes the write lock up
front and, if another process holds it, waits on ``busy_timeout``. A deferred transaction that
reads first and writes later cannot wait like that: SQLite fails its read-to-write upgrade at
once with "database is locked". Reads that never write can use ``read_engine`` instead,
whose transactions begin with a plain deferred ``BEGIN`` and so never wait for writers (WAL
lets readers and one writer work at the same time).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy
from sqlalchemy import Connection, Dialect, Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool

from gnomon._files import ensure_private_file, open_private
from gnomon._location import existing_file_uri, sqlite_file
from gnomon._text import loads
from gnomon.exceptions import StoreFileGone
from gnomon.store._connect import BUSY_TIMEOUT_MS, server_settings

if TYPE_CHECKING:
    from gnomon.store._driver import Bound

# Connections a process keeps open to a server database (the database_pool_size setting).
DEFAULT_POOL_SIZE = 5
# Set (to "daemon") in the daemon and its workers: their connections never checkpoint the
# WAL as part of a commit; the daemon's checkpointer does it at quiet moments.
EXTERNAL_CHECKPOINTS_ENV = "GNOMON_WAL_CHECKPOINTS"

# Execution option naming the BEGIN statement a SQLite transaction starts with.
_BEGIN_OPTION = "gnomon_sqlite_begin"


def sqlite_path(url: str | URL) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite (the
    rule is ``gnomon._location.sqlite_file``'s, which the command line uses too)."""
    return sqlite_file(url if isinstance(url, str) else url.render_as_string(False))


def create_engine(
    url: str | URL, *, create: bool = True, pool_size: int = DEFAULT_POOL_SIZE
) -> Engine:
    """An engine for the store at ``url``; SQLite files get WAL and ``BEGIN IMMEDIATE``.

    A SQLite file is created (with its directory) by the engine's first connection if
    ``create`` and not at all otherwise; later connections only open the existing file (see
    ``_Opener``), so a database deleted under a running process is never silently replaced
    by an empty one that other processes would then use.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _server_engine(parsed, pool_size)
    if parsed.get_backend_name() != "sqlite":
        return sqlalchemy.create_engine(parsed, pool_pre_ping=True, json_deserializer=loads)
    path = sqlite_path(parsed)
    if path is not None and create:
        # Private (see gnomon._files): the database holds run parameters and tracebacks,
        # and SQLite gives its -wal and -shm files the database file's mode.
        ensure_private_file(path)
    engine = sqlalchemy.create_engine(
        parsed,
        connect_args={"factory": _SerialisedWriter} if path is not None else {},
        json_deserializer=loads,  # rows written before lone surrogates were refused
    )
    if path is not None:
        event.listen(engine, "do_connect", _Opener(path, create).connect)
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _server_engine(url: URL, size: int) -> Engine:
    """An engine for a PostgreSQL store (psycopg 3).

    Its pool keeps ``size`` connections (the ``database_pool_size`` setting) and opens as
    many more when busy; each is checked before use (the server may have dropped it).
    Every wait is bounded, as SQLite's busy timeout bounds them there: a lock wait by
    ``lock_timeout`` (the daemon's loop by BOUNDED_WAIT_MS, so it keeps ticking while
    another program holds a lock), a connection attempt by ``connect_timeout``, and a
    server that stops answering is noticed by TCP keepalives instead of a read that never
    returns.
    """
    name = url.query.get("application_name")
    engine = sqlalchemy.create_engine(
        url,
        pool_size=size,
        max_overflow=size,
        pool_timeout=BUSY_TIMEOUT_MS / 1000,
        pool_pre_ping=True,
        json_deserializer=loads,
        connect_args=server_settings(name if isinstance(name, str) else None),
    )
    event.listen(engine, "begin", _bound_server_lock_waits)
    return engine


def _bound_server_lock_waits(connection: Connection) -> None:
    """In the daemon's loop, a transaction's lock waits last at most BOUNDED_WAIT_MS."""
    if threading.get_ident() == _bounded["thread"]:
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {BOUNDED_WAIT_MS}")


class _Opener:
    """Opens an engine's SQLite connections: the first may create the file (if allowed),
    every later one opens the same file (SQLite's ``mode=rw``, after checking the path's
    device and inode) or fails with ``StoreFileGone``: a process never goes on in another
    file than the one it started with."""

    def __init__(self, path: Path, create: bool) -> None:
        self.path = path
        self.create = create
        self.opened: tuple[int, int] | None = None  # the file's (device, inode)
        self._lock = threading.Lock()

    def connect(
        self, dialect: Dialect, _record: Any, cargs: list[Any], cparams: dict[str, Any]
    ) -> Any:
        """The connection SQLAlchemy's ``do_connect`` asks for (None: connect as changed)."""
        if self.opened is None:
            with self._lock:  # the connections of other threads wait for the file
                if self.opened is None:
                    if not self.create:
                        self._open_existing(cargs, cparams)
                    connection = dialect.connect(*cargs, **cparams)
                    self.opened = file_identity(self.path)
                    return connection
        self._open_existing(cargs, cparams)
        if file_identity(self.path) != self.opened:
            raise StoreFileGone(self.path, replaced=True)
        return None

    def _open_existing(self, cargs: list[Any], cparams: dict[str, Any]) -> None:
        if not self.path.exists():
            raise StoreFileGone(self.path)
        cargs[0] = existing_file_uri(self.path)
        cparams["uri"] = True


def file_identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the file at ``path``; None if there is none."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def read_engine(engine: Engine) -> Engine:
    """A view of ``engine`` (same pool) whose SQLite transactions begin deferred."""
    return engine.execution_options(**{_BEGIN_OPTION: "BEGIN"})


class DriverTransaction:
    """A write transaction on the driver's own connection, running statements compiled
    ahead (``_driver.Bound``)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection  # the driver's (DB-API) connection

    def run(self, bound: Bound) -> Any:
        """Run ``bound``; its cursor."""
        return bound.execute(self.connection)

    def rows(self, bound: Bound) -> list[Any]:
        """Run ``bound`` and return the rows it selects or returns."""
        return list(self.run(bound).fetchall())

    def count(self, bound: Bound) -> int:
        """Run ``bound`` and return how many rows it changed."""
        return int(self.run(bound).rowcount)


class DriverConnection:
    """One of ``engine``'s pooled connections, kept checked out for one component's write
    transactions through the driver (``transaction``, ``run_alone``): a worker's claims, a
    batched writer's commits, a daemon's fires. Checking a connection out of SQLAlchemy's
    pool and back in (with its reset) for each transaction cost a trivial run in a worker
    4% of its instructions (``bench/run_cost.py``: 1,948,000 against 1,873,000 kept), and
    on PostgreSQL a round trip more, for the pool's pre-ping.

    A transaction takes the kept connection if no other thread's transaction has it, and
    a pooled connection of its own otherwise, so that threads never wait for each other
    here (the daemon's loop bounds its waits). A transaction that fails gives the kept
    connection up (invalidated: the next one opens a new one), so a broken connection is
    never reused. A server (PostgreSQL) may drop a connection between transactions: one
    kept idle for more than ``SERVER_CHECK_DELAY`` is pinged first, and replaced if that
    fails, as PgBouncer checks its idle server connections (``server_check_delay``).
    ``close`` returns it to the pool; a forked child must drop the object unclosed.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pooled: Any = None
        self._used = 0.0  # when (monotonic) its last transaction ended
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[DriverTransaction]:
        """A write transaction (see ``driver_transaction``) on the kept connection."""
        pooled, kept = self._take()
        try:
            with _transaction(self.engine.dialect, pooled) as transaction:
                yield transaction
        except BaseException:
            self._give_back(pooled, kept, failed=True)
            raise
        self._give_back(pooled, kept, failed=False)

    def run_alone(self, bound: Bound) -> list[Any]:
        """Run the one statement ``bound`` as a transaction of its own; the rows it returns.
        On PostgreSQL it runs in autocommit mode (outside the daemon's loop, which bounds
        its lock waits in a transaction): no BEGIN or COMMIT, so one round trip."""
        dialect = self.engine.dialect
        if dialect.name == "sqlite" or threading.get_ident() == _bounded["thread"]:
            with self.transaction() as transaction:
                cursor = transaction.run(bound)
                return list(cursor.fetchall()) if cursor.description else []
        pooled, kept = self._take()
        dbapi = pooled.dbapi_connection
        try:
            dbapi.autocommit = True
            try:
                cursor = bound.execute(dbapi)
                rows = list(cursor.fetchall()) if cursor.description else []
            finally:
                dbapi.autocommit = False
        except dialect.loaded_dbapi.Error as error:
            self._give_back(pooled, kept, failed=True)
            raise DBAPIError.instance(None, None, error, dialect.loaded_dbapi.Error) from error
        except BaseException:
            self._give_back(pooled, kept, failed=True)
            raise
        self._give_back(pooled, kept, failed=False)
        return rows

    def _take(self) -> tuple[Any, bool]:
        """The connection for one transaction, and whether it is the kept one: a pooled
        one of its own while another thread's transaction has the kept one."""
        if not self._lock.acquire(blocking=False):
            return _checkout(self.engine), False
        try:
            return self._checked(), True
        except BaseException:
            self._lock.release()
            raise

    def _give_back(self, pooled: Any, kept: bool, failed: bool) -> None:
        """End a transaction's use of ``pooled``: the kept connection stays kept unless
        the transaction failed (then it is invalidated), a pooled one goes back."""
        if not kept:
            pooled.close()
            return
        if failed:
            self._pooled = None
            with contextlib.suppress(Exception):
                pooled.invalidate()
        self._used = time.monotonic()
        self._lock.release()

    def _checked(self) -> Any:
        """The kept connection (the caller holds the lock), pinged if a server's has been
        idle a while; a new one if there is none or the ping fails."""
        pooled = self._pooled
        dialect = self.engine.dialect
        idle = time.monotonic() - self._used
        if pooled is not None and dialect.name != "sqlite" and idle > SERVER_CHECK_DELAY:
            try:
                dialect.do_ping(pooled.dbapi_connection)
            except Exception:
                self._pooled = None
                with contextlib.suppress(Exception):
                    pooled.invalidate()
        if self._pooled is None:
            self._pooled = self._keep()
        return self._pooled

    def _keep(self) -> Any:
        """A pooled connection to keep, leaving the pool one for reads: a daemon whose
        database file is deleted goes on through the connections it has to the end of its
        shutdown (``daemon._storefile``), and a new one could only fail then."""
        pooled = _checkout(self.engine)
        pool = self.engine.pool
        sqlite = self.engine.dialect.name == "sqlite"
        if sqlite and isinstance(pool, QueuePool) and not pool.checkedin():
            try:  # opened now, while the file is surely there
                _checkout(self.engine).close()
            except BaseException:
                pooled.close()  # not kept after all: back to the pool
                raise
        return pooled

    def close(self) -> None:
        with self._lock:
            pooled, self._pooled = self._pooled, None
            if pooled is not None:
                pooled.close()


# Seconds a kept server connection may be idle and still be used without a ping first.
SERVER_CHECK_DELAY = 1.0


@contextlib.contextmanager
def driver_transaction(engine: Engine) -> Iterator[DriverTransaction]:
    """A write transaction on one of ``engine``'s pooled connections, driven through the
    driver's connection itself, for the store's hottest writes, whose statements are
    compiled ahead (see ``_writes``): a worker's claim and final state, a fire's runs.

    A transaction through SQLAlchemy's ``Connection`` cost ~320,000 instructions (events,
    transaction objects, result set-up) against ~96,000 this way: two per trivial run in a
    worker, whose whole run cost ~2.9 million (``bench/run_cost.py``).
    Here the pool, the SQLite settings and the write turn apply as with ``engine.begin()``,
    and the driver's errors are raised as SQLAlchemy's (``OperationalError``, ...).
    """
    pooled = _checkout(engine)
    try:
        with _transaction(engine.dialect, pooled) as transaction:
            yield transaction
    finally:
        pooled.close()


def open_ahead(engine: Engine) -> None:
    """Open the connections of ``engine``'s pool now, each with its write turn's lock
    file, and leave them in the pool: a worker that is about to give root up for a
    deployment's user (``daemon._runsetup``) goes on through the connections it opened,
    where a new one would find the database's files closed to that user. A run then has
    the pool's connections and the writer's two kept ones."""
    size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 1
    held = [_checkout(engine) for _ in range(max(1, size))]
    try:
        for pooled in held:
            with _transaction(engine.dialect, pooled):
                pass
    finally:
        for pooled in held:
            pooled.close()


def _checkout(engine: Engine) -> Any:
    """One of ``engine``'s pooled driver connections. The pool raises the driver's own
    error when it cannot connect (a server that is down refuses it): raised here as
    SQLAlchemy's, so that callers tell an unavailable database (``OperationalError``: keep
    the rows and retry) from rows it rejects."""
    dbapi = engine.dialect.loaded_dbapi
    try:
        return engine.raw_connection()
    except dbapi.Error as error:
        raise DBAPIError.instance(None, None, error, dbapi.Error) from error


@contextlib.contextmanager
def _transaction(dialect: Dialect, pooled: Any) -> Iterator[DriverTransaction]:
    dbapi = pooled.dbapi_connection
    assert dbapi is not None  # a pool's checkout always has one
    try:
        try:
            if isinstance(dbapi, _SerialisedWriter):
                dbapi.begin_immediate()
            elif dialect.name == "sqlite":  # autocommit mode (see above): begin it ourselves
                dbapi.execute("BEGIN IMMEDIATE")
            elif threading.get_ident() == _bounded["thread"]:  # as _bound_server_lock_waits
                dbapi.execute(f"SET LOCAL lock_timeout = {BOUNDED_WAIT_MS}")
            yield DriverTransaction(dbapi)
            dbapi.commit()
        except BaseException:
            dbapi.rollback()  # also ends the write turn
            raise
    except dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(None, None, error, dialect.loaded_dbapi.Error) from error


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Stop pysqlite from issuing its own BEGIN; _begin_sqlite_transaction issues ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first, so that switching to WAL waits for other processes too.
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        if os.environ.get(EXTERNAL_CHECKPOINTS_ENV):
            # SQLite checkpoints in the commit that takes the WAL past 1,000 pages, copying
            # and syncing them while that writer still holds its turn (10-15 ms here): a
            # stall for every writer queued behind it, every ~50 runs of a burst.
            cursor.execute("PRAGMA wal_autocheckpoint = 0")
        (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
        if mode.lower() not in {"wal", "memory"}:
            cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    begin = connection.get_execution_options().get(_BEGIN_OPTION, "BEGIN IMMEDIATE")
    dbapi = connection.connection.dbapi_connection
    if begin == "BEGIN IMMEDIATE" and isinstance(dbapi, _SerialisedWriter):
        try:
            dbapi.begin_immediate()
        except sqlite3.Error as error:  # as SQLAlchemy raises the driver's errors
            raise DBAPIError.instance(begin, None, error, sqlite3.Error) from error
        return
    connection.exec_driver_sql(begin)


# The daemon's loop must keep ticking while another program holds the database (its health
# tells "riding out a locked store" from "stuck"): its write transactions wait at most this
# long for the write lock, then fail, and the loop retries with back-off. Other threads
# (workers, the batched writer) wait the full BUSY_TIMEOUT_MS.
BOUNDED_WAIT_MS = 2_000
# The loop's thread ident, and when (monotonic) it began its current wait.
_bounded: dict[str, Any] = {"thread": None, "since": None}


def bound_write_waits(thread_ident: int | None) -> None:
    """Bound the write-lock waits of the thread ``thread_ident`` (the daemon's loop) to
    BOUNDED_WAIT_MS each; None lifts the bound."""
    _bounded["thread"] = thread_ident
    _bounded["since"] = None


def bounded_wait_started() -> float | None:
    """When (``time.monotonic()``) the bounded thread began its current wait for the
    store's write lock; None while it is not waiting."""
    return _bounded["since"]


_holding = threading.local()


class _SerialisedWriter(sqlite3.Connection):
    """A SQLite connection whose write transactions queue on an ``flock`` beside the file.

    SQLite's own busy handler polls for the write lock in sleeps of 1, 2, 5, 10 ms and
    more, so a writer that finds it taken typically waits several times as long as the
    other's transaction lasts. Waiting on a kernel lock instead wakes the next writer the
    moment the holder commits. The flock only orders writers: ``BEGIN IMMEDIATE`` still
    takes SQLite's lock, so a writer that does not use it (the standard library's sqlite3
    in ``store._fast``, another program) stays correct, just not as prompt.

    Each connection opens the lock file itself: flock locks belong to an open file
    description, so two connections in one process exclude each other too. A thread that
    already holds a write turn on another connection does not queue again (it would wait
    for itself); its nested ``BEGIN IMMEDIATE`` meets SQLite's busy timeout as before.
    """

    _lock_fd: int | None = None
    _turn = False
    _short_busy_timeout = False

    def begin_immediate(self) -> None:
        """Take the write turn, then ``BEGIN IMMEDIATE``; in the bounded thread (the
        daemon's loop) each wait is at most BOUNDED_WAIT_MS, and the wait is visible to
        ``bounded_wait_started``."""
        bounded = threading.get_ident() == _bounded["thread"]
        started = time.monotonic()
        if bounded:
            _bounded["since"] = started
        try:
            self.take_write_turn(BOUNDED_WAIT_MS / 1000 if bounded else None)
            if bounded:  # what is left of the bound for SQLite's own lock
                waited = round((time.monotonic() - started) * 1000)
                self.execute(f"PRAGMA busy_timeout = {max(100, BOUNDED_WAIT_MS - waited)}")
                self._short_busy_timeout = True
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.end_write_turn()
            raise
        finally:
            if bounded:
                _bounded["since"] = None

    def take_write_turn(self, within: float | None = None) -> None:
        """Queue for the write turn; with ``within`` seconds, go on without it after that
        long (SQLite's own lock still decides, on its busy timeout)."""
        if self._lock_fd is None:
            database = self.execute("PRAGMA database_list").fetchone()[2]
            if not database:
                return
            self._lock_fd = open_private(database + ".writers")
        if getattr(_holding, "turn", False):
            return
        if within is None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        elif not _flock_within(self._lock_fd, within):
            return
        self._turn = _holding.turn = True

    def end_write_turn(self) -> None:
        if self._short_busy_timeout:
            self._short_busy_timeout = False
            with contextlib.suppress(sqlite3.Error):
                self.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if self._turn and self._lock_fd is not None:
            self._turn = _holding.turn = False
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_write_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_write_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.end_write_turn()
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._lock_fd)
                self._lock_fd = None


def _flock_within(fd: int, seconds: float) -> bool:
    """Take an exclusive ``flock`` on ``fd``, trying for up to ``seconds``; whether it was
    taken. A blocking flock cannot time out, so this polls, first often (a write turn lasts
    well under a millisecond), then every few milliseconds."""
    deadline = time.monotonic() + seconds
    pause = 0.00005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.005)
        else:
            return True
