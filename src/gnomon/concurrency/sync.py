"""Prefect's import path ``prefect.concurrency.sync``."""

from gnomon.flows import concurrency

__all__ = ["concurrency"]
