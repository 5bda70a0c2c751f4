"""Prefect's ``prefect.context``: the run the calling code belongs to.

``get_run_context()`` returns the current ``TaskRunContext`` or ``FlowRunContext`` and
raises ``MissingContextError`` outside a run; ``FlowRunContext.get()`` and
``TaskRunContext.get()`` return None there. A context shows what Prefect's does to user
code: ``.flow_run`` (``id``, ``name``, ``flow_name``, ``parameters``, ``tags``,
``run_count``), ``.task_run``, ``.flow``, ``.task`` and ``.parameters``.
"""

from __future__ import annotations

from gnomon._prefect_import import prefect_fallback
from gnomon.exceptions import MissingContextError
from gnomon.flows import FlowRunContext, TaskRunContext, tags


def get_run_context() -> FlowRunContext | TaskRunContext:
    """The task run the calling code runs in, else its flow run.

    A subflow called inside a task is the code running then: its flow run is returned,
    not the task, as Prefect does when the two belong to different flow runs.
    """
    task = TaskRunContext.get()
    flow = FlowRunContext.get()
    task_flow = task.flow_run if task is not None else None
    if flow is not None and task_flow is not None and task_flow.flow_run_id != flow.flow_run_id:
        return flow
    if task is not None:
        return task
    if flow is not None:
        return flow
    raise MissingContextError(
        "No run context available. You are not in a flow or task run context."
    )


__all__ = ["FlowRunContext", "TaskRunContext", "get_run_context", "tags"]

__getattr__ = prefect_fallback(__name__)
