"""Transactions as Prefect 3's ``prefect.transactions`` (its docs' examples as the spec):
task ``on_commit`` / ``on_rollback`` hooks, values kept on a transaction, idempotent keys,
commit modes and SERIALIZABLE keys. The orders of hooks and states asserted here are those
the same programs printed under Prefect 3.8.8 (there ``@task`` itself takes no ``on_commit``
or ``on_rollback``; ``Task(...)``, ``with_options`` and the decorators do)."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import run_python
from gnomon import flow, task
from gnomon.cache_policies import INPUTS
from gnomon.transactions import (
    CommitMode,
    IsolationLevel,
    Transaction,
    atransaction,
    get_transaction,
    transaction,
)


def test_a_failing_task_rolls_back_the_side_effects_of_those_before_it(tmp_path: Path):
    """Prefect's docs example: the file written by one task is removed when the quality
    check after it fails."""
    side_effect = tmp_path / "side-effect.txt"
    hook_args: list[Any] = []

    @task
    def write_file(contents: str) -> None:
        side_effect.write_text(contents)

    @write_file.on_rollback
    def del_file(txn: Any) -> None:
        hook_args.append(txn)
        side_effect.unlink()

    @task
    def quality_test() -> None:
        if len(side_effect.read_text().splitlines()) < 2:
            raise ValueError("Not enough data!")

    @flow
    def pipeline(contents: str) -> None:
        with transaction():
            write_file(contents)
            quality_test()

    with pytest.raises(ValueError, match="Not enough data!"):
        pipeline("one line")
    assert not side_effect.exists()
    assert len(hook_args) == 1
    assert isinstance(hook_args[0], Transaction)
    assert hook_args[0].is_rolled_back()

    pipeline("two\nlines")
    assert side_effect.read_text() == "two\nlines", "no rollback when every task completes"


def test_commit_hooks_run_when_the_transaction_commits_after_all_its_tasks():
    events: list[str] = []

    @task(on_commit=[lambda txn: events.append("commit a")])
    def a() -> None:
        events.append("body a")

    @task
    def b() -> None:
        events.append("body b")

    @flow
    def pipeline() -> None:
        with transaction():
            a()
            b()
            events.append("block ends")
        events.append("after block")

    pipeline()
    assert events == ["body a", "body b", "block ends", "commit a", "after block"]


def test_outside_a_transaction_a_tasks_commit_hook_runs_when_it_completes():
    events: list[str] = []

    @task(on_commit=[lambda txn: events.append("commit")])
    def step() -> None:
        events.append("body")

    @flow
    def pipeline() -> None:
        step()
        events.append("next")

    pipeline()
    assert events == ["body", "commit", "next"]


def test_rollback_hooks_run_latest_first_and_commit_hooks_never():
    events: list[str] = []

    def make(name: str) -> Any:
        @task(
            name=name,
            on_rollback=[lambda txn: events.append(f"rollback {name}")],
            on_commit=[lambda txn: events.append(f"commit {name}")],
        )
        def step() -> None:
            events.append(f"body {name}")

        return step

    first, second = make("first"), make("second")

    @task
    def fails() -> None:
        raise RuntimeError("stop")

    @flow
    def pipeline() -> str:
        with transaction() as txn:
            first()
            second()
            state = fails(return_state=True)
        return f"{state.name} {txn.state.value}"

    assert pipeline() == "Failed ROLLED_BACK"
    assert events == ["body first", "body second", "rollback second", "rollback first"]


def test_a_failed_attempt_rolls_back_even_when_a_retry_then_completes():
    """As Prefect 3.8.8 does: each attempt is a transaction of its own, and the first
    attempt's error rolled the transaction around it back."""
    events: list[str] = []
    attempts: list[int] = []

    @task(on_rollback=[lambda txn: events.append("rollback first")])
    def first() -> None:
        events.append("body first")

    @task(retries=1)
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("once")
        return 1

    @flow
    def pipeline() -> str:
        with transaction() as txn:
            first()
            flaky()
        return txn.state.value

    assert pipeline() == "ROLLED_BACK"
    assert events == ["body first", "rollback first"]


def test_values_set_on_the_transaction_reach_the_hooks(tmp_path: Path):
    seen: list[Any] = []

    @task
    def write_file(filename: str, contents: str) -> None:
        Path(filename).write_text(contents)

    @write_file.on_rollback
    def del_file(txn: Any) -> None:
        seen.append(txn.get("filename"))
        Path(txn.get("filename")).unlink()

    @task
    def fails() -> None:
        raise ValueError("later failure")

    @flow
    def pipeline(filename: str) -> None:
        with transaction() as txn:
            txn.set("filename", filename)
            write_file(filename, "data")
            fails()

    target = tmp_path / "out.txt"
    with pytest.raises(ValueError):
        pipeline(str(target))
    assert seen == [str(target)]
    assert not target.exists()


def test_get_copies_values_falls_back_to_parents_and_defaults():
    with transaction() as outer:
        outer.set("items", [1, 2])
        outer.get("items").append(3)
        assert outer.get("items") == [1, 2], "a copy: set() is how a value changes"
        with transaction() as inner:
            assert inner.get("items") == [1, 2]
            assert inner.get("absent", "fallback") == "fallback"
            with pytest.raises(ValueError, match="unknown key: absent"):
                inner.get("absent")


def test_get_transaction_is_the_current_one_and_a_tasks_own_inside_it():
    seen: dict[str, Any] = {}

    @task
    def look() -> None:
        own = get_transaction()
        seen["task"] = own
        seen["parent"] = own.get_parent() if own else None

    @flow
    def pipeline() -> None:
        with transaction() as txn:
            seen["flow"] = txn
            look()

    assert get_transaction() is None
    pipeline()
    assert seen["task"] is not seen["flow"]
    assert seen["parent"] is seen["flow"]


def test_a_task_outside_any_transaction_commits_its_own_and_what_its_body_added():
    """The engine's short way for a task with no key, hooks or transaction around it must
    still commit the task's own transaction, and run a hook the body put on it."""
    seen: dict[str, Any] = {}
    committed: list[str] = []

    @task
    def plain() -> int:
        seen["plain"] = get_transaction()
        return 3

    @task
    def with_hook() -> int:
        own = get_transaction()
        assert own is not None
        own.on_commit_hooks.append(lambda txn: committed.append("body's hook"))
        seen["hooked"] = own
        return 4

    assert plain() == 3
    assert with_hook() == 4
    assert seen["plain"].is_committed()
    assert seen["plain"].get_parent() is None
    assert seen["hooked"].is_committed()
    assert committed == ["body's hook"]


def test_a_committed_key_makes_the_next_transaction_start_committed():
    runs: list[str] = []

    @task
    def download() -> str:
        runs.append("download")
        return "data"

    @flow
    def pipeline() -> str:
        with transaction(key="download-and-write-data") as txn:
            if txn.is_committed():
                return "already done"
            download()
        return "done"

    assert pipeline() == "done"
    assert pipeline() == "already done"
    assert runs == ["download"]
    with transaction(key="download-and-write-data", overwrite=True) as txn:
        assert not txn.is_committed(), "overwrite runs the work again"


def test_a_rolled_back_key_is_not_recorded():
    with pytest.raises(RuntimeError), transaction(key="not-finished"):
        raise RuntimeError("the work failed")
    with transaction(key="not-finished") as txn:
        assert not txn.is_committed()


def test_a_committed_keys_staged_value_can_be_read_back():
    with transaction(key="with value") as txn:
        txn.stage({"rows": 3})
    with transaction(key="with value") as again:
        assert again.is_committed()
        record = again.read()
        assert record is not None
        assert record.result == {"rows": 3}


def test_a_cached_tasks_record_is_written_only_when_its_transaction_commits():
    calls: list[int] = []

    @task(cache_policy=INPUTS)
    def compute(x: int) -> int:
        calls.append(x)
        return x * 10

    @task
    def fails() -> None:
        raise ValueError("quality check")

    @flow
    def rolled_back() -> None:
        with transaction():
            compute(1)
            fails()

    @flow
    def committed() -> list[str]:
        with transaction():
            state = compute(1, return_state=True)
        return [state.name, compute(1, return_state=True).name]

    with pytest.raises(ValueError):
        rolled_back()
    assert committed() == ["Completed", "Cached"], "the rolled back run's result was not kept"
    assert calls == [1, 1]


def test_commit_mode_off_rolls_back_and_eager_commits_a_nested_transaction():
    events: list[str] = []

    @task(
        on_commit=[lambda txn: events.append("commit")],
        on_rollback=[lambda txn: events.append("rollback")],
    )
    def step() -> None:
        return None

    @flow
    def off() -> None:
        with transaction(commit_mode=CommitMode.OFF):
            step()

    @flow
    def eager() -> None:
        with transaction(commit_mode=CommitMode.OFF), transaction(commit_mode=CommitMode.EAGER):
            step()
            events.append("inner ends")

    off()
    assert events == ["rollback"]
    events.clear()
    eager()
    assert events == ["commit", "inner ends"], "an EAGER task transaction commits at once"


def test_serializable_keys_let_one_run_do_the_work_while_the_other_waits():
    first_inside, release = threading.Event(), threading.Event()
    second_saw: list[bool] = []

    def first() -> None:
        with transaction(key="serial", isolation_level=IsolationLevel.SERIALIZABLE):
            first_inside.set()
            release.wait(30)

    def second() -> None:
        with transaction(key="serial", isolation_level=IsolationLevel.SERIALIZABLE) as txn:
            second_saw.append(txn.is_committed())

    one = threading.Thread(target=first)
    one.start()
    assert first_inside.wait(30)
    two = threading.Thread(target=second)
    two.start()
    two.join(0.5)
    assert two.is_alive(), "the second transaction entered while the first held the key"
    release.set()
    one.join(30)
    two.join(30)
    assert second_saw == [True]


def test_atransaction_works_with_async_with():
    import asyncio

    async def main() -> bool:
        async with atransaction(key="async key") as txn:
            txn.set("x", 1)
        async with atransaction(key="async key") as again:
            return again.is_committed()

    assert asyncio.run(main()) is True


def test_a_committed_key_holds_across_processes_and_tampering_undoes_it(gnomon_home: Path):
    """The key's record lives in the state directory's result store, signed like results:
    another process sees it, and a record whose signature fails counts as absent."""
    code = textwrap.dedent(
        """
        from gnomon import flow
        from gnomon.transactions import transaction

        @flow
        def pipeline():
            with transaction(key="nightly export") as txn:
                if txn.is_committed():
                    return "already done"
            return "done"

        print(pipeline())
        """
    )
    outputs = []
    for _ in range(2):
        finished = run_python(code, gnomon_home)
        assert finished.returncode == 0, finished.stderr
        outputs.append(finished.stdout.strip())
    assert outputs == ["done", "already done"]
    [record] = [path for path in (gnomon_home / "results").iterdir() if path.name[0] == "~"]
    data = bytearray(record.read_bytes())
    data[-2] ^= 0x01
    record.write_bytes(bytes(data))
    again = run_python(code, gnomon_home)
    assert again.stdout.strip() == "done", again.stderr
