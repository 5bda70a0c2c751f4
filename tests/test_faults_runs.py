"""One daemon per database, and one final state per run, whatever happens: two daemons with
different homes on one database, a worker's final commit racing the pool's timeout record,
and a run recovered as Crashed whose worker is still alive and finishes it.

Real processes throughout: daemons, workers executing stored runs, the ``gnomon`` script.
"""

from __future__ import annotations

import logging
import signal
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import logs_of, schedule_run, start_python
from faults import (
    assert_nothing_left_running,
    assert_one_final_state_per_run,
    final_states,
    integrity,
    location,
)
from gnomon.daemon import find_holder
from test_cli_daemon import gnomon
from test_daemon import INTERVAL_TICK, start_daemon, wait_for, write_config

pytestmark = pytest.mark.backends

GATED = textwrap.dedent(
    """
    import os, pathlib, time
    from gnomon import flow

    @flow
    def gated() -> str:
        pathlib.Path(os.environ["STARTED"]).write_text("started")
        gate = pathlib.Path(os.environ["GATE"])
        while not gate.exists():
            time.sleep(0.02)
        return "finished"
    """
)
EXECUTE = "from gnomon.flows import execute_flow_run; execute_flow_run({run_id!r})"


# One daemon per database.


@pytest.mark.slow
@pytest.mark.sqlite_only  # test_daemon.py has the PostgreSQL case
def test_two_daemons_with_different_homes_on_one_database_the_second_refuses_naming_the_first(
    tmp_path: Path, daemons
) -> None:
    database = tmp_path / "shared" / "gnomon.db"
    url = f"sqlite:///{database}"
    config = write_config(tmp_path, INTERVAL_TICK)
    first = start_daemon(config, tmp_path / "home-a", GNOMON_DATABASE_URL=url)
    daemons.append(first)
    third_home = tmp_path / "home-c"  # a shell with yet another GNOMON_HOME
    wait_for(lambda: (find_holder(third_home, url) or {}).get("pid") == first.pid, what="lock")

    second = start_daemon(config, tmp_path / "home-b", GNOMON_DATABASE_URL=url)
    daemons.append(second)

    assert second.wait(timeout=60) == 1
    _, refusal = second.communicate()
    assert f"another gnomon daemon is running on this store: pid {first.pid} " in refusal
    assert first.poll() is None
    status = gnomon(third_home, "daemon", "status", GNOMON_DATABASE_URL=url)
    assert status.stdout.startswith(f"gnomon daemon is running (pid {first.pid})")
    requested = gnomon(third_home, "run", "ticker", GNOMON_DATABASE_URL=url)
    assert requested.returncode == 0, requested.stderr
    assert "no daemon is running" not in requested.stderr  # it found the daemon to nudge
    reloaded = gnomon(third_home, "daemon", "reload", GNOMON_DATABASE_URL=url)
    # The first daemon answered the reload the third home asked for.
    assert (reloaded.returncode, reloaded.stdout) == (0, "applied: 0 added, 0 removed, 0 changed\n")
    lines = first.output_lines(timeout=30)
    paused = gnomon(third_home, "pause", "ticker", GNOMON_DATABASE_URL=url)
    assert paused.returncode == 0, paused.stderr
    assert any("ticker paused" in line for line in lines), "the first daemon did not pause"

    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    assert integrity(database) == "ok"
    assert_one_final_state_per_run(database)
    assert_nothing_left_running(database)


# One final state per run.


@pytest.fixture
def gate(tmp_path: Path) -> dict[str, str]:
    """The environment of a process running the gated flow: it says it started, then
    finishes once the test opens the gate."""
    (tmp_path / "gated_flows.py").write_text(GATED)
    return {"STARTED": str(tmp_path / "started"), "GATE": str(tmp_path / "gate")}


def test_a_workers_final_commit_after_the_pools_timeout_record_is_not_applied(
    tmp_path: Path, gnomon_home: Path, store, gate: dict[str, str]
) -> None:
    run_id = schedule_run(store, f"{tmp_path / 'gated_flows.py'}:gated")
    worker = start_python(EXECUTE.format(run_id=run_id), gnomon_home, **gate)
    wait_for(Path(gate["STARTED"]).exists, what="the run to start")

    # What the pool records once a run's deadline has passed (``record_end``).
    assert store.set_run_state(
        run_id,
        "FAILED",
        "TimedOut",
        "Flow run exceeded timeout of 1 second(s)",
        only_if_active=True,
        end_time=datetime.now(UTC),
    )
    Path(gate["GATE"]).touch()
    _, err = worker.communicate(timeout=60)

    assert worker.returncode == 0, err
    assert store.read_flow_run(run_id).state_name == "TimedOut"
    assert final_states(location(store), run_id) == ["TimedOut"]
    assert f"flow run {run_id} already has a final state" in err  # the worker said so


def test_the_pools_record_after_a_workers_final_commit_is_not_applied(
    tmp_path: Path, gnomon_home: Path, store, gate: dict[str, str]
) -> None:
    run_id = schedule_run(store, f"{tmp_path / 'gated_flows.py'}:gated")
    Path(gate["GATE"]).touch()
    worker = start_python(EXECUTE.format(run_id=run_id), gnomon_home, **gate)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err

    for only_if_active in (True, False):  # a final state never replaces another
        assert not store.set_run_state(
            run_id, "CRASHED", "Crashed", "worker died", only_if_active=only_if_active
        )
    assert store.read_flow_run(run_id).state_name == "Completed"
    assert final_states(location(store), run_id) == ["Completed"]


def test_a_final_state_queued_for_a_finished_run_is_dropped_with_its_history_row(
    store,
) -> None:
    """The batched writer's path (a worker's final commit, the pool's retried record)."""
    run_id = schedule_run(store, "flows.py:tick")
    assert store.set_run_state(run_id, "COMPLETED", "Completed", only_if_active=True)
    now = datetime.now(UTC)
    store.update_flow_run(run_id, state_type="CRASHED", state_name="Crashed", end_time=now)
    store.add_state(
        {"flow_run_id": run_id, "task_run_id": None, "timestamp": now, "type": "CRASHED"}
        | {"name": "Crashed", "message": None, "attempt": 1}
    )
    store.add_log(
        {"flow_run_id": run_id, "task_run_id": None, "timestamp": now, "level": 20}
        | {"logger": "test", "message": "a line of the same batch", "extra": {}}
    )
    store.flush()

    assert store.read_flow_run(run_id).state_name == "Completed"
    assert [state.name for state in store.read_states(flow_run_id=run_id)] == [
        "Scheduled",
        "Completed",
    ]
    assert [row.message for row in logs_of(store, flow_run_id=run_id)] == [
        "a line of the same batch"
    ]


def test_a_deployment_retry_reopens_a_finished_run_on_purpose(store) -> None:
    run_id = schedule_run(store, "flows.py:tick")
    assert store.set_run_state(run_id, "CRASHED", "Crashed", only_if_active=True)
    assert store.set_run_state(run_id, "SCHEDULED", "AwaitingRetry", "deployment retry 1 of 1")
    assert store.set_run_state(run_id, "COMPLETED", "Completed")
    names = [state.name for state in store.read_states(flow_run_id=run_id)]
    assert names == ["Scheduled", "Crashed", "AwaitingRetry", "Completed"]


HELD = """
[[deployments]]
name = "held"
flow = "gated_flows.py:gated"
cron = "0 0 1 1 *"
"""


@pytest.mark.slow
def test_a_run_recovered_as_crashed_keeps_that_state_when_its_live_worker_finishes(
    tmp_path: Path, gnomon_home: Path, store, gate: dict[str, str], daemons
) -> None:
    """A worker that outlived its daemon (stopped, then continued) finishes the run the
    next daemon has recovered as Crashed: the run keeps one final state, Crashed."""
    config = write_config(tmp_path, HELD)
    run_id = schedule_run(
        store,
        "gated_flows.py:gated",
        deployment_name="held",
        scheduled_for=datetime.now(UTC),
        trigger="manual",
        daemon_id="a-daemon-that-died",
    )
    worker = start_python(EXECUTE.format(run_id=run_id), gnomon_home, **gate)
    wait_for(Path(gate["STARTED"]).exists, what="the run to start")

    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(lambda: store.read_flow_run(run_id).state_name == "Crashed", what="the recovery")
    Path(gate["GATE"]).touch()
    _, err = worker.communicate(timeout=60)

    assert f"flow run {run_id} already has a final state" in err
    assert store.read_flow_run(run_id).state_name == "Crashed"
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    database = location(store)
    assert final_states(database, run_id) == ["Crashed"]
    assert integrity(database) == "ok"
    assert_one_final_state_per_run(database)
    assert_nothing_left_running(database)


@pytest.mark.parametrize("flushed_between", [True, False], ids=["two batches", "one batch"])
def test_a_refused_final_state_and_its_history_row_are_queued_together_and_dropped_together(
    store, flushed_between: bool
) -> None:
    """The pool's fallback (the store failed when it recorded a run's end) and the engine
    queue a run's state and its history row in one call: a flush between them could write
    the history row of a state the run never took. In one batch, the second final state
    is refused before it can replace the first (the soak's run Completed, then Crashed by
    a signal in its worker before the batch was flushed)."""
    from gnomon.flows import state_columns, state_row
    from gnomon.states import Completed, Crashed

    run_id = schedule_run(store, "flows.py:tick")
    done = Completed()
    store.settle_flow_run(run_id, state_columns(done), state_row(done, 1, run_id, None))
    if flushed_between:
        store.flush()
    crashed = Crashed("the worker could not record the run's end")
    store.settle_flow_run(run_id, state_columns(crashed), state_row(crashed, 1, run_id, None))
    store.flush()

    assert store.read_flow_run(run_id).state_name == "Completed"
    names = [state.name for state in store.read_states(flow_run_id=run_id)]
    assert names[-1] == "Completed"
    assert "Crashed" not in names


class _InterruptAtEnd(logging.Handler):
    """Raises KeyboardInterrupt at the engine's "Finished in state" line: a stop signal
    arriving just after a run's final state was queued, before it was committed."""

    def emit(self, record: logging.LogRecord) -> None:
        if "Finished in state" in record.getMessage():
            raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["before its commit", "in its hook"])
def test_a_signal_after_a_run_completed_leaves_it_completed(store, where: str) -> None:
    """A stop signal that reaches the engine after a run's final state was recorded ends
    the process, not the run: it stays Completed with one final state. (The soak found a
    run Completed, then Crashed: a signal before the batch holding Completed was flushed
    queued Crashed into the same batch.)"""
    from gnomon import flow

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    @flow(on_completion=[interrupted] if where == "in its hook" else [])
    def finishing() -> int:
        return 1

    engine = logging.getLogger("gnomon.engine")
    handler = _InterruptAtEnd()
    if where == "before its commit":
        engine.addHandler(handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            finishing()
    finally:
        engine.removeHandler(handler)
    store.flush()

    [row] = store.read_runs()
    assert row.state_name == "Completed"
    names = [state.name for state in store.read_states(flow_run_id=row.id)]
    assert names[-1] == "Completed"
    assert "Crashed" not in names
