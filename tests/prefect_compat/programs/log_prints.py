"""log_prints=True turns print calls into run log records (add-logging)."""

import logging

from prefect import flow, task

messages: list[tuple[str, str]] = []


class Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        messages.append((record.levelname, record.getMessage()))


logging.getLogger().addHandler(Collect())


@task
def quiet_task() -> None:
    print("task print")


@task(log_prints=False)
def opted_out() -> None:
    print("not logged")


@flow(log_prints=True)
def chatty() -> str:
    print("hello from the flow")
    quiet_task()
    opted_out()
    return "done"


print(chatty())
wanted = {"hello from the flow", "task print", "not logged"}
print([entry for entry in messages if entry[1] in wanted])
