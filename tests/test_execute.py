"""Starting a stored flow run in another process from its id alone, and what survives a kill."""

from __future__ import annotations

import builtins
import signal
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import logs_of, read_line, run_python, schedule_run, start_python, subflows
from gnomon.exceptions import ObjectNotFound
from gnomon.flows import execute_flow_run

pytestmark = pytest.mark.backends

DEADLINE = 30.0

FLOW_MODULE = textwrap.dedent(
    """
    from gnomon import flow, task

    @task
    def scale(value: int, factor: int) -> int:
        return value * factor

    @flow
    def nightly_report(values: list[int], factor: int = 1) -> int:
        return sum(scale.map(values, factor).result())
    """
)


def _schedule(store: Any, entrypoint: str, parameters: dict[str, Any]) -> str:
    """Insert a Scheduled flow run, committed at once, as a scheduler would."""
    return schedule_run(store, entrypoint, parameters, name="scheduled-report")


@pytest.mark.parametrize("form", ["absolute file", "relative file", "module"])
def test_stored_flow_run_executes_in_another_process_given_only_its_id(
    form: str, tmp_path: Path, gnomon_home: Path, store
) -> None:
    # tmp_path is the working directory (conftest), so "relative file" is relative to it.
    package = tmp_path / "team_flows"
    package.mkdir()
    (package / "reports.py").write_text(FLOW_MODULE)
    setup = ""
    entrypoint = {
        "absolute file": f"{package / 'reports.py'}:nightly_report",
        "relative file": "team_flows/reports.py:nightly_report",
        "module": "reports:nightly_report",
    }[form]
    if form == "module":
        setup = f"import sys; sys.path.insert(0, {str(package)!r})\n"
    run_id = _schedule(store, entrypoint, {"values": [1, 2, 3], "factor": 10})

    result = run_python(
        setup + "from gnomon.flows import execute_flow_run\n"
        f"state = execute_flow_run({run_id!r})\n"
        "print(state.name, state.result())\n",
        gnomon_home,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Completed", "60"]
    run = store.read_flow_run(run_id)
    assert (run.state_type, run.state_name) == ("COMPLETED", "Completed")
    assert run.name == "scheduled-report"
    assert run.parameters == {"values": [1, 2, 3], "factor": 10}
    assert run.start_time is not None
    assert run.end_time is not None
    assert [row.name for row in store.read_states(flow_run_id=run_id)] == [
        "Scheduled",
        "Running",
        "Completed",
    ]
    task_runs = store.read_task_runs(run_id)
    assert len(task_runs) == 3
    assert {row.state_name for row in task_runs} == {"Completed"}
    assert store.read_runs() == [run]  # no second flow run was created


def test_flow_file_can_import_the_modules_beside_it(
    tmp_path: Path, gnomon_home: Path, store
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pricing.py").write_text("VAT = 0.25\n")
    (project / "invoices.py").write_text(
        textwrap.dedent(
            """
            from gnomon import flow
            from pricing import VAT

            @flow
            def invoice(net: float) -> float:
                return net * (1 + VAT)
            """
        )
    )
    run_id = _schedule(store, f"{project / 'invoices.py'}:invoice", {"net": 100.0})

    result = run_python(
        f"from gnomon.flows import execute_flow_run; print(execute_flow_run({run_id!r}).result())",
        gnomon_home,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "125.0"
    assert store.read_flow_run(run_id).state_name == "Completed"


def test_module_entrypoint_is_found_in_the_working_directory_of_a_worker(
    tmp_path: Path, gnomon_home: Path, store, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "etl").mkdir(parents=True)
    (project / "etl" / "__init__.py").write_text("")
    (project / "etl" / "nightly.py").write_text(FLOW_MODULE)
    run_id = _schedule(store, "etl.nightly:nightly_report", {"values": [4]})
    monkeypatch.chdir(project)

    # A worker started as a console script has its script's directory on sys.path, not
    # the working directory ("python -c" adds it; this removes it again).
    result = run_python(
        "import sys; sys.path.remove('')\n"
        "from gnomon.flows import execute_flow_run\n"
        f"print(execute_flow_run({run_id!r}).result())\n",
        gnomon_home,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"


def test_executing_an_unknown_flow_run_id_raises_object_not_found() -> None:
    with pytest.raises(ObjectNotFound, match="no flow run with id"):
        execute_flow_run(uuid.uuid4().hex)


KILLED_WORKER = textwrap.dedent(
    """
    import threading
    from gnomon import flow, task

    @task
    def step(i: int) -> int:
        return i

    @flow
    def short(n: int) -> int:
        return sum(step.map(range(n)).result())

    @flow
    def hangs() -> None:
        step.submit(0).result()
        print("blocked", flush=True)
        threading.Event().wait()

    for _ in range(5):
        assert short(3) == 3
    hangs()
    """
)


def test_final_states_written_before_a_sigkill_survive_it(gnomon_home: Path, store) -> None:
    worker = start_python(KILLED_WORKER, gnomon_home)
    try:
        if read_line(worker, DEADLINE).strip() != "blocked":
            worker.kill()
            pytest.fail(f"worker did not reach the blocking flow: {worker.communicate()[1]}")
        worker.send_signal(signal.SIGKILL)
        worker.wait(DEADLINE)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()
    assert worker.returncode == -signal.SIGKILL

    finished = [run for run in store.read_runs() if run.flow_name == "short"]
    assert len(finished) == 5
    for run in finished:
        assert (run.state_type, run.end_time is not None) == ("COMPLETED", True)
        states = [row.name for row in store.read_states(flow_run_id=run.id)]
        assert states == ["Pending", "Running", "Completed"]
        task_runs = store.read_task_runs(run.id)
        assert [row.state_type for row in task_runs] == ["COMPLETED"] * 3
    # The killed run never reached a final state, whatever of it was written.
    for run in store.read_runs():
        if run.flow_name == "hangs":
            assert run["state_type"] in {"PENDING", "RUNNING"}


def test_a_stored_run_starts_once_even_when_two_workers_are_given_its_id(
    tmp_path: Path, gnomon_home: Path, store
) -> None:
    (tmp_path / "reports.py").write_text(FLOW_MODULE)
    run_id = _schedule(store, f"{tmp_path / 'reports.py'}:nightly_report", {"values": [2]})
    code = (
        "from gnomon.exceptions import FlowRunNotRunnable\n"
        "from gnomon.flows import execute_flow_run\n"
        "try:\n"
        f"    print(execute_flow_run({run_id!r}).name)\n"
        "except FlowRunNotRunnable as error:\n"
        "    print('refused:', error)\n"
    )
    first = run_python(code, gnomon_home)
    second = run_python(code, gnomon_home)

    assert first.stdout.strip() == "Completed", first.stderr
    assert second.stdout.startswith(f"refused: flow run {run_id} is Completed"), second.stderr
    names = [row.name for row in store.read_states(flow_run_id=run_id)]
    assert names == ["Scheduled", "Running", "Completed"]


def test_an_executed_run_is_stored_before_execute_returns_even_if_the_process_dies_then(
    tmp_path: Path, gnomon_home: Path, store
) -> None:
    (tmp_path / "reports.py").write_text(FLOW_MODULE)
    run_id = _schedule(store, f"{tmp_path / 'reports.py'}:nightly_report", {"values": [1, 2]})

    # os._exit skips the atexit flush: only what execute_flow_run committed survives.
    result = run_python(
        "import os\n"
        "from gnomon.flows import execute_flow_run\n"
        f"state = execute_flow_run({run_id!r})\n"
        "print(os.getpid(), state.name, flush=True)\n"
        "os._exit(0)\n",
        gnomon_home,
    )

    assert result.returncode == 0, result.stderr
    pid, name = result.stdout.split()
    run = store.read_flow_run(run_id)
    assert (name, run.state_name, run.worker_pid) == ("Completed", "Completed", int(pid))
    assert run.start_time <= run.end_time
    task_runs = store.read_task_runs(run_id)
    assert [row.state_name for row in task_runs] == ["Completed"] * 2
    messages = [row.message for row in logs_of(store, flow_run_id=run_id)]
    assert messages[-1] == "Finished in state Completed()"


NESTED_MODULE = textwrap.dedent(
    """
    from gnomon import flow

    @flow
    def child() -> int:
        return 1

    @flow
    def parent() -> int:
        return child() + 1
    """
)


def test_a_daemon_worker_stores_a_subflows_start_and_end_lines_not_its_parents(
    tmp_path: Path, gnomon_home: Path, store
) -> None:
    (tmp_path / "nested.py").write_text(NESTED_MODULE)
    run_id = _schedule(store, f"{tmp_path / 'nested.py'}:parent", {})

    result = run_python(
        "from gnomon.flows import execute_flow_run\n"
        "from gnomon.flows._logging import summarise_run_events\n"
        "summarise_run_events()  # as a daemon's worker does at start\n"
        f"print(execute_flow_run({run_id!r}).name)\n",
        gnomon_home,
    )

    assert result.returncode == 0, result.stderr
    [child] = subflows(store, run_id)
    # The daemon's summary line tells the run it dispatched; nothing tells the subflow's.
    assert [row["message"] for row in logs_of(store, flow_run_id=run_id)] == []
    child_lines = [row.message for row in logs_of(store, flow_run_id=child.id)]
    assert child_lines[0].startswith("Beginning flow run")
    assert "for flow 'child'" in child_lines[0]
    assert child_lines[-1] == "Finished in state Completed()"


def test_a_claimed_run_whose_flow_cannot_be_loaded_is_left_crashed(
    tmp_path: Path, gnomon_home: Path, store
) -> None:
    (tmp_path / "broken.py").write_text("raise ImportError('no such dependency')\n")
    run_id = _schedule(store, f"{tmp_path / 'broken.py'}:nightly_report", {})

    with pytest.raises(ImportError, match="no such dependency"):
        execute_flow_run(run_id)

    run = store.read_flow_run(run_id)
    assert (run.state_name, run.error_type) == ("Crashed", "ImportError")
    assert "no such dependency" in run.state_message
    names = [row.name for row in store.read_states(flow_run_id=run_id)]
    assert names == ["Scheduled", "Running", "Crashed"]


def test_a_flow_file_runs_once_per_process_until_a_reload_loads_it_fresh(tmp_path: Path) -> None:
    from gnomon.flows import load_flow

    source = tmp_path / "counted.py"
    source.write_text(
        textwrap.dedent(
            """
            import builtins
            from gnomon import flow

            builtins.gnomon_test_loads += 1

            @flow
            def counted() -> int:
                return 1
            """
        )
    )
    entrypoint = f"{source}:counted"
    builtins.gnomon_test_loads = 0  # type: ignore[attr-defined]
    try:
        first = load_flow(entrypoint)
        assert load_flow(entrypoint) is first  # a worker's next run: no second import
        assert builtins.gnomon_test_loads == 1  # type: ignore[attr-defined]

        source.write_text(source.read_text().replace("return 1", "return 2"))
        fresh = load_flow(entrypoint, fresh=True)  # what a config reload does
        assert builtins.gnomon_test_loads == 2  # type: ignore[attr-defined]
        assert load_flow(entrypoint) is fresh  # and later loads get the new code
        assert fresh.fn() == 2
    finally:
        del builtins.gnomon_test_loads  # type: ignore[attr-defined]
