"""Composing cache policies: TASK_SOURCE, INPUTS - "arg", NO_CACHE (concepts/caching)."""

from prefect import flow, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE

calls: list[str] = []


@task(cache_policy=INPUTS - "debug")
def fetch(url: str, debug: bool = False) -> str:
    calls.append(f"fetch {url} {debug}")
    return url


@task(cache_policy=TASK_SOURCE + INPUTS)
def transform(x: int) -> int:
    calls.append(f"transform {x}")
    return x + 1


@task(cache_policy=NO_CACHE)
def uncached(x: int) -> int:
    calls.append(f"uncached {x}")
    return x


@flow
def pipeline() -> list:
    return [
        fetch("a"),
        fetch("a", debug=True, return_state=True).name,
        transform(1),
        transform(1, return_state=True).name,
        uncached(1, return_state=True).name,
        uncached(1, return_state=True).name,
    ]


print(pipeline())
print(calls)
