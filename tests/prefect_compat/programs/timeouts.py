"""timeout_seconds on tasks and flows (concepts/tasks, concepts/flows)."""

import asyncio

from prefect import flow, task


@task(timeout_seconds=0.5)
async def slow_task() -> str:
    await asyncio.sleep(5)
    return "finished"


@task(timeout_seconds=5)
async def quick_task() -> str:
    return "quick"


@flow
async def pipeline() -> list:
    state = await slow_task(return_state=True)
    return [await quick_task(), state.name, state.type.value]


@flow(timeout_seconds=0.5)
async def slow_flow() -> str:
    await asyncio.sleep(5)
    return "finished"


print(asyncio.run(pipeline()))
state = asyncio.run(slow_flow(return_state=True))
print(state.name, state.type.value)
try:
    asyncio.run(slow_flow())
except BaseException as error:
    print("raised:", type(error).__name__, isinstance(error, TimeoutError))
