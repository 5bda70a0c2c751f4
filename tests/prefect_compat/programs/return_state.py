"""return_state=True on tasks and flows; State accessors (concepts/states)."""

from prefect import flow, task


@task
def add_one(x: int) -> int:
    return x + 1


@task
def fails() -> None:
    raise ValueError("bad input")


@flow
def my_flow() -> list:
    ok = add_one(1, return_state=True)
    bad = fails(return_state=True)
    error = bad.result(raise_on_failure=False)
    return [
        ok.name,
        ok.type.value,
        ok.is_completed(),
        ok.result(),
        bad.name,
        bad.is_failed(),
        type(error).__name__,
        str(error),
    ]


print(my_flow())
state = my_flow(return_state=True)
print(state.name, state.is_completed(), state.result()[0])
