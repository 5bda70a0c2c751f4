"""ThreadPoolTaskRunner on a flow (concepts/task-runners)."""

import threading
import time

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

active = {"now": 0, "most": 0}
lock = threading.Lock()


@task
def work(x: int) -> int:
    with lock:
        active["now"] += 1
        active["most"] = max(active["most"], active["now"])
    time.sleep(0.2)
    with lock:
        active["now"] -= 1
    return x * x


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
def pipeline() -> list:
    futures = [work.submit(i) for i in range(6)]
    return [future.result() for future in futures]


print(pipeline())
print("at most two at once:", active["most"] <= 2)
print(type(pipeline.task_runner).__name__)
