"""cache_expiration and refresh_cache (concepts/caching)."""

import time
from datetime import timedelta

from prefect import flow, task
from prefect.cache_policies import INPUTS

calls: list[str] = []


@task(cache_policy=INPUTS, cache_expiration=timedelta(seconds=1))
def short_lived(x: int) -> int:
    calls.append(f"short {x}")
    return x


@task(cache_policy=INPUTS, refresh_cache=True)
def always_fresh(x: int) -> int:
    calls.append(f"fresh {x}")
    return x


@flow
def pipeline() -> list:
    names = [short_lived(1, return_state=True).name, short_lived(1, return_state=True).name]
    time.sleep(1.5)
    names.append(short_lived(1, return_state=True).name)
    names.append(always_fresh(1, return_state=True).name)
    names.append(always_fresh(1, return_state=True).name)
    return names


print(pipeline())
print(calls)
