"""Prefect-compatible ``gnomon.tasks``: the task decorator and retry/caching helpers."""

from __future__ import annotations

from collections.abc import Callable

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import MAX_RETRY_DELAYS, Task, task, task_input_hash


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """Retry delays that double each time: ``backoff_factor * 2**n`` for retry n (from 0)."""

    def retry_backoff_callable(retries: int) -> list[float]:
        retries = min(retries, MAX_RETRY_DELAYS)
        return [backoff_factor * max(0, 2**r) for r in range(retries)]

    return retry_backoff_callable


__all__ = ["Task", "exponential_backoff", "task", "task_input_hash"]

__getattr__ = prefect_fallback(__name__)
