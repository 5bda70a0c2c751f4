"""get_run_context, FlowRunContext and TaskRunContext (concepts/runtime-context)."""

from prefect import flow, task
from prefect.context import FlowRunContext, TaskRunContext, get_run_context


@task(task_run_name="ctx-task")
def inspect_task() -> list:
    context = get_run_context()
    return [
        isinstance(context, TaskRunContext),
        context.task_run.name,
        context.task.name,
        TaskRunContext.get() is context,
        FlowRunContext.get() is not None,
    ]


@flow(flow_run_name="ctx-flow")
def inspect_flow() -> list:
    context = get_run_context()
    return [
        isinstance(context, FlowRunContext),
        context.flow_run.name,
        context.flow.name,
        FlowRunContext.get() is context,
        TaskRunContext.get(),
        inspect_task(),
    ]


print(inspect_flow())
print("outside:", FlowRunContext.get(), TaskRunContext.get())
try:
    get_run_context()
except Exception as error:
    print(type(error).__name__, "|", error)
