"""Concurrency limits held across real processes sharing one store.

Holders are real interpreters that report on stdout and wait on stdin, so the test decides
when a slot is released; the tests never wait by sleeping.
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import read_line, start_python, stop_python
from gnomon.concurrency import (
    concurrency,
    delete_concurrency_limit,
    delete_tag_concurrency_limit,
    read_concurrency_limits,
    set_concurrency_limit,
    set_tag_concurrency_limit,
)
from gnomon.exceptions import AcquireConcurrencySlotTimeoutError
from gnomon.store._schema import concurrency_slots

pytestmark = pytest.mark.backends

DEADLINE = 20.0

HOLDER = textwrap.dedent(
    """
    import sys
    from gnomon.concurrency import concurrency

    with concurrency("db", occupy=1):
        print("acquired", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    """
)


def _expect(process: subprocess.Popen[str], line: str) -> None:
    """Read the process's next stdout line; fail with its stderr if it is not ``line``."""
    got = read_line(process, DEADLINE).strip()
    if got != line:
        process.kill()
        _, stderr = process.communicate(timeout=DEADLINE)
        pytest.fail(f"expected {line!r} from the subprocess, got {got!r}; stderr:\n{stderr}")


def _finish(process: subprocess.Popen[str], stdin: str = "") -> str:
    """Send ``stdin``, wait for a clean exit and return stdout."""
    stdout, stderr = process.communicate(stdin, timeout=DEADLINE)
    assert process.returncode == 0, stderr
    return stdout


def _slot_holders(store) -> list[str]:
    with store.reader.connect() as connection:
        return list(connection.execute(select(concurrency_slots.c.holder)).scalars())


def test_acquire_times_out_while_another_process_holds_the_only_slot(
    gnomon_home: Path, store
) -> None:
    set_concurrency_limit("db", 1)
    holder = start_python(HOLDER, gnomon_home)
    try:
        _expect(holder, "acquired")

        with (
            pytest.raises(AcquireConcurrencySlotTimeoutError, match="timed out") as caught,
            concurrency("db", occupy=1, timeout_seconds=0.3),
        ):
            pytest.fail("acquired a slot another process holds")
        assert isinstance(caught.value, TimeoutError)

        assert _finish(holder, "release\n").strip() == "released"
    finally:
        stop_python(holder)

    with concurrency("db", occupy=1, timeout_seconds=DEADLINE):
        assert len(_slot_holders(store)) == 1
    assert _slot_holders(store) == []


def test_names_without_a_limit_never_block(store) -> None:
    set_concurrency_limit("db", 1)
    with concurrency("db", timeout_seconds=DEADLINE):
        with concurrency("cache", occupy=50, timeout_seconds=0.1), concurrency("cache"):
            pass
        # Only the limited name of a list counts, and it is full.
        with (
            pytest.raises(AcquireConcurrencySlotTimeoutError),
            concurrency(["cache", "db"], timeout_seconds=0.2),
        ):
            pytest.fail("acquired a full limit")


def test_occupy_takes_that_many_slots_of_the_limit(store) -> None:
    set_concurrency_limit("gpu", 3)
    with concurrency("gpu", occupy=2, timeout_seconds=DEADLINE):
        with (
            pytest.raises(AcquireConcurrencySlotTimeoutError),
            concurrency("gpu", occupy=2, timeout_seconds=0.2),
        ):
            pytest.fail("took 4 slots of a limit of 3")
        with concurrency("gpu", occupy=1, timeout_seconds=0.2):
            pass


TAGGED_FLOW = textwrap.dedent(
    """
    import fcntl, os, sys, threading, time
    from gnomon import flow, task
    from gnomon.task_runners import ThreadPoolTaskRunner

    def record(event):
        with open({log!r}, "a") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            file.write(f"{{event}} {{os.getpid()}}:{{threading.get_ident()}}\\n")
            file.flush()

    @task(tags=["t"])
    def guarded(i):
        record("enter")
        time.sleep(0.02)  # an opportunity for another holder to overlap, if it could
        record("exit")
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def many():
        return guarded.map(range(4)).result()

    print("ready", flush=True)
    sys.stdin.readline()
    assert many() == [0, 1, 2, 3]
    """
)


def test_tag_limit_of_one_never_lets_two_tagged_tasks_overlap_across_processes(
    gnomon_home: Path, tmp_path: Path
) -> None:
    log = tmp_path / "bodies.log"
    set_tag_concurrency_limit("t", 1)
    code = TAGGED_FLOW.format(log=str(log))
    processes = [start_python(code, gnomon_home) for _ in range(2)]
    try:
        for process in processes:
            _expect(process, "ready")
        for process in processes:  # both flows start submitting at once
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        for process in processes:
            _finish(process)
    finally:
        for process in processes:
            stop_python(process)

    events = [line.split() for line in log.read_text().splitlines()]
    assert len(events) == 16
    assert len({who.partition(":")[0] for _, who in events}) == 2
    for index in range(0, len(events), 2):
        (enter, who), (leave, same) = events[index], events[index + 1]
        assert (enter, leave) == ("enter", "exit"), f"tagged bodies overlapped: {events}"
        assert who == same


def test_slots_of_a_killed_holder_process_are_reclaimed_by_the_next_waiter(
    gnomon_home: Path, store
) -> None:
    set_concurrency_limit("db", 1)
    holder = start_python(HOLDER, gnomon_home)
    try:
        _expect(holder, "acquired")
        with (
            pytest.raises(AcquireConcurrencySlotTimeoutError),
            concurrency("db", timeout_seconds=0.2),
        ):
            pytest.fail("acquired a slot a live process holds")
        dead = [holder_id for holder_id in _slot_holders(store) if f":{holder.pid}:" in holder_id]
        assert len(dead) == 1

        holder.send_signal(signal.SIGKILL)
        holder.wait(DEADLINE)
    finally:
        stop_python(holder)
    assert holder.returncode == -signal.SIGKILL

    # A short timeout: the dead holder's slot is reclaimed by the waiter, not after it gave up.
    with concurrency("db", timeout_seconds=1):
        assert dead[0] not in _slot_holders(store)
    assert _slot_holders(store) == []


def test_limits_are_created_changed_read_and_deleted_through_the_python_api(store) -> None:
    assert read_concurrency_limits() == {}

    set_concurrency_limit("db", 2)
    set_tag_concurrency_limit("etl", 1)
    assert read_concurrency_limits() == {"db": 2, "tag:etl": 1}

    set_concurrency_limit("db", 5)
    assert read_concurrency_limits() == {"db": 5, "tag:etl": 1}
    assert store.read_concurrency_limits(["db"]).get("db") == 5

    with pytest.raises(ValueError, match="must be >= 0"):
        set_concurrency_limit("db", -1)

    assert delete_tag_concurrency_limit("etl") is True
    assert delete_tag_concurrency_limit("etl") is False
    assert delete_concurrency_limit("db") is True
    assert delete_concurrency_limit("db") is False
    assert read_concurrency_limits() == {}


def test_deleting_a_limit_frees_the_name_for_unlimited_use(store) -> None:
    set_concurrency_limit("db", 0)
    with (
        pytest.raises(AcquireConcurrencySlotTimeoutError),
        concurrency("db", timeout_seconds=0.1),
    ):
        pytest.fail("a limit of 0 let a holder in")
    delete_concurrency_limit("db")
    with concurrency("db", occupy=3, timeout_seconds=0.1):
        pass
