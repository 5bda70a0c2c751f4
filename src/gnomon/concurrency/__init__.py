"""Concurrency limits: ``concurrency()`` for global limits, tag limits for task runs.

Limits are stored in the store and hold across every process that shares it.
"""

from gnomon.flows import (
    concurrency,
    delete_concurrency_limit,
    delete_tag_concurrency_limit,
    read_concurrency_limits,
    set_concurrency_limit,
    set_tag_concurrency_limit,
)

__all__ = [
    "concurrency",
    "delete_concurrency_limit",
    "delete_tag_concurrency_limit",
    "read_concurrency_limits",
    "set_concurrency_limit",
    "set_tag_concurrency_limit",
]
