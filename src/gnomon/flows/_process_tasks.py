"""Running one task plan in another process: a process-pool worker
(``ProcessPoolTaskRunner``) or a Dask worker (``DaskTaskRunner``).

Inputs are resolved in the flow's process; the task, its arguments, the flow run's
essentials and the flow's settings (which store, which results directory) travel by
cloudpickle, and the worker runs the ordinary task engine against that store before sending
the final state back.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from gnomon.exceptions import CancelledRun, CrashedRun
from gnomon.flows import _records
from gnomon.flows._context import FlowRunContext, flow_run_var
from gnomon.flows._engine import (
    TaskRunPlan,
    _record,
    _store,
    resolve_plan_inputs,
    run_task_plan,
)
from gnomon.states import (
    FINAL_TYPES,
    Cancelled,
    Crashed,
    Failed,
    Running,
    State,
    StateType,
)

if TYPE_CHECKING:
    from gnomon.store.rows import TaskRunRow


def run_task_plan_in_process(plan: TaskRunPlan, processes: ProcessPoolExecutor) -> State:
    """Resolve the plan's inputs here, then run it in a worker process and return its state."""
    import cloudpickle

    payload = plan_payload(plan)
    if isinstance(payload, State):
        return payload
    plan.set_live_state(Running())
    final: State = cloudpickle.loads(processes.submit(run_payload, payload).result())
    plan.set_live_state(final)
    return final


def plan_payload(plan: TaskRunPlan) -> bytes | State:
    """The plan, its inputs resolved, as bytes for ``run_payload`` in another process; or
    its recorded NotReady state when an upstream run did not complete."""
    import cloudpickle

    from gnomon._settings import get_settings

    store = _store()
    parameters = resolve_plan_inputs(store, plan)
    if isinstance(parameters, State):
        return parameters
    # The worker updates the Pending row this process inserted: it must be in the store first.
    store.flush()
    flow_run = plan.flow_run
    return bytes(
        cloudpickle.dumps(
            {
                "settings": get_settings(),
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
    )


def run_payload(payload: bytes, once: bool = False) -> bytes:
    """Entry point in a worker process: run one task plan, return its pickled final state.

    The run writes to the store of the flow that sent it (its settings are in the payload).
    ``once``: the payload may be delivered again (Dask runs a task anew when the worker
    running it died); a run already final in the store is not run twice, its stored state
    is returned.
    """
    import cloudpickle

    from gnomon._settings import settings_scope
    from gnomon.flows._logging import configure_logging
    from gnomon.store import get_store

    data = cloudpickle.loads(payload)
    with settings_scope(data["settings"]):
        # The flow's SQLite file must be here: a worker on another host would otherwise
        # record the run in a new, empty database of its own. Its schema is the flow's
        # process's to check and migrate, as a daemon's is for its workers (see Store).
        get_store(create=False, migrate=False)
        configure_logging()
        state = _run_plan(data, once)
        try:
            return bytes(cloudpickle.dumps(state))
        except Exception:
            return bytes(cloudpickle.dumps(_unpicklable(state)))


def _run_plan(data: dict[str, Any], once: bool) -> State:
    import types

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
        stored = _stored_final_state(plan.task_run_id) if once else None
        return stored or run_task_plan(plan, parameters=data["parameters"])
    finally:
        flow_run_var.reset(token)
        _store().flush()


def _unpicklable(state: State) -> State:
    """The state to send back when the result or the exception cannot travel: its
    description instead."""
    problem = RuntimeError(f"unpicklable {type(state.data).__name__}: {state.data!r}")
    if state.is_completed():
        # The caller's future raises this rather than returning it as the task's value.
        message = f"The task run's result cannot be returned from its worker process: {problem}"
        return Failed(message, data=problem)
    state.data = problem
    return state


def _stored_final_state(task_run_id: str) -> State | None:
    """The task run's final state if the store has one (a worker finished it, then died
    before its answer left), else None; a run started before is logged, in its flow run's
    logs, as run again."""
    from gnomon.flows._logging import engine_logger

    row = _store().read_task_run(task_run_id)
    if row is None or row.state_type == StateType.PENDING:
        return None
    if row.state_type not in FINAL_TYPES:
        engine_logger().warning(
            "task run started again: the worker running it was lost",
            task_run_id=task_run_id,
            task_run_name=row.name,
            state=row.state_name,
        )
        return None
    return _state_of(row)


def settle_in_store(
    plan: TaskRunPlan, ending: StateType, message: str, error: BaseException | None = None
) -> State:
    """Record, from the flow's process, the final state of a run its worker will not report:
    Crashed (``ending``) when the cluster lost it, Cancelled when the flow run ended first.
    A run the store has a final state of already (its worker wrote it) keeps that one."""
    store = _store()
    row = store.read_task_run(plan.task_run_id)
    if row is not None and row.state_type in FINAL_TYPES:
        return _state_of(row)
    if ending == StateType.CRASHED:
        state = Crashed(message, data=CrashedRun(message))
    else:
        state = Cancelled(message, data=CancelledRun(message))
    attempt = row.run_count if row is not None else 0
    fields = _records.error_fields(error)
    _record(store, plan, state, attempt, end_time=state.timestamp, **fields)
    store.flush()
    return state


def _state_of(row: TaskRunRow) -> State:
    """A final state as the store has it, with its value when the result was persisted."""
    from gnomon.flows._results import get_result_store

    key = (row.result_ref or {}).get("key")
    stored = get_result_store().read(key) if key else None
    if row.state_type == StateType.COMPLETED:
        if stored is None:
            message = (
                f"task run {row.id} completed on a worker that was lost before returning its"
                " value, and its result was not persisted"
            )
            return Failed(message, data=RuntimeError(message))
        data: Any = stored.value
    else:
        data = RuntimeError(row.error_message or row.state_message or row.state_name)
    assert row.state_type is not None  # a final state, checked by the caller
    return State(row.state_type, row.state_name or "", row.state_message, data=data)
