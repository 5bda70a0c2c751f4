"""Transactions with on_commit and on_rollback hooks (advanced/transactions)."""

from prefect import flow, task
from prefect.transactions import transaction

events: list[str] = []


@task
def write(name: str) -> str:
    events.append(f"write {name}")
    return name


@write.on_commit
def committed(txn) -> None:
    events.append("commit")


@write.on_rollback
def rolled_back(txn) -> None:
    events.append("rollback")


@task
def check(ok: bool) -> None:
    if not ok:
        raise ValueError("quality check failed")


@flow
def pipeline(ok: bool) -> str:
    with transaction():
        write("data")
        check(ok)
    return "done"


print(pipeline(True))
print(events)
events.clear()
try:
    pipeline(False)
except ValueError as error:
    print("raised:", error)
print(events)
