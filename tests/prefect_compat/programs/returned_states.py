"""A flow or task returning a State decides its final state (concepts/states)."""

from prefect import flow, task
from prefect.states import Completed, Failed


@task
def conditional(x: int):
    if x > 1:
        return Failed(message="I was instructed to fail.")
    return Completed(message="fine", data=x)


@flow
def returns_failed():
    return Failed(message="flow says no")


@flow
def uses_conditional() -> list:
    returned = conditional(1)
    completed = conditional(1, return_state=True)
    failed = conditional(5, return_state=True)
    return [
        type(returned).__name__,
        completed.name,
        completed.message,
        completed.result(),
        failed.name,
        failed.message,
    ]


print(uses_conditional())
try:
    returns_failed()
except Exception as error:
    print("raised:", type(error).__name__, "|", error)
state = returns_failed(return_state=True)
print("state:", state.name, "|", state.message)
outcome = state.result(raise_on_failure=False)
print("result without raising:", type(outcome).__name__, "|", outcome)
print("bare Failed():", type(Failed().result(raise_on_failure=False)).__name__)
