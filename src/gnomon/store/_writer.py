"""The batched writer: run and state rows recorded in memory, committed by a thread.

The engine records ~4 rows per task run; committing each would cost far more than the task.
Recording only appends to an in-memory batch under a lock. A daemon thread commits the batch
in one transaction every ``flush_interval`` seconds, and ``flush()`` commits it now and waits.
``commit_now()`` commits it in the calling thread instead, saving the two thread switches of
a flush for the one write that must be durable before a flow run reports its end. Batches
are taken and committed under one lock, by whichever thread commits, so they reach the
database in the order their rows were recorded.
An update of a run whose insert is still in the batch is merged into the insert, and several
updates of one run become one, so a short task run is usually written as a single row.

A batch that fails to commit because the database is unavailable (locked past the busy
timeout, disk full, connection lost) is logged, kept ahead of newer rows and retried;
``flush()`` raises ``StoreWriteError`` for it, so a caller waiting on its rows learns they
are not stored. A batch that fails for any other reason holds a row the database will never
accept; it is then written row by row, and only the rows that fail are dropped and logged,
so one bad row cannot stop every later write of the process.

A flow run's update that sets its state applies only to a run without a final state (see
``_execute``): a run never gets a second final state, whichever process writes it.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from gnomon.exceptions import GnomonError, StoreFileGone
from gnomon.store._db import (
    DriverConnection,
    DriverTransaction,
    create_engine,
    open_ahead,
    read_engine,
)
from gnomon.store._driver import Bound, DriverQueries, driver_queries
from gnomon.store._schema import FINAL_STATE_TYPES

Row = dict[str, Any]

# stdlib logging, rendered by gnomon's structlog formatter once logging is configured.
log = logging.getLogger("gnomon.store")

MAX_RETRY_DELAY = 5.0


def _unavailable(error: Exception) -> bool:
    """Whether ``error`` says the database cannot take writes now, rather than that some row
    is wrong: then the batch is kept and retried, never dropped.

    Only a constraint the row breaks (``IntegrityError``) or a value the database refuses
    (``DataError``), and a value that cannot be converted at all (a ``StatementError`` that
    is not the driver's), are the rows' fault. Every other error of the database is about
    the database: down or refusing connections (``OperationalError``), read-only after a
    failover (PostgreSQL's ``ReadOnlySqlTransaction``, an ``InternalError``), damaged (a
    ``DatabaseError``), every pooled connection busy (the pool's ``TimeoutError``), a file
    gone from under the process (``StoreFileGone``).
    """
    if isinstance(error, (IntegrityError, DataError)):
        return False
    return isinstance(error, (DBAPIError, PoolTimeoutError, StoreFileGone))


# Every live writer, for the atexit flush and the fork reset.
_live_writers: weakref.WeakSet[BatchWriter] = weakref.WeakSet()

# Engines a forked child inherited: kept referenced so their SQLite connections are never
# closed (or reused) in the child, which SQLite forbids for connections opened before fork().
_inherited_engines: list[Engine] = []


class StoreWriteError(GnomonError, RuntimeError):
    """Recorded rows could not be committed; they stay queued and are retried."""


@dataclass(slots=True)
class _Batch:
    """Rows waiting to be written, in the order they must be written (foreign keys)."""

    flow_inserts: dict[str, Row] = field(default_factory=dict)
    task_inserts: dict[str, Row] = field(default_factory=dict)
    flow_updates: dict[str, Row] = field(default_factory=dict)
    task_updates: dict[str, Row] = field(default_factory=dict)
    states: list[Row] = field(default_factory=list)
    logs: list[Row] = field(default_factory=list)

    def absorb(self, newer: _Batch) -> None:
        """Queue ``newer``'s rows after this batch's, coalescing as recording does."""
        self.flow_inserts.update(newer.flow_inserts)
        self.task_inserts.update(newer.task_inserts)
        for run_id, values in newer.flow_updates.items():
            _coalesce(self.flow_inserts, self.flow_updates, run_id, values)
        for run_id, values in newer.task_updates.items():
            _coalesce(self.task_inserts, self.task_updates, run_id, values)
        self.states.extend(newer.states)
        self.logs.extend(newer.logs)

    def __len__(self) -> int:
        return sum(
            len(part)
            for part in (
                self.flow_inserts,
                self.task_inserts,
                self.flow_updates,
                self.task_updates,
                self.states,
                self.logs,
            )
        )


def _coalesce(inserts: dict[str, Row], updates: dict[str, Row], run_id: str, values: Row) -> None:
    """Fold an update into the pending insert of the same run, or into its pending update."""
    pending = inserts.get(run_id)
    if pending is None:
        pending = updates.get(run_id)
        if pending is None:
            updates[run_id] = values
            return
    pending.update(values)


@dataclass(frozen=True, slots=True)
class _Failure:
    attempt: int
    upto: int  # the failed attempt held every row recorded up to this sequence number
    error: Exception


class BatchWriter:
    """Records run rows in memory and commits them in batches from a daemon thread."""

    def __init__(self, engine: Engine, interval: float) -> None:
        self._use_engine(engine)
        self.interval = interval
        self._reset_state()
        _live_writers.add(self)

    def _use_engine(self, engine: Engine) -> None:
        self.engine = engine
        self.reader = read_engine(engine)
        # The hot writes, compiled ahead for the engine's dialect (``_writes``).
        self.queries: DriverQueries = driver_queries(engine.dialect.name)
        # The connections kept for the batches' commits and for the writes the store's
        # queries make at once through the driver (a worker's claims, a daemon's fires).
        self.batches = DriverConnection(engine)
        self.direct = DriverConnection(engine)

    def open_connections(self) -> None:
        """Open the kept connections and the pool's now (see ``_db.open_ahead``): a
        SQLite database's files may be closed to the user a worker becomes. A server's
        connections do not depend on the process's user: nothing to do."""
        if self.engine.dialect.name != "sqlite":
            return
        for kept in (self.batches, self.direct):
            with kept.transaction():
                pass
        open_ahead(self.engine)

    def close_connections(self) -> None:
        """Return the kept connections to the engine's pool (before it is disposed)."""
        self.batches.close()
        self.direct.close()

    def _reset_state(self) -> None:
        self._lock = threading.Lock()
        # Held from taking a batch until it is settled: batches commit in the order taken.
        self._commit_lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the writer thread waits on this
        self._done = threading.Condition(self._lock)  # flush() waits on this
        self._batch = _Batch()
        self._seq = 0  # operations recorded so far
        self._committed = 0  # operations committed so far
        self._signalled = False  # the writer thread knows the batch has rows
        self._flush_requested = False
        self._stopping = False
        self._attempts = 0
        self._failures = 0  # consecutive failed attempts, for the retry back-off
        self._failure: _Failure | None = None
        self._thread: threading.Thread | None = None

    # Recording: called by the engine ~4 times per task run, so each is kept to a few µs.

    def insert_flow_run(self, row: Row) -> None:
        """Queue a new flow run row (it must carry its ``id``)."""
        with self._lock:
            self._batch.flow_inserts[row["id"]] = dict(row)
            self._recorded()

    def update_flow_run(self, id: str, **values: Any) -> None:
        """Queue new values for columns of flow run ``id``."""
        with self._lock:
            _coalesce(self._batch.flow_inserts, self._batch.flow_updates, id, values)
            self._recorded()

    def insert_task_run(self, row: Row) -> None:
        """Queue a new task run row (it must carry its ``id``)."""
        with self._lock:
            self._batch.task_inserts[row["id"]] = dict(row)
            self._recorded()

    def update_task_run(self, id: str, **values: Any) -> None:
        """Queue new values for columns of task run ``id``."""
        with self._lock:
            _coalesce(self._batch.task_inserts, self._batch.task_updates, id, values)
            self._recorded()

    def settle_flow_run(self, id: str, values: Row, state: Row) -> None:
        """Queue a flow run's new state, its columns and its history row, into one batch:
        if the run has a final state already, the history row is dropped with the refused
        update (see ``_execute``), never written in a batch of its own. A final state after
        one queued in this batch is refused here: coalesced, it would replace the first
        while both history rows were written (a run Completed, then Crashed by a signal
        before its batch was flushed)."""
        with self._lock:
            pending = self._batch.flow_inserts.get(id) or self._batch.flow_updates.get(id)
            refused = (
                pending is not None
                and pending.get("state_type") in FINAL_STATE_TYPES
                and values.get("state_type") in FINAL_STATE_TYPES
            )
            if not refused:
                _coalesce(self._batch.flow_inserts, self._batch.flow_updates, id, values)
                self._batch.states.append(state)
                self._recorded()
        if refused:
            _log_refused({id: values.get("state_name")})

    def add_state(self, row: Row) -> None:
        """Queue a ``run_states`` row (not copied: the caller must not change it after)."""
        with self._lock:
            self._batch.states.append(row)
            self._recorded()

    def add_log(self, row: Row) -> None:
        """Queue a ``run_logs`` row (not copied: the caller must not change it after)."""
        with self._lock:
            self._batch.logs.append(row)
            self._recorded()

    def _recorded(self) -> None:
        # Caller holds the lock. Wakes the writer thread once per batch, not once per row.
        self._seq += 1
        if not self._signalled:
            self._signalled = True
            self._ensure_thread()
            self._work.notify()

    # Flushing and closing.

    def flush(self, timeout: float | None = None) -> None:
        """Commit everything recorded before this call, and wait until it is committed.

        Raises ``StoreWriteError`` if the commit failed (the rows stay queued; the next
        flush retries them) or did not finish within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._seq
            if self._committed >= target:
                return
            started = self._attempts
            self._request_flush()
            while self._committed < target:
                if self._thread is None:  # a concurrent close() stopped it
                    self._request_flush()
                failure = self._failure
                if failure and failure.attempt > started and failure.upto >= target:
                    raise StoreWriteError(
                        f"could not write runs to the store: {failure.error}"
                    ) from failure.error
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise StoreWriteError(f"store writes not committed within {timeout}s")
                self._done.wait(remaining)

    def commit_now(self) -> None:
        """Commit everything recorded before this call in the calling thread, in one
        transaction, after the batch the writer thread may be committing.

        Raises ``StoreWriteError`` if the commit fails; the rows stay queued, ahead of newer
        ones, and the writer thread retries them.
        """
        with self._commit_lock:
            with self._lock:
                if self._committed >= self._seq:
                    return
                batch, upto, attempt = self._take()
            error = self._write(batch)
            with self._lock:
                self._settle(batch, upto, attempt, error)
                if error is not None:
                    self._ensure_thread()
                    self._work.notify()
        if error is not None:
            raise StoreWriteError(f"could not write runs to the store: {error}") from error

    def close(self, timeout: float | None = 60.0) -> None:
        """Flush, then stop the writer thread (recording again starts a new one)."""
        try:
            self.flush(timeout)
        except StoreWriteError:
            log.exception("store rows lost on close: %d rows", len(self._batch))
        with self._lock:
            thread = self._thread
            self._stopping = True
            self._work.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # The writer thread.

    def _request_flush(self) -> None:
        # Caller holds the lock.
        self._flush_requested = self._signalled = True
        self._ensure_thread()
        self._work.notify()

    def _ensure_thread(self) -> None:
        # Caller holds the lock.
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="gnomon-store-writer", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:
            while self._wait_for_batch():
                with self._commit_lock:
                    with self._lock:
                        batch, upto, attempt = self._take()
                    error = self._write(batch)  # empty if commit_now() took the rows
                    with self._lock:
                        self._settle(batch, upto, attempt, error)
        finally:
            with self._lock:
                self._thread = None
                self._signalled = False
                self._done.notify_all()

    def _wait_for_batch(self) -> bool:
        """Wait for rows and gather more for one interval; False: stop the thread.

        Only flush() and close() cut the interval short. If commit_now() takes the rows
        meanwhile, the wait starts over at the next row, rather than writing that row's
        run alone in a transaction of its own while its thread records the rest.
        """
        with self._lock:
            while True:
                while not self._signalled and not self._stopping:
                    self._work.wait()
                if self._flush_requested or self._stopping:
                    break
                taken = self._attempts
                delay = min(self.interval * 2**self._failures, MAX_RETRY_DELAY)
                deadline = time.monotonic() + delay
                while self._attempts == taken and not (self._flush_requested or self._stopping):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._work.wait(remaining)
                if self._attempts == taken or self._flush_requested or self._stopping:
                    break
            return not (self._stopping and (not self._signalled or self._failures))

    def _take(self) -> tuple[_Batch, int, int]:
        # Caller holds the lock and the commit lock.
        batch, self._batch = self._batch, _Batch()
        self._signalled = self._flush_requested = False
        self._attempts += 1
        return batch, self._seq, self._attempts

    def _settle(self, batch: _Batch, upto: int, attempt: int, error: Exception | None) -> None:
        # Caller holds the lock.
        if error is None:
            if self._failures:
                log.warning("store writes work again, after %d failed attempts", self._failures)
            self._committed = upto
            self._failures = 0
            self._failure = None
        else:
            batch.absorb(self._batch)  # the failed rows go first, newer ones after
            self._batch = batch
            self._signalled = True
            self._failures += 1
            self._failure = _Failure(attempt, upto, error)
        self._done.notify_all()

    def _write(self, batch: _Batch) -> Exception | None:
        """Commit ``batch`` in one transaction; return the error instead of raising it."""
        if not len(batch):
            return None
        try:
            # Bound before the transaction: the write lock is held only while it executes.
            steps = [
                (kind, bound)
                for _, query, variant, kind, rows in _parts(batch)
                if rows
                for bound in self.queries.bind_rows(query, rows, variant)
            ]
            with self.batches.transaction() as transaction:
                refused = _execute(transaction, steps)
        except Exception as error:
            if _unavailable(error):
                self._log_unavailable(error, len(batch))
                return error
            log.exception("store rejected a batch of %d rows; writing row by row", len(batch))
            return self._salvage(batch)
        _log_refused(refused)
        return None

    def _log_unavailable(self, error: Exception, rows: int) -> None:
        """Log a write the database could not take: with its traceback the first time, then
        a line per retry (an outage of minutes would otherwise fill the log with the same
        traceback every few seconds)."""
        retry = min(self.interval * 2 ** (self._failures + 1), MAX_RETRY_DELAY)
        if self._failures == 0:
            log.exception("store write failed (%d rows); retrying in %.2fs", rows, retry)
            return
        first_line = str(error).partition("\n")[0]
        log.error(
            "store write failed again (%d rows, %d failures in a row): %s; retrying in %.2fs",
            rows,
            self._failures + 1,
            first_line,
            retry,
        )

    def _salvage(self, batch: _Batch) -> Exception | None:
        """Write ``batch`` one row per transaction, dropping (and logging) rows that fail."""
        refused: dict[str, str | None] = {}
        for table, query, variant, kind, rows in _parts(batch):
            for row in rows:
                try:
                    [bound] = self.queries.bind_rows(query, [row], variant)
                    with self.batches.transaction() as transaction:
                        refused.update(_execute(transaction, [(kind, bound)], refused))
                except Exception as error:
                    if _unavailable(error):
                        return error  # the database itself is unavailable: retry the batch
                    log.exception("dropped a %s row the store rejects: %r", table, row)
        _log_refused(refused)
        return None

    def _after_fork_in_child(self) -> None:
        """Start afresh in a forked child: no rows, no thread, no inherited connections."""
        _inherited_engines.append(self.engine)  # with the kept connections, never closed
        self._use_engine(create_engine(self.engine.url, create=False))
        self._reset_state()


def _parts(batch: _Batch) -> list[tuple[str, str, frozenset[str], str, list[Row]]]:
    """The batch's rows in the order they are written: (table, query, variant, kind, rows),
    where kind is "insert", "update", "settle" (a flow run's update that sets its state) or
    "states" (state history rows); an update row carries the run's id as ``row_id``."""
    settles = {id: values for id, values in batch.flow_updates.items() if "state_type" in values}
    others = {id: values for id, values in batch.flow_updates.items() if id not in settles}
    anyhow, unfinished = frozenset[str](), frozenset({"unfinished"})
    return [
        ("flow_runs", "insert_flow_run", anyhow, "insert", list(batch.flow_inserts.values())),
        ("task_runs", "insert_task_run", anyhow, "insert", list(batch.task_inserts.values())),
        ("flow_runs", "update_flow_run", anyhow, "update", _update_rows(others)),
        ("flow_runs", "update_flow_run", unfinished, "settle", _update_rows(settles)),
        ("task_runs", "update_task_run", anyhow, "update", _update_rows(batch.task_updates)),
        ("run_states", "insert_state", anyhow, "states", batch.states),
        ("run_logs", "insert_log", anyhow, "insert", batch.logs),
    ]


def _execute(
    transaction: DriverTransaction,
    steps: list[tuple[str, Bound]],
    refused: dict[str, str | None] | None = None,
) -> dict[str, str | None]:
    """Execute a batch's bound steps in ``transaction``; returns the flow runs whose new
    state was refused (they have a final state already), with that state's name. Their
    own state rows in the batch (or in ``refused`` from before) are left out too, so the
    history shows no state the run did not take. A run's final state arrives in one settle
    row per batch: executing those one by one tells each row's fate by its rowcount, at no
    cost beyond the UPDATE itself."""
    refused = dict(refused or {})
    for kind, bound in steps:
        if kind == "settle":
            for row, values in zip(bound.rows, bound.parameters, strict=True):
                if not transaction.count(Bound(bound.sql, [values], [row])):
                    refused[row["row_id"]] = row.get("state_name")
            continue
        kept = bound
        if refused and kind == "states":
            kept = bound.keeping(
                lambda row: not (row.get("task_run_id") is None and row["flow_run_id"] in refused)
            )
        if kept.parameters:
            transaction.run(kept)
    return refused


def _log_refused(refused: dict[str, str | None]) -> None:
    for flow_run_id, state_name in refused.items():
        log.warning(
            "flow run %s already has a final state: its %s state from this process was not"
            " recorded",
            flow_run_id,
            state_name or "new",
            extra={"flow_run_id": flow_run_id, "refused_state": state_name},
        )


def _update_rows(updates: dict[str, Row]) -> list[Row]:
    return [{**values, "row_id": run_id} for run_id, values in updates.items() if values]


def _close_all_at_exit() -> None:
    for writer in list(_live_writers):
        writer.close()


def _reset_all_in_child() -> None:
    for writer in list(_live_writers):
        writer._after_fork_in_child()


atexit.register(_close_all_at_exit)
os.register_at_fork(after_in_child=_reset_all_in_child)
