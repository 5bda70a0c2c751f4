"""Prefect-compatible ``gnomon.task_runners``."""

from gnomon.flows import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

__all__ = ["ProcessPoolTaskRunner", "TaskRunner", "ThreadPoolTaskRunner"]
