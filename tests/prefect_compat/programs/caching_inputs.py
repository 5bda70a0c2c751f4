"""The INPUTS cache policy: the same inputs give a Cached state (concepts/caching)."""

from prefect import flow, task
from prefect.cache_policies import INPUTS

calls: list[int] = []


@task(cache_policy=INPUTS)
def expensive(x: int) -> int:
    calls.append(x)
    return x * 100


@flow
def first() -> list:
    return [expensive(1, return_state=True).name, expensive(2)]


@flow
def second() -> list:
    hit = expensive(1, return_state=True)
    return [hit.name, hit.type.value, hit.result(), expensive(3)]


print(first())
print(second())
print("bodies ran for:", calls)
