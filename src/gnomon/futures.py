"""Prefect-compatible ``gnomon.futures``."""

from gnomon.flows import (
    DoneAndNotDoneFutures,
    PrefectFuture,
    PrefectFutureList,
    as_completed,
    wait,
)

__all__ = ["DoneAndNotDoneFutures", "PrefectFuture", "PrefectFutureList", "as_completed", "wait"]
