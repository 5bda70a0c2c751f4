"""Prefect-compatible ``gnomon.transactions``: ``with transaction():`` around task runs,
their ``on_commit`` / ``on_rollback`` hooks, and keys that make work idempotent.

``atransaction`` is the same transaction for ``async with``: gnomon's engine commits and
rolls back synchronously (its result store is local files), so there is no separate
``AsyncTransaction``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gnomon.flows import (
    CommitMode,
    IsolationLevel,
    Transaction,
    TransactionState,
    get_transaction,
    transaction,
)

# Prefect's base class and its async twin: gnomon has the one synchronous Transaction.
BaseTransaction = Transaction
AsyncTransaction = Transaction


@asynccontextmanager
async def atransaction(*args: Any, **kwargs: Any) -> AsyncIterator[Transaction]:
    """``transaction`` for ``async with``, as Prefect's ``atransaction``."""
    with transaction(*args, **kwargs) as txn:
        yield txn


__all__ = [
    "AsyncTransaction",
    "BaseTransaction",
    "CommitMode",
    "IsolationLevel",
    "Transaction",
    "TransactionState",
    "atransaction",
    "get_transaction",
    "transaction",
]
