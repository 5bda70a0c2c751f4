"""Async flows and tasks, gathered concurrently (concepts/flows, concepts/tasks)."""

import asyncio

from prefect import flow, task


@task
async def fetch(item: int) -> int:
    await asyncio.sleep(0.01)
    return item * 2


@task
def sync_step(x: int) -> int:
    return x + 1


@flow
async def pipeline(n: int = 3) -> list:
    results = await asyncio.gather(*[fetch(i) for i in range(n)])
    state = await fetch(10, return_state=True)
    value = await state.result()
    future = fetch.submit(7)
    return [results, state.name, value, future.result(), sync_step(1)]


coroutine = pipeline()
print(type(coroutine).__name__)
print(asyncio.run(coroutine))
print(asyncio.run(pipeline(n=1, return_state=True)).name)
