"""Running one task plan in a process-pool worker (``ProcessPoolTaskRunner``).

Inputs are resolved in the flow's process; the task, its arguments and the flow run's
essentials travel by cloudpickle, and the worker runs the ordinary task engine against the
same store before sending the final state back.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

from gnomon.flows._context import FlowRunContext, flow_run_var
from gnomon.flows._engine import TaskRunPlan, _store, resolve_plan_inputs, run_task_plan
from gnomon.states import Failed, Running, State


def run_task_plan_in_process(plan: TaskRunPlan, processes: ProcessPoolExecutor) -> State:
    """Resolve the plan's inputs here, then run it in a worker process and return its state."""
    import cloudpickle

    store = _store()
    parameters = resolve_plan_inputs(store, plan)
    if isinstance(parameters, State):
        return parameters
    # The worker updates the Pending row this process inserted: it must be in the store first.
    store.flush()
    flow_run = plan.flow_run
    payload = cloudpickle.dumps(
        {
            "task": plan.task,
            "parameters": parameters,
            "task_run_id": plan.task_run_id,
            "name": plan.name,
            "tags": plan.tags,
            "flow_run": None
            if flow_run is None
            else {
                "flow_name": flow_run.flow.name,
                # A task without its own persistence settings follows its flow's.
                "persist_result": flow_run.flow.persist_result,
                "flow_run_id": flow_run.flow_run_id,
                "flow_run_name": flow_run.flow_run_name,
                "parameters": flow_run.parameters,
                "log_prints": flow_run.log_prints,
                "tags": flow_run.tags,
            },
        }
    )
    plan.set_live_state(Running())
    final: State = cloudpickle.loads(processes.submit(_run_in_worker_process, payload).result())
    plan.set_live_state(final)
    return final


def _run_in_worker_process(payload: bytes) -> bytes:
    """Entry point in a process-pool worker: run one task plan, return its pickled state."""
    import types

    import cloudpickle

    from gnomon.flows._logging import configure_logging

    configure_logging()
    data = cloudpickle.loads(payload)
    flow_run = None
    if data["flow_run"] is not None:
        info = data["flow_run"]
        flow_run = FlowRunContext(
            flow=types.SimpleNamespace(  # type: ignore[arg-type]
                name=info["flow_name"], persist_result=info["persist_result"]
            ),
            flow_run_id=info["flow_run_id"],
            flow_run_name=info["flow_run_name"],
            parameters=info["parameters"],
            task_runner=None,  # type: ignore[arg-type]
            log_prints=info["log_prints"],
            tags=info["tags"],
        )
    plan = TaskRunPlan(
        task=data["task"],
        parameters=data["parameters"],
        wait_for=None,
        task_run_id=data["task_run_id"],
        name=data["name"],
        flow_run=flow_run,
        tags=data["tags"],
    )
    token = flow_run_var.set(flow_run)
    try:
        state = run_task_plan(plan, parameters=data["parameters"])
    finally:
        flow_run_var.reset(token)
        _store().flush()
    try:
        return cloudpickle.dumps(state)
    except Exception:
        # The result or the exception cannot travel back; send its description instead.
        problem = RuntimeError(f"unpicklable {type(state.data).__name__}: {state.data!r}")
        if state.is_completed():
            # The caller's future raises this rather than returning it as the task's value.
            message = f"The task run's result cannot be returned from its worker process: {problem}"
            return cloudpickle.dumps(Failed(message, data=problem))
        state.data = problem
        return cloudpickle.dumps(state)
