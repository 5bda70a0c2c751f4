"""Paused and suspended runs under a real daemon with real worker processes: a paused run
keeps its worker and goes on in it when resumed over the HTTP API; a suspended run frees
its worker, stays suspended across a daemon killed and restarted, and runs again from the
top when resumed with `gnomon runs resume`, its completed task's result coming from the
cache; a suspended run not resumed in time is failed by the daemon."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gnomon.states import StateName
from gnomon.store import Store
from test_cli_daemon import gnomon
from test_daemon import runs, start_daemon, wait_for, write_config
from test_daemon_control import _api_url

pytestmark = pytest.mark.backends

FLOWS = """
import os
from gnomon import flow, task
from gnomon.flow_runs import pause_flow_run, suspend_flow_run
from gnomon.input import RunInput


class Approval(RunInput):
    approved: bool
    note: str = ""


@task
def step(marker: str) -> int:
    with open(marker, "a") as out:
        out.write("x")
    return os.path.getsize(marker)


@flow
def waits(marker: str) -> None:
    step(marker)
    answer = pause_flow_run(wait_for_input=Approval, poll_interval=0.1, timeout=120)
    with open(marker + ".out", "w") as out:
        out.write(f"{answer.approved} {answer.note} {os.getpid()}")


@flow(persist_result=True)
def suspends(marker: str, timeout: int = 120) -> None:
    done = step(marker)
    answer = suspend_flow_run(wait_for_input=Approval, timeout=timeout)
    with open(marker + ".out", "w") as out:
        out.write(f"{done} {answer.approved}")


@flow
def tick() -> None:
    pass
"""

YEARLY = 'cron = "0 0 1 1 *"'


def _config(tmp_path: Path, marker: Path, daemon: str = "workers = 1") -> Path:
    config = write_config(
        tmp_path,
        f"""
        [[deployments]]
        name = "approve"
        flow = "pause_flows.py:waits"
        {YEARLY}
        parameters = {{ marker = "{marker}" }}

        [[deployments]]
        name = "hold"
        flow = "pause_flows.py:suspends"
        {YEARLY}
        parameters = {{ marker = "{marker}" }}

        [[deployments]]
        name = "ticker"
        flow = "pause_flows.py:tick"
        {YEARLY}
        """,
        daemon=daemon,
    )
    (tmp_path / "pause_flows.py").write_text(FLOWS)
    return config


def _started(config: Path, home: Path, store: Store, daemons: list) -> Any:
    """A daemon on ``config``, once it has synced its deployments and warmed its worker."""
    daemon = start_daemon(config, home)
    daemons.append(daemon)
    wait_for(lambda: gnomon(home, "daemon", "status").returncode == 0, what="the daemon")
    wait_for(lambda: "ticker" in store.read_deployment_names(), what="its deployments")
    return daemon


def _requested(home: Path, name: str, *params: str) -> str:
    result = gnomon(home, "run", name, *params)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[1]  # "run <id> of <name> requested"


def _in_state(store: Store, run_id: str, name: str) -> bool:
    row = store.read_flow_run(run_id)
    return row is not None and row.state_name == name


def test_a_paused_run_keeps_its_worker_and_goes_on_in_it_when_resumed_over_http(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    marker = tmp_path / "approve.marker"
    config = _config(tmp_path, marker, daemon='workers = 1\napi = "127.0.0.1:0"')
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    url = _api_url(daemon)
    token = (gnomon_home / "api-token").read_text().strip()
    run_id = _requested(gnomon_home, "approve")
    wait_for(lambda: _in_state(store, run_id, StateName.PAUSED), what="the run to pause")
    paused = store.read_flow_run(run_id)
    assert paused is not None

    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        detail = client.get(f"/api/v1/runs/{run_id}").json()
        refused = client.post(f"/api/v1/runs/{run_id}/resume", json={"input": {"note": "x"}})
        resumed = client.post(
            f"/api/v1/runs/{run_id}/resume", json={"input": {"approved": True, "note": "ok"}}
        )

    # What the run waits for, and until when.
    assert detail["pause"]["suspended"] is False
    assert detail["pause"]["timeout_at"]
    assert detail["pause"]["input_schema"]["required"] == ["approved"]
    assert refused.status_code == 422, refused.text
    assert "'approved' is a required property" in refused.text
    assert resumed.status_code == 200, resumed.text
    wait_for(lambda: _in_state(store, run_id, StateName.COMPLETED), what="the run to complete")
    # It went on in the process that paused: the worker it had all along.
    assert (marker.parent / (marker.name + ".out")).read_text() == f"True ok {paused.worker_pid}"
    names = [state.name for state in store.read_states(flow_run_id=run_id)]
    assert names[-4:] == ["Running", "Paused", "Running", "Completed"]
    [audit] = store.read_audit(action="run-resume")
    assert (audit.actor, audit.origin, audit.target) == ("admin", "api", run_id)


def test_a_suspended_run_frees_its_worker_survives_a_restart_and_runs_again_from_the_top(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    marker = tmp_path / "hold.marker"
    config = _config(tmp_path, marker)
    first = _started(config, gnomon_home, store, daemons)
    run_id = _requested(gnomon_home, "hold")
    wait_for(lambda: _in_state(store, run_id, StateName.SUSPENDED), what="the run to suspend")
    # The only worker is free: another run completes while this one is suspended.
    tick = _requested(gnomon_home, "ticker")
    wait_for(lambda: _in_state(store, tick, StateName.COMPLETED), what="a tick on the worker")
    listed = gnomon(gnomon_home, "runs", "list", "--state", "Suspended", "--json")
    assert [row["id"] for row in json.loads(listed.stdout)] == [run_id]

    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    _started(config, gnomon_home, store, daemons)
    tick = _requested(gnomon_home, "ticker")  # once it ran, the new daemon has recovered
    wait_for(lambda: _in_state(store, tick, StateName.COMPLETED), what="a tick after restart")
    assert _in_state(store, run_id, StateName.SUSPENDED)  # not crashed: it holds no process

    shown = gnomon(gnomon_home, "runs", "show", run_id).stdout
    assert "waits for" in shown
    assert "input (approved, note)" in shown
    assert "(suspended)" in shown
    bad = gnomon(gnomon_home, "runs", "resume", run_id[:8], "--input", "approved=maybe")
    assert bad.returncode == 2
    assert "field 'approved'" in bad.stderr
    assert "'maybe' is not of type 'boolean'" in bad.stderr
    good = gnomon(gnomon_home, "runs", "resume", run_id[:8], "--input", "approved=true")
    assert good.returncode == 0, good.stderr
    assert "Resuming" in good.stdout

    wait_for(lambda: _in_state(store, run_id, StateName.COMPLETED), what="the run to complete")
    # From the top, with its completed task's result from the cache: it ran once.
    assert marker.read_text() == "x"
    assert (marker.parent / (marker.name + ".out")).read_text() == "1 True"
    row = store.read_flow_run(run_id)
    assert row is not None
    assert row.run_count == 2
    names = [state.name for state in store.read_states(flow_run_id=run_id)]
    assert "Suspended" in names
    assert names[names.index("Suspended") + 1] == "Resuming"
    assert [task.state_name for task in store.read_task_runs(run_id)] == ["Completed", "Cached"]


def test_a_suspended_run_not_resumed_in_time_is_failed_by_the_daemon(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    marker = tmp_path / "late.marker"
    config = _config(tmp_path, marker)
    _started(config, gnomon_home, store, daemons)
    run_id = _requested(gnomon_home, "hold", "--param", "timeout=1")
    wait_for(lambda: _in_state(store, run_id, StateName.FAILED), what="the pause to time out")

    row = store.read_flow_run(run_id)
    assert row is not None
    assert row.state_message == "The flow was suspended and never resumed."
    late = gnomon(gnomon_home, "runs", "resume", run_id, "--input", "approved=true")
    assert late.returncode == 1
    assert "isn't paused" in late.stderr
    assert not (marker.parent / (marker.name + ".out")).exists()
    assert [r.state_name for r in runs(store, "hold")] == ["Failed"]


def test_cancelling_a_paused_run_stops_its_worker_and_a_suspended_one_at_once(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    marker = tmp_path / "cancel.marker"
    config = _config(tmp_path, marker, daemon="workers = 2")
    _started(config, gnomon_home, store, daemons)
    paused = _requested(gnomon_home, "approve")
    suspended = _requested(gnomon_home, "hold")
    wait_for(lambda: _in_state(store, paused, StateName.PAUSED), what="the run to pause")
    wait_for(lambda: _in_state(store, suspended, StateName.SUSPENDED), what="the suspension")

    held = gnomon(gnomon_home, "runs", "cancel", paused, "--reason", "not needed")
    gone = gnomon(gnomon_home, "runs", "cancel", suspended)

    assert held.returncode == 0, held.stderr
    assert "stops its worker" in held.stdout
    assert gone.returncode == 0, gone.stderr
    assert "(it was suspended)" in gone.stdout  # no process to stop: cancelled at once
    assert _in_state(store, suspended, StateName.CANCELLED)
    wait_for(lambda: _in_state(store, paused, StateName.CANCELLED), what="the paused run ended")
    late = gnomon(gnomon_home, "runs", "resume", paused, "--input", "approved=true")
    assert late.returncode == 1
    assert "isn't paused" in late.stderr
