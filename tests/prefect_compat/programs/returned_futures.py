"""A flow returning futures, or a tuple of them (concepts/states, final state rules)."""

from prefect import flow, task


@task
def square(x: int) -> int:
    return x * x


@task
def broken(x: int) -> int:
    raise RuntimeError(f"broken {x}")


@flow
def returns_future():
    return square.submit(3)


@flow
def returns_tuple():
    return square.submit(2), square.submit(4)


@flow
def returns_some_failed():
    return square.submit(2), broken.submit(1)


def describe(value) -> str:
    """What a user sees of a value: its type, and a state's name and result."""
    if hasattr(value, "is_completed"):
        outcome = value.result(raise_on_failure=False)
        return f"{type(value).__name__} {value.name} {outcome!r}"
    return f"{type(value).__name__} {value!r}"


print("future:", describe(returns_future()))
print("tuple:", [describe(value) for value in returns_tuple()])
state = returns_some_failed(return_state=True)
print("mixed:", state.name, "|", state.message)
try:
    print("returned:", [describe(value) for value in returns_some_failed()])
except Exception as error:
    print("raised:", type(error).__name__, "|", error)
