"""Prefect-compatible ``gnomon.task_runners``, with ``prefect_dask``'s ``DaskTaskRunner``
(it imports dask.distributed only when a flow run starts it)."""

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import DaskTaskRunner, ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

__all__ = ["DaskTaskRunner", "ProcessPoolTaskRunner", "TaskRunner", "ThreadPoolTaskRunner"]

__getattr__ = prefect_fallback(__name__)
