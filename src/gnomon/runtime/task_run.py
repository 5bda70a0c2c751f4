"""The current task run: ``id``, ``name``, ``task_name``, ``tags``, ``parameters``,
``run_count``. Read as module attributes, looked up at each access."""

from __future__ import annotations

from typing import Any

from gnomon._prefect_import import missing_name
from gnomon.flows import task_run_var

__all__ = ["id", "name", "parameters", "run_count", "tags", "task_name"]  # noqa: F822 -- served by __getattr__


def __getattr__(attribute: str) -> Any:
    context = task_run_var.get()
    if attribute == "id":
        return context.task_run_id if context else None
    if attribute == "name":
        return context.task_run_name if context else None
    if attribute == "task_name":
        return context.task.name if context else None
    if attribute == "tags":
        return sorted(context.tags) if context else []
    if attribute == "parameters":
        return dict(context.parameters) if context else {}
    if attribute == "run_count":
        return context.attempt if context else 0
    return missing_name(__name__, attribute)
