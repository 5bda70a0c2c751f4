"""Prefect's ``prefect.concurrency.sync``: ``concurrency`` and ``rate_limit``."""

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import concurrency, rate_limit

__all__ = ["concurrency", "rate_limit"]

__getattr__ = prefect_fallback(__name__)
