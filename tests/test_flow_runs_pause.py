"""pause_flow_run, suspend_flow_run and resume_flow_run called as Prefect's programs call
them: a flow pauses in this process while another thread resumes it through the store, with
input validated against the model it waits for; a pause that times out fails its run; keys
make pauses fire once. Real store files (and PostgreSQL); Prefect 3.8.8's behaviour is the
spec (its messages where it has them)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from gnomon import flow, task
from gnomon.exceptions import FlowPauseTimeout, NotPausedError
from gnomon.flow_runs import pause_flow_run, resume_flow_run, suspend_flow_run
from gnomon.input import RunInput
from gnomon.runtime import flow_run
from gnomon.states import StateName, StateType
from gnomon.store import Store

pytestmark = pytest.mark.backends


class Approval(RunInput):
    approved: bool
    note: str = "none"


def resume_when_paused(
    store: Store, ids: list[str], inputs: list[dict[str, Any] | None], errors: list[str]
) -> threading.Thread:
    """A thread that waits for the run in ``ids`` to pause, then resumes it with each of
    ``inputs`` in turn, noting the errors of those refused."""

    def resume() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = store.read_flow_run(ids[0]) if ids else None
            if row is not None and row.state_type == StateType.PAUSED:
                break
            time.sleep(0.02)
        for run_input in inputs:
            try:
                resume_flow_run(ids[0], run_input=run_input)
            except Exception as error:
                errors.append(f"{type(error).__name__}: {error}")

    thread = threading.Thread(target=resume)
    thread.start()
    return thread


def paused_flow(wait_for_input: Any, ids: list[str], **options: Any) -> Callable[[], Any]:
    @flow
    def approval() -> Any:
        ids.append(flow_run.id)
        return pause_flow_run(wait_for_input=wait_for_input, poll_interval=0.05, **options)

    return approval


def test_a_paused_run_waits_in_paused_and_returns_the_validated_input(store: Store) -> None:
    ids: list[str] = []
    errors: list[str] = []
    resumer = resume_when_paused(
        store, ids, [{"approved": "maybe"}, {"approved": True, "note": "ok"}], errors
    )
    answer = paused_flow(Approval, ids)()
    resumer.join()

    assert isinstance(answer, Approval)
    assert (answer.approved, answer.note) == (True, "ok")
    # Refused at resume time, naming the field and the value, as Prefect's API does.
    assert errors == [
        "InvalidRunInput: Cannot resume this run: Validation failed for field 'approved'."
        " Failure reason: 'maybe' is not of type 'boolean'"
    ]
    names = [state.name for state in store.read_states(flow_run_id=ids[0])]
    assert names == [
        StateName.PENDING,
        StateName.RUNNING,
        StateName.PAUSED,
        StateName.RUNNING,
        StateName.COMPLETED,
    ]
    [audit] = store.read_audit(action="run-resume")
    assert audit.target == ids[0]
    assert audit.origin == "python"


def test_a_plain_type_is_wrapped_in_a_value_field_and_its_value_returned(store: Store) -> None:
    ids: list[str] = []
    errors: list[str] = []
    resumer = resume_when_paused(store, ids, [None, {"value": 5}], errors)
    answer = paused_flow(int, ids)()
    resumer.join()

    assert answer == 5
    assert errors == [
        "InvalidRunInput: Cannot resume this run: Validation failed."
        " Failure reason: 'value' is a required property"
    ]


def test_a_pydantic_model_comes_back_as_an_instance_of_that_model(store: Store) -> None:
    class User(pydantic.BaseModel):
        name: str
        age: int

    ids: list[str] = []
    resumer = resume_when_paused(store, ids, [{"name": "Ada", "age": 36}], [])
    answer = paused_flow(User, ids)()
    resumer.join()

    assert isinstance(answer, User)
    assert (answer.name, answer.age) == ("Ada", 36)


def test_an_async_flow_awaits_its_pause_as_prefects_documentation_writes_it(
    store: Store,
) -> None:
    class User(pydantic.BaseModel):
        name: str

    ids: list[str] = []
    resumer = resume_when_paused(store, ids, [{"name": "Grace"}], [])

    @flow
    async def greet() -> str:
        ids.append(flow_run.id)
        user = await pause_flow_run(wait_for_input=User, poll_interval=0.05)
        return f"Hello, {user.name}!"

    assert asyncio.run(greet()) == "Hello, Grace!"
    resumer.join()


def test_a_pause_not_resumed_in_time_fails_the_run_and_cannot_be_resumed(store: Store) -> None:
    ids: list[str] = []
    state = paused_flow(None, ids, timeout=0.3)(return_state=True)

    assert state.type is StateType.FAILED
    assert isinstance(state.data, FlowPauseTimeout)
    assert "Flow run was paused and never resumed." in (state.message or "")
    row = store.read_flow_run(ids[0])
    assert row is not None
    assert row.state_name == StateName.FAILED
    with pytest.raises(NotPausedError):
        resume_flow_run(ids[0])


def test_a_pause_key_fires_once(store: Store) -> None:
    ids: list[str] = []
    resumer = resume_when_paused(store, ids, [{"value": "first"}], [])

    @flow
    def twice() -> tuple[Any, Any]:
        ids.append(flow_run.id)
        first = pause_flow_run(wait_for_input=str, key="approval", poll_interval=0.05)
        # The same key again: the pause fired already, so its input comes back at once.
        again = pause_flow_run(wait_for_input=str, key="approval", poll_interval=0.05)
        return first, again

    assert twice() == ("first", "first")
    resumer.join()


def test_pausing_and_suspending_outside_a_flow_or_without_a_deployment_is_refused(
    store: Store,
) -> None:
    with pytest.raises(RuntimeError, match="only be paused from within a flow run"):
        pause_flow_run()
    with pytest.raises(RuntimeError, match="only be suspended from within a flow run"):
        suspend_flow_run()

    @flow
    def direct() -> None:
        suspend_flow_run()

    @task
    def step() -> None:
        suspend_flow_run()

    @flow
    def in_task() -> None:
        step()

    with pytest.raises(RuntimeError, match="Cannot suspend flows without a deployment"):
        direct()
    with pytest.raises(RuntimeError, match="Cannot suspend task runs"):
        in_task()


def test_resuming_a_run_that_is_not_paused_says_so(store: Store) -> None:
    @flow
    def done() -> str:
        return flow_run.id

    run_id = done()
    with pytest.raises(NotPausedError, match="isn't paused"):
        resume_flow_run(run_id)
