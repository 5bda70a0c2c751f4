"""Prefect's ``prefect.concurrency.asyncio``: ``async with concurrency(...)`` and
``await rate_limit(...)``. Waiting for slots runs in a worker thread, so the event loop
keeps running other tasks meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import concurrency as _concurrency
from gnomon.flows import rate_limit as _rate_limit


@asynccontextmanager
async def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
    lease_duration: float = 300,
    strict: bool = False,
    holder: Any = None,
    raise_on_lease_renewal_failure: bool | None = None,
) -> AsyncIterator[None]:
    """Hold ``occupy`` slots of each named limit for the block; see
    ``gnomon.concurrency.sync.concurrency`` (the same rules, awaited)."""
    slots = _concurrency(
        names,
        occupy,
        timeout_seconds,
        max_retries,
        lease_duration,
        strict,
        holder,
        raise_on_lease_renewal_failure,
    )
    await asyncio.to_thread(slots.__enter__)
    try:
        yield
    finally:
        await asyncio.to_thread(slots.__exit__, None, None, None)


async def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Wait for and take ``occupy`` slots of each named limit, which free themselves at
    its ``slot_decay_per_second``; see ``gnomon.concurrency.sync.rate_limit``."""
    await asyncio.to_thread(_rate_limit, names, occupy, timeout_seconds, strict)


__all__ = ["concurrency", "rate_limit"]

__getattr__ = prefect_fallback(__name__)
