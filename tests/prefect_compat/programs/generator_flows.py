"""Generator flows and tasks yield values as they run (concepts/flows, tasks)."""

from prefect import flow, task


@task
def numbers(n: int):
    yield from range(n)


@flow
def generate(n: int):
    for value in numbers(n):
        yield value * 10


@flow
def consume() -> list:
    return list(generate(3))


print(list(generate(4)))
print(consume())
print(list(numbers.fn(2)))
