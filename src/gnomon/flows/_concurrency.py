"""Concurrency limits shared by every process that uses the same store.

A limit is a row (``name``, ``slot_limit``, ``slot_decay_per_second``); holding slots is a
row per holder, inserted and deleted in write transactions, so the count is exact across
processes. Tag limits are named ``tag:<tag>`` and hold every task run carrying the tag to
the limit. Slots left behind by a process that died are reclaimed by the next waiter on the
same host. ``rate_limit`` takes slots that free themselves at the limit's decay, a slot
every 1/decay seconds (see ``RunStore.try_acquire_slots``), whether their process lives on
or not.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from gnomon.exceptions import (
    AcquireConcurrencySlotTimeoutError,
    ConcurrencySlotAcquisitionError,
    MissingContextError,
)

if TYPE_CHECKING:
    from gnomon.store import RunStore

_POLL_START = 0.01
_POLL_MAX = 0.5
_REAP_EVERY = 2.0
_LIMITS_TTL = 1.0


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _acquire(
    names: list[str],
    occupy: int,
    timeout_seconds: float | None,
    holder: str,
    rate_limit: bool = False,
) -> RunStore:
    """Take ``occupy`` slots of every named limit for ``holder`` (slots that free themselves,
    with ``rate_limit``), waiting for room if needed; the store they were taken in."""
    from gnomon.store import get_store

    store = get_store()
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    delay = _POLL_START
    last_reap = float("-inf")  # reap at the first wait: a dead holder must not outlast a timeout
    while not store.try_acquire_slots(names, occupy, holder, rate_limit):
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
    return store


@contextmanager
def occupy_slots(
    names: Iterable[str], occupy: int = 1, timeout_seconds: float | None = None
) -> Iterator[None]:
    """Hold ``occupy`` slots of every named limit for the block, waiting for room if needed."""
    holder = _holder()
    store = _acquire(sorted(set(names)), occupy, timeout_seconds, holder)
    try:
        yield
    finally:
        store.release_slots(holder)


def existing_limits(names: str | list[str], occupy: int, strict: bool) -> list[str]:
    """Those of ``names`` that have a limit, checked as Prefect checks them: ``occupy`` must
    be positive, and when none exists ``strict`` raises ``ConcurrencySlotAcquisitionError``
    where the default logs a warning (no slot is then taken)."""
    from gnomon.store import get_store

    names = [names] if isinstance(names, str) else list(names)
    if occupy < 1:
        raise ValueError(f"occupy must be at least 1, got {occupy!r}")
    existing = sorted(get_store().read_concurrency_limits(names))
    if not existing and names:
        if strict:
            raise ConcurrencySlotAcquisitionError(
                f"Concurrency limits {names!r} must be created before acquiring slots"
            )
        _warn(f"Concurrency limits {names!r} do not exist - skipping acquisition.")
    return existing


def _warn(message: str) -> None:
    """On the run's logger inside a run (stored with it), else on ``gnomon.concurrency``."""
    from gnomon.flows._logging import get_run_logger

    try:
        get_run_logger().warning(message)
    except MissingContextError:
        logging.getLogger("gnomon.concurrency").warning(message)


@contextmanager
def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
    lease_duration: float = 300,
    strict: bool = False,
    holder: Any = None,
    raise_on_lease_renewal_failure: bool | None = None,
) -> Iterator[None]:
    """Prefect's ``concurrency`` context manager over global limits.

    Names without a limit are not limited: a warning says so, or with ``strict=True``
    ``ConcurrencySlotAcquisitionError`` when none of them exists. ``max_retries``,
    ``lease_duration``, ``holder`` and ``raise_on_lease_renewal_failure`` are Prefect's
    lease settings, accepted so its calls run: gnomon holds slots in its store without a
    lease, and the slots of a process that died are freed by the next waiter on its host.
    """
    existing = existing_limits(names, occupy, strict)
    if not existing:
        yield
        return
    with occupy_slots(existing, occupy, timeout_seconds):
        yield


def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Prefect's ``rate_limit``: wait until ``occupy`` slots of each named limit are free,
    take them, and return; they free themselves at the limit's ``slot_decay_per_second``.

    A limit of N slots with a decay of d admits a burst of N slots, then d slots a second,
    across every process sharing the store; a slot taken counts until it has decayed even
    if its process ends. As Prefect's, only limits with a decay can rate-limit: a named
    limit without one raises ``ConcurrencySlotAcquisitionError`` (set one with
    ``set_concurrency_limit(name, limit, slot_decay_per_second=d)`` or ``gnomon
    global-concurrency-limit set NAME LIMIT --slot-decay-per-second D``).
    """
    if not names:
        return
    existing = existing_limits(names, occupy, strict)
    if existing:
        _acquire(existing, occupy, timeout_seconds, _holder(), rate_limit=True)


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


def set_concurrency_limit(name: str, limit: int, slot_decay_per_second: float = 0.0) -> None:
    """Create or change the global limit ``name``: at most ``limit`` slots taken at once;
    with a ``slot_decay_per_second`` above 0, ``rate_limit``'s slots of it free themselves
    at that rate (Prefect's global concurrency limit). Setting a limit sets its decay too:
    leaving it out sets 0, no decay."""
    from gnomon.store import get_store

    if slot_decay_per_second and name.startswith("tag:"):
        raise ValueError(
            f"concurrency limit {name!r}: a tag limit holds task runs while they run and "
            "takes no slot_decay_per_second; rate-limit with a global limit's name"
        )
    get_store().set_concurrency_limit(name, limit, slot_decay_per_second)
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
