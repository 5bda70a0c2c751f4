"""Prefect's import path ``prefect.concurrency.sync``."""

from gnomon.flows._concurrency import concurrency

__all__ = ["concurrency"]
