"""Flows call tasks; names default from the function (concepts/flows, concepts/tasks)."""

from prefect import flow, task


@task
def add(x: int, y: int) -> int:
    return x + y


@task(name="Multiply numbers")
def multiply(x: int, y: int) -> int:
    return x * y


@flow
def my_flow(a: int = 2) -> int:
    return multiply(add(a, 3), 10)


@flow(name="Named flow", description="Adds up.", version="1.2")
def named_flow() -> str:
    return "done"


print("result:", my_flow())
print("result with a=5:", my_flow(5))
print("flow name:", my_flow.name)
print("named flow:", named_flow.name, "|", named_flow.description, "|", named_flow.version)
print("task names:", add.name, "|", multiply.name)
print("plain function:", add.fn(1, 2), my_flow.fn(1))
print("named flow result:", named_flow())
