"""Concurrency limits shared by every process that uses the same store.

A limit is a row (``name``, ``slot_limit``); holding slots is a row per holder, inserted and
deleted in write transactions, so the count is exact across processes. Tag limits are named
``tag:<tag>`` and hold every task run carrying the tag to the limit. Slots left behind by a
process that died are reclaimed by the next waiter on the same host.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from gnomon.exceptions import AcquireConcurrencySlotTimeoutError

_POLL_START = 0.01
_POLL_MAX = 0.5
_REAP_EVERY = 2.0
_LIMITS_TTL = 1.0


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@contextmanager
def occupy_slots(
    names: Iterable[str], occupy: int = 1, timeout_seconds: float | None = None
) -> Iterator[None]:
    """Hold ``occupy`` slots of every named limit for the block, waiting for room if needed."""
    from gnomon.store import get_store

    store = get_store()
    names = sorted(set(names))
    holder = _holder()
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    delay = _POLL_START
    last_reap = float("-inf")  # reap at the first wait: a dead holder must not outlast a timeout
    while not store.try_acquire_slots(names, occupy, holder):
        now = time.monotonic()
        if now - last_reap >= _REAP_EVERY:
            last_reap = now
            if store.reap_stale_slots():
                continue
        if deadline is not None and now >= deadline:
            raise AcquireConcurrencySlotTimeoutError(
                f"Attempt to acquire concurrency slots {names!r} timed out after "
                f"{timeout_seconds:g} second(s)"
            )
        wait = delay if deadline is None else min(delay, max(0.0, deadline - now))
        time.sleep(wait)
        delay = min(delay * 2, _POLL_MAX)
    try:
        yield
    finally:
        store.release_slots(holder)


@contextmanager
def concurrency(
    names: str | list[str], occupy: int = 1, timeout_seconds: float | None = None
) -> Iterator[None]:
    """Prefect's ``concurrency`` context manager over global limits.

    Names without a limit are not limited (Prefect warns and skips them too).
    """
    if isinstance(names, str):
        names = [names]
    if occupy < 1:
        raise ValueError(f"occupy must be at least 1, got {occupy!r}")
    with occupy_slots(names, occupy, timeout_seconds):
        yield


class _LimitSnapshot:
    """The set of limited names, re-read at most once a second per process.

    Tagged tasks consult it to skip the store entirely when none of their tags is limited;
    a limit created while a flow runs takes effect within a second.
    """

    def __init__(self) -> None:
        self._names: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def names(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._read_at >= _LIMITS_TTL:
            from gnomon.store import get_store

            with self._lock:
                if now - self._read_at >= _LIMITS_TTL:
                    self._names = frozenset(get_store().read_concurrency_limits())
                    self._read_at = now
        return self._names

    def invalidate(self) -> None:
        self._read_at = float("-inf")


_limits = _LimitSnapshot()


@contextmanager
def tag_slots(tags: frozenset[str]) -> Iterator[None]:
    """Hold one slot of each limited tag for the duration of a task run."""
    limited = [name for name in (f"tag:{tag}" for tag in tags) if name in _limits.names()]
    if not limited:
        yield
        return
    with occupy_slots(limited, 1):
        yield


def set_concurrency_limit(name: str, limit: int) -> None:
    """Create or change the global limit ``name``."""
    from gnomon.store import get_store

    if limit < 0:
        raise ValueError(f"concurrency limit {name!r}: limit must be >= 0, got {limit!r}")
    get_store().set_concurrency_limit(name, limit)
    _limits.invalidate()


def set_tag_concurrency_limit(tag: str, limit: int) -> None:
    """At most ``limit`` task runs tagged ``tag`` run at once, across every process."""
    set_concurrency_limit(f"tag:{tag}", limit)


def delete_concurrency_limit(name: str) -> bool:
    from gnomon.store import get_store

    deleted = get_store().delete_concurrency_limit(name)
    _limits.invalidate()
    return deleted


def delete_tag_concurrency_limit(tag: str) -> bool:
    return delete_concurrency_limit(f"tag:{tag}")


def read_concurrency_limits() -> dict[str, int]:
    from gnomon.store import get_store

    return get_store().read_concurrency_limits()
