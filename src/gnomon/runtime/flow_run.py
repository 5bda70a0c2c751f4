"""The current flow run: ``id``, ``name``, ``flow_name``, ``parameters`` (bound with their
defaults and validated, as the flow got them), ``tags``, ``run_count``,
``parent_flow_run_id``. Read as module attributes, looked up at each access."""

from __future__ import annotations

from typing import Any

from gnomon._prefect_import import missing_name
from gnomon.flows import FlowRunContext, flow_run_var, task_run_var

__all__ = ["flow_name", "id", "name", "parameters", "parent_flow_run_id", "run_count", "tags"]  # noqa: F822 -- served by __getattr__


def _current() -> FlowRunContext | None:
    context = flow_run_var.get()
    if context is None and (task := task_run_var.get()) is not None:
        context = task.flow_run
    return context


def __getattr__(attribute: str) -> Any:
    context = _current()
    if attribute == "id":
        return context.flow_run_id if context else None
    if attribute == "name":
        return context.flow_run_name if context else None
    if attribute == "flow_name":
        return context.flow.name if context else None
    if attribute == "parameters":
        return dict(context.parameters) if context else {}
    if attribute == "tags":
        return sorted(context.tags) if context else []
    if attribute == "run_count":
        return context.attempt if context else 0
    if attribute == "parent_flow_run_id":
        parent = context.parent if context else None
        return parent.flow_run_id if parent else None
    return missing_name(__name__, attribute)
