"""concurrency() from prefect.concurrency.sync and .asyncio (global-concurrency-limits)."""

import asyncio

from prefect import flow, task
from prefect.concurrency.asyncio import concurrency as async_concurrency
from prefect.concurrency.sync import concurrency


@task
def write(x: int) -> int:
    with concurrency("database", occupy=1):
        return x + 1


@task
async def async_write(x: int) -> int:
    async with async_concurrency("database", occupy=1):
        return x + 2


@flow
def pipeline() -> list:
    futures = write.map([1, 2, 3])
    return futures.result()


@flow
async def async_pipeline() -> list:
    return await asyncio.gather(async_write(1), async_write(2))


print(pipeline())
print(asyncio.run(async_pipeline()))
