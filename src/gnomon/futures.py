"""Prefect-compatible ``gnomon.futures``."""

from gnomon.flows._futures import (
    DoneAndNotDoneFutures,
    PrefectFuture,
    PrefectFutureList,
    as_completed,
    wait,
)

__all__ = ["DoneAndNotDoneFutures", "PrefectFuture", "PrefectFutureList", "as_completed", "wait"]
