"""Concurrency limits: ``concurrency()`` for global limits, ``rate_limit()`` for how often,
tag limits for task runs; ``gnomon.concurrency.sync`` and ``.asyncio`` are Prefect's paths.

Limits are stored in the store and hold across every process that shares it.
"""

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import (
    concurrency,
    delete_concurrency_limit,
    delete_tag_concurrency_limit,
    rate_limit,
    read_concurrency_limits,
    set_concurrency_limit,
    set_tag_concurrency_limit,
)

__all__ = [
    "concurrency",
    "delete_concurrency_limit",
    "delete_tag_concurrency_limit",
    "rate_limit",
    "read_concurrency_limits",
    "set_concurrency_limit",
    "set_tag_concurrency_limit",
]

__getattr__ = prefect_fallback(__name__)
