"""Prefect-compatible ``gnomon.task_runners``."""

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

__all__ = ["ProcessPoolTaskRunner", "TaskRunner", "ThreadPoolTaskRunner"]

__getattr__ = prefect_fallback(__name__)
