"""Task and flow retries, retry_delay_seconds, retry_condition_fn (how-to-guides/retries)."""

from prefect import flow, task
from prefect.runtime import flow_run, task_run
from prefect.tasks import exponential_backoff

attempts: list[int] = []


@task(retries=3, retry_delay_seconds=0)
def flaky() -> str:
    attempts.append(task_run.run_count)
    if len(attempts) < 3:
        raise ConnectionError("try again")
    return f"succeeded on attempt {task_run.run_count}"


@task(retries=2, retry_delay_seconds=[0, 0])
def always_fails() -> None:
    raise ValueError("never works")


def only_connection_errors(task, task_run, state) -> bool:
    try:
        state.result()
    except ConnectionError:
        return True
    except Exception:
        return False
    return False


calls = {"picky": 0}


@task(retries=5, retry_delay_seconds=0, retry_condition_fn=only_connection_errors)
def picky() -> None:
    calls["picky"] += 1
    raise KeyError("not retried")


flow_attempts: list[int] = []


@flow(retries=1, retry_delay_seconds=0)
def flaky_flow() -> str:
    flow_attempts.append(flow_run.run_count)
    if len(flow_attempts) == 1:
        raise RuntimeError("first flow attempt fails")
    return "flow succeeded"


@flow
def pipeline() -> list:
    failing = always_fails(return_state=True)
    picky_state = picky(return_state=True)
    return [flaky(), attempts, failing.name, picky_state.name, calls["picky"]]


print(pipeline())
print(flaky_flow(), flow_attempts)
print("backoff:", exponential_backoff(backoff_factor=10)(3))
