"""Many processes writing to one SQLite store at once lose nothing and never see it locked."""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import all_states, read_line, start_python
from gnomon.store import get_store

PROCESSES = 8
FLOWS = 3  # per process
DIRECT_CALLS = 100
MAPPED = 100
TASKS = DIRECT_CALLS + MAPPED

WORKER = textwrap.dedent(
    f"""
    import sys
    from gnomon import flow, task
    from gnomon.flows._context import get_flow_run_context

    @task
    def square(x: int) -> int:
        return x * x

    @flow
    def crunch() -> str:
        direct = [square(i) for i in range({DIRECT_CALLS})]
        mapped = square.map(range({MAPPED})).result()
        assert direct == mapped == [i * i for i in range({DIRECT_CALLS})]
        return get_flow_run_context().flow_run_id

    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range({FLOWS}):
        print(crunch(), flush=True)
    """
)


@pytest.mark.slow
def test_eight_processes_sharing_one_store_record_every_run_and_state(gnomon_home: Path) -> None:
    # The database does not exist yet: the processes also race to create and migrate it.
    assert not gnomon_home.exists()
    processes = [start_python(WORKER, gnomon_home) for _ in range(PROCESSES)]
    outputs: list[tuple[int, str, str]] = []
    try:
        for process in processes:
            assert read_line(process).strip() == "ready", process.stderr
        for process in processes:  # release them together
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        for process in processes:
            stdout, stderr = process.communicate(timeout=60)
            outputs.append((process.returncode, stdout, stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.communicate()

    flow_run_ids = set()
    for returncode, stdout, stderr in outputs:
        assert returncode == 0, stderr
        assert "database is locked" not in stderr
        assert "Traceback" not in stderr, stderr
        flow_run_ids.update(stdout.split())
    assert len(flow_run_ids) == PROCESSES * FLOWS

    store = get_store()
    flow_runs = store.read_runs(limit=10 * PROCESSES)
    assert {run.id for run in flow_runs} == flow_run_ids
    assert {run.state_name for run in flow_runs} == {"Completed"}
    for run_id in flow_run_ids:
        task_runs = store.read_task_runs(run_id)
        assert len(task_runs) == TASKS
        assert {run.state_type for run in task_runs} == {"COMPLETED"}
        states = defaultdict(list)
        for row in all_states(store, run_id):
            states[row.task_run_id].append(row.name)
        assert states.pop(None) == ["Pending", "Running", "Completed"]
        assert set(states) == {run.id for run in task_runs}
        for names in states.values():
            assert names == ["Pending", "Running", "Completed"]
