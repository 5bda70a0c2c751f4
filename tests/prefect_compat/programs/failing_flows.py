"""A failing task fails its flow; raise_on_failure=False (concepts/states, flows)."""

from prefect import flow, task


@task
def divide(x: int, y: int) -> float:
    return x / y


@flow
def pipeline(y: int) -> float:
    return divide(10, y)


@flow
def tolerant() -> str:
    state = divide(1, 0, return_state=True)
    return f"task {state.name}, flow continues"


print(pipeline(2))
try:
    pipeline(0)
except ZeroDivisionError as error:
    print("raised:", type(error).__name__, "|", error)
state = pipeline(0, return_state=True)
print("state:", state.name, state.type.value, state.is_failed())
print("message:", state.message)
print("result:", repr(state.result(raise_on_failure=False)))
print(tolerant())
