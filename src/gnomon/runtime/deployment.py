"""The deployment of the current run: ``id``, ``name``, ``parameters``, ``flow_run_id``,
``version``. Read as module attributes, looked up at each access, as Prefect's
``prefect.runtime.deployment``.

A deployment's name is its id in gnomon, so ``id`` and ``name`` are both the name, and
``version`` is always None (the config file is versioned, not each deployment). A flow
called directly has no deployment (``id`` and ``name`` None); ``parameters`` is then the
flow run's, as in Prefect, and ``{}`` outside a run.
"""

from __future__ import annotations

from typing import Any

from gnomon._prefect_import import missing_name
from gnomon.flows import FlowRunContext, run_deployment_name

__all__ = ["flow_run_id", "id", "name", "parameters", "version"]  # noqa: F822 -- served by __getattr__


def _deployment() -> str | None:
    return run_deployment_name() if FlowRunContext.get() is not None else None


def _parameters() -> dict[str, Any]:
    """The deployment run's parameters, which its subflows see too; a direct call's own."""
    context = FlowRunContext.get()
    if context is None:
        return {}
    if run_deployment_name() is not None:
        while context.parent is not None:
            context = context.parent
    return dict(context.parameters)


def __getattr__(attribute: str) -> Any:
    if attribute in ("id", "name"):
        return _deployment()
    if attribute == "parameters":
        return _parameters()
    if attribute == "flow_run_id":
        context = FlowRunContext.get()
        return context.flow_run_id if context else None
    if attribute == "version":
        return None
    return missing_name(__name__, attribute)
