"""Prefect-compatible ``gnomon.task_runners``."""

from gnomon.flows._runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

__all__ = ["ProcessPoolTaskRunner", "TaskRunner", "ThreadPoolTaskRunner"]
