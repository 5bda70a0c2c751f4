"""Transactions, as Prefect 3's ``prefect.transactions``.

``with transaction():`` groups the task runs inside it: each task that completes stages its
``on_commit`` / ``on_rollback`` hooks (and its cache record) in a transaction of its own,
a child of the one around it. When the outermost transaction ends without an error, the
children commit in order: their commit hooks run and their cache records are written. When a
task's body raises, the transaction around it rolls back at once: the rollback hooks of the
tasks that completed in it run, the latest first, and their cache records are never written,
so a rerun runs them again. With ``key=``, a committed transaction leaves a record under
that key in the result store (signed like results): a later ``transaction(key=...)`` starts
committed (``txn.is_committed()``), unless ``overwrite=True``.
"""

from __future__ import annotations

import copy
import enum
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gnomon.flows._results import ResultStore, StoredResult
    from gnomon.flows._task import Task
    from gnomon.states import State

Hook = Callable[["Transaction"], Any]


class _Named(enum.StrEnum):
    """Members whose values are their names, as Prefect's ``AutoEnum``."""

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list[Any]) -> str:
        return name


class IsolationLevel(_Named):
    READ_COMMITTED = enum.auto()
    SERIALIZABLE = enum.auto()


class CommitMode(_Named):
    EAGER = enum.auto()
    LAZY = enum.auto()
    OFF = enum.auto()


class TransactionState(_Named):
    """Where a transaction is (not a run's state: transactions are not stored)."""

    PENDING = enum.auto()
    ACTIVE = enum.auto()
    STAGED = enum.auto()
    COMMITTED = enum.auto()
    ROLLED_BACK = enum.auto()


_NOT_SET: Any = object()
_FINISHED = (TransactionState.COMMITTED, TransactionState.ROLLED_BACK)
_current: ContextVar[Transaction | None] = ContextVar("gnomon_transaction", default=None)


class Transaction:
    """One transaction: its key and store, its children, its hooks and its values.

    ``commit_mode`` (inherited from the parent, LAZY at the top) says who commits: LAZY, the
    outermost transaction when it ends; EAGER, each transaction when it ends; OFF, nobody
    (an outermost OFF transaction rolls back). SERIALIZABLE holds a lock on the key (a file
    lock, across processes) from the start until commit or rollback, so that two runs with
    the same key do the work once.
    """

    def __init__(
        self,
        key: str | None = None,
        store: ResultStore | None = None,
        commit_mode: CommitMode | None = None,
        isolation_level: IsolationLevel | None = None,
        overwrite: bool = False,
        write_on_commit: bool = True,
    ) -> None:
        self.key = key
        self.store = store
        self.commit_mode = commit_mode
        self.isolation_level = isolation_level
        self.overwrite = overwrite
        self.write_on_commit = write_on_commit
        self.state = TransactionState.PENDING
        self.children: list[Transaction] = []
        self.on_commit_hooks: list[Hook] = []
        self.on_rollback_hooks: list[Hook] = []
        self._stored_values: dict[str, Any] = {}
        self._staged_value: Any = None
        self._expiration: datetime | None = None
        self._record: StoredResult | None = None
        self._token: Token[Transaction | None] | None = None
        self._lock: int | None = None
        self._parent: Transaction | None = None  # a task attempt's, set by TaskTransaction

    def set(self, name: str, value: Any) -> None:
        """Keep ``value`` under ``name`` for the rest of the transaction (and its hooks)."""
        self._stored_values[name] = value

    def get(self, name: str, default: Any = _NOT_SET) -> Any:
        """A copy of the value kept under ``name`` here or in a parent transaction."""
        if name in self._stored_values:
            return copy.deepcopy(self._stored_values[name])
        parent = self.get_parent()
        if parent is not None:
            return parent.get(name, default)
        if default is not _NOT_SET:
            return default
        raise ValueError(f"Could not retrieve value for unknown key: {name}")

    def is_committed(self) -> bool:
        return self.state is TransactionState.COMMITTED

    def is_rolled_back(self) -> bool:
        return self.state is TransactionState.ROLLED_BACK

    def is_staged(self) -> bool:
        return self.state is TransactionState.STAGED

    def is_pending(self) -> bool:
        return self.state is TransactionState.PENDING

    def is_active(self) -> bool:
        return self.state is TransactionState.ACTIVE

    def get_parent(self) -> Transaction | None:
        """The transaction this one runs in: the one current when it was entered, or (once
        it has ended) the one current now."""
        if self._parent is not None:
            return self._parent
        if self._token is not None:
            return self._token.old_value if self._token.old_value is not Token.MISSING else None
        current = _current.get()
        return None if current is self else current

    def add_child(self, transaction: Transaction) -> None:
        self.children.append(transaction)

    def stage(
        self,
        value: Any,
        on_rollback_hooks: list[Hook] | None = None,
        on_commit_hooks: list[Hook] | None = None,
        expiration: datetime | None = None,
    ) -> None:
        """Hold ``value`` (written under the key on commit) and hooks for the end."""
        if self.state is TransactionState.COMMITTED:
            return
        self._staged_value = value
        self._expiration = expiration
        self.on_rollback_hooks += on_rollback_hooks or []
        self.on_commit_hooks += on_commit_hooks or []
        self.state = TransactionState.STAGED

    def read(self) -> StoredResult | None:
        """The committed record under the key (its value is ``.result``), if there is one."""
        if self._record is None and self.store is not None and self.key:
            self._record = self.store.read_current(self.key, _now())
        return self._record

    def __enter__(self) -> Transaction:
        if self._token is not None:
            raise RuntimeError("Context already entered. Context enter calls cannot be nested.")
        parent = _current.get()
        if self.commit_mode is None:
            self.commit_mode = parent.commit_mode if parent else CommitMode.LAZY
        if self.isolation_level is None:
            self.isolation_level = (
                parent.isolation_level if parent else IsolationLevel.READ_COMMITTED
            )
        self.state = TransactionState.ACTIVE
        self._begin()
        self._token = _current.set(self)
        return self

    def _begin(self) -> None:
        if self.store is None or not self.key:
            return
        if self.isolation_level is IsolationLevel.SERIALIZABLE:
            self._lock = _acquire_lock(self.store, self.key)
        if not self.overwrite and self.read() is not None:
            self.state = TransactionState.COMMITTED

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._token is None:
            raise RuntimeError("Asymmetric use of context. Context exit called without an enter.")
        if exc_type is not None:
            self.rollback()
            self.reset()
            return  # the exception goes on
        if self.commit_mode is CommitMode.EAGER:
            self.commit()
        if self.get_parent() is not None:  # the parent commits or rolls back this one
            self.reset()
            return
        if self.commit_mode is CommitMode.OFF:
            self.rollback()
        elif self.commit_mode is CommitMode.LAZY:
            self.commit()
        self.reset()

    def reset(self) -> None:
        """Leave the transaction: hand it to its parent (which rolls back with it)."""
        parent = self.get_parent()
        if parent is not None:
            parent.add_child(self)
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        if parent is not None and self.state is TransactionState.ROLLED_BACK:
            parent.rollback()

    def commit(self) -> bool:
        """Commit the children, run the commit hooks, write the staged value under the key;
        a failure rolls back instead. False if already committed or rolled back."""
        if self.state in _FINISHED:
            self._release()
            return False
        try:
            for child in self.children:
                child.commit()
            for hook in self.on_commit_hooks:
                self.run_hook(hook, "commit")
            if self.store is not None and self.key and self.write_on_commit:
                self.store.write(self.key, self._staged_value, _now(), self._expiration)
            self.state = TransactionState.COMMITTED
            self._release()
            return True
        except Exception:
            _logger().exception(
                f"An error was encountered while committing transaction {self.key!r}"
            )
            self.rollback()
            return False

    def rollback(self) -> bool:
        """Run the rollback hooks (the latest first), then roll the children back. False if
        already committed or rolled back."""
        if self.state in _FINISHED:
            self._release()
            return False
        try:
            for hook in reversed(self.on_rollback_hooks):
                self.run_hook(hook, "rollback")
            self.state = TransactionState.ROLLED_BACK
            for child in reversed(self.children):
                child.rollback()
            return True
        except Exception:
            _logger().exception(
                f"An error was encountered while rolling back transaction {self.key!r}"
            )
            return False
        finally:
            self._release()

    def run_hook(self, hook: Hook, kind: str) -> None:
        """Call ``hook(self)``, logging it as Prefect does; its error goes to the caller."""
        name = getattr(hook, "__name__", repr(hook))
        _logger().info(f"Running {kind} hook {name!r}")
        try:
            hook(self)
        except Exception:
            _logger().error(f"An error was encountered while running {kind} hook {name!r}")
            raise
        _logger().info(f"{kind.capitalize()} hook {name!r} finished running successfully")

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases its flock
            self._lock = None

    def __repr__(self) -> str:
        return f"Transaction(key={self.key!r}, state={self.state.value})"


def get_transaction() -> Transaction | None:
    """The transaction the calling code runs in, or None."""
    return _current.get()


@contextmanager
def transaction(
    key: str | None = None,
    store: ResultStore | None = None,
    commit_mode: CommitMode | None = None,
    isolation_level: IsolationLevel | None = None,
    overwrite: bool = False,
    write_on_commit: bool = True,
    logger: Any = None,
) -> Iterator[Transaction]:
    """Open a transaction; with ``key``, its record lives in gnomon's result store unless
    another ``store`` is given. ``logger`` is accepted for Prefect's signature; hooks log
    on gnomon's engine logger (into the run's logs inside a run)."""
    if key and store is None:
        from gnomon.flows._results import get_result_store

        store = get_result_store()
    with Transaction(key, store, commit_mode, isolation_level, overwrite, write_on_commit) as txn:
        yield txn


class TaskTransaction:
    """A task attempt's own transaction, a child of the one the task runs in (if any).

    The body runs with it current (``get_transaction()`` in a task gives it). A completed
    attempt stages its hooks and its cache record, and commits them at once when no
    transaction is around it; a body that raised rolls back the transaction around it.
    Every task call has one, so the common case (no key, no hooks, none around it) costs
    an object and a context variable, nothing more.
    """

    __slots__ = ("parent", "transaction")

    def __init__(self, key: str | None, store: ResultStore | None) -> None:
        self.transaction = Transaction(key=key, store=store)
        self.parent = self.transaction._parent = _current.get()
        self.transaction.commit_mode = self.parent.commit_mode if self.parent else CommitMode.LAZY
        self.transaction.state = TransactionState.ACTIVE

    def enter(self) -> Token[Transaction | None]:
        """Make it current for the attempt's body; ``leave`` with the token after."""
        return _current.set(self.transaction)

    @staticmethod
    def leave(token: Token[Transaction | None]) -> None:
        _current.reset(token)

    def completed(self, state: State, task: Task[..., Any]) -> None:
        """The attempt completed with ``state``: stage its value and ``task``'s commit and
        rollback hooks, and commit unless a transaction around it will."""
        txn = self.transaction
        hooks = (task.on_commit_hooks, task.on_rollback_hooks)
        own = (txn.on_commit_hooks, txn.on_rollback_hooks, txn.children)
        if self.parent is None and txn.key is None and not any(hooks) and not any(own):
            if txn.state is TransactionState.ACTIVE:  # what stage() and commit() would do
                txn._staged_value = state.data
                txn.state = TransactionState.COMMITTED
            return
        expiration = expiration_after(state.timestamp, task.cache_expiration)
        txn.stage(
            state.data,
            on_rollback_hooks=task.on_rollback_hooks,
            on_commit_hooks=task.on_commit_hooks,
            expiration=expiration,
        )
        if self.parent is None:
            txn.commit()
            return
        if txn.commit_mode is CommitMode.EAGER:
            txn.commit()
        self.parent.add_child(txn)

    def raised(self) -> None:
        self.transaction.rollback()
        if self.parent is not None:
            self.parent.add_child(self.transaction)
            self.parent.rollback()


def _acquire_lock(store: ResultStore, key: str) -> int:
    """Hold an exclusive lock on ``key`` (waiting for it): a file lock beside the result
    files (``Storage.lock_directory``), so that runs in other processes serialise on the
    same key."""
    from gnomon.flows._results import file_name

    locks = store.storage.lock_directory()
    fd = os.open(locks / file_name(key), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _now() -> datetime:
    from gnomon.flows._clock import get_clock

    return get_clock().now()


def _logger() -> Any:
    from gnomon.flows._logging import engine_logger

    return engine_logger()


def expiration_after(created: datetime, lifetime: timedelta | float | None) -> datetime | None:
    """When a record made at ``created`` expires, for a task's ``cache_expiration``."""
    if lifetime is None:
        return None
    if isinstance(lifetime, (int, float)):
        lifetime = timedelta(seconds=lifetime)
    return created + lifetime
