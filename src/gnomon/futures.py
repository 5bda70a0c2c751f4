"""Prefect-compatible ``gnomon.futures``."""

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import (
    DoneAndNotDoneFutures,
    PrefectFuture,
    PrefectFutureList,
    as_completed,
    wait,
)

__all__ = ["DoneAndNotDoneFutures", "PrefectFuture", "PrefectFutureList", "as_completed", "wait"]

__getattr__ = prefect_fallback(__name__)
