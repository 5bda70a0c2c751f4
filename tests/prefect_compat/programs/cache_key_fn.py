"""cache_key_fn, including a static key, and task_input_hash (concepts/caching)."""

from prefect import flow, task
from prefect.tasks import task_input_hash

calls: list[str] = []


def static_cache_key(context, parameters) -> str:
    return "static cache key"


@task(cache_key_fn=static_cache_key)
def cached_task(x: int) -> int:
    calls.append(f"static {x}")
    return x


@task(cache_key_fn=task_input_hash)
def hashed(word: str) -> str:
    calls.append(f"hashed {word}")
    return word.upper()


@flow
def pipeline() -> list:
    return [
        cached_task(1),
        cached_task(2),
        cached_task(3, return_state=True).name,
        hashed("a"),
        hashed("a", return_state=True).name,
        hashed("b"),
    ]


print(pipeline())
print(pipeline())
print(calls)
