"""Priorities, run pools and a run's environment in a real daemon.

When every worker is busy, waiting runs start by priority; a ``[[pools]]`` pool lets at most
its slots of its deployments' runs run at once, the others wait (AwaitingPool, recorded
with how long) and a reload can change its slots; a deployment's ``env``, ``working_dir``
and ``user`` reach the flow (``os.environ``, ``os.getcwd()``, ``os.getuid()``) for its run
only, masked wherever gnomon shows them.

Everything is real: the daemon in a subprocess with its worker processes, the ``gnomon``
script, the store (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gnomon.states import StateName
from gnomon.store import Store
from test_cli_daemon import gnomon, table
from test_daemon import start_daemon, wait_for, write_config

pytestmark = pytest.mark.backends

FLOWS = """
import json, os, time
from gnomon import flow


@flow
def hold(marker: str) -> None:
    # Runs until the marker file exists (the test's say-so), at most a minute.
    deadline = time.monotonic() + 60
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.02)


@flow
def quick() -> None:
    pass


@flow
def report(out: str) -> None:
    names = ("API_URL", "TOKEN", "PASSWORD", "HOME")
    seen = {
        "env": {name: os.environ.get(name) for name in names},
        "cwd": os.getcwd(),
        "uid": os.getuid(),
        "gid": os.getgid(),
    }
    with open(out, "w") as stream:
        json.dump(seen, stream)
    print("the token is", os.environ.get("TOKEN"), "and the password", os.environ.get("PASSWORD"))
"""

NEVER = 'cron = "0 0 1 1 *"'  # a schedule that does not fire during a test: runs are asked for


def config_with(tmp_path: Path, deployments: str, daemon: str = "workers = 1") -> Path:
    config = write_config(tmp_path, deployments, daemon=daemon)
    (tmp_path / "pool_flows.py").write_text(FLOWS)
    return config


def started(store: Store, daemon, *names: str):
    """``daemon``, once it has synced the deployments ``names``."""
    wait_for(lambda: all(store.read_deployment(name) for name in names), what="the sync")
    return daemon


def ask(home: Path, config: Path, name: str) -> str:
    """Ask for a run of ``name`` now; its id."""
    done = gnomon(home, "run", name, GNOMON_CONFIG=str(config))
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[1]


def row_of(store: Store, run_id: str) -> Any:
    return store.read_flow_run(run_id)


def in_state(store: Store, run_id: str, *names: str) -> bool:
    row = row_of(store, run_id)
    return row is not None and row.state_name in names


def taken_by_daemon(store: Store, run_id: str) -> bool:
    """The daemon took the run (Pending or later), so it is queued or started there."""
    row = row_of(store, run_id)
    return row is not None and row.state_name != StateName.SCHEDULED


def pools(home: Path, config: Path) -> list[dict[str, Any]]:
    listed = gnomon(home, "pools", "ls", "--json", GNOMON_CONFIG=str(config))
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def timeline(home: Path, config: Path, run_id: str) -> list[dict[str, Any]]:
    shown = gnomon(home, "runs", "show", run_id, "--json", GNOMON_CONFIG=str(config))
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["timeline"]


def deployment(name: str, flow: str, parameter: str, extra: str = "") -> str:
    """A deployment of ``flow`` (in FLOWS) run on request, with one parameter's line."""
    return f"""
[[deployments]]
name = "{name}"
flow = "pool_flows.py:{flow}"
{NEVER}
parameters = {{ {parameter} }}
{extra}
"""


def hold_deployment(name: str, marker: Path, extra: str = "") -> str:
    """One whose runs last until ``marker`` exists, several at once if asked."""
    allow = 'overlap = "allow"\nmax_concurrent = 5\n'
    return deployment(name, "hold", f'marker = "{marker}"', allow + extra)


# Priority.


def test_with_the_one_worker_busy_waiting_runs_start_highest_priority_first(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    marker = tmp_path / "go"
    quick = "\n".join(
        f'[[deployments]]\nname = "{name}"\nflow = "pool_flows.py:quick"\n{NEVER}\n{priority}\n'
        for name, priority in (
            ("low", "priority = -1"),
            ("usual", ""),
            ("urgent", "priority = 5"),
            ("filler", ""),
        )
    )
    config = config_with(tmp_path, hold_deployment("blocker", marker) + quick)
    daemons.append(started(store, start_daemon(config, gnomon_home), "blocker"))
    blocker = ask(gnomon_home, config, "blocker")
    wait_for(lambda: in_state(store, blocker, "Running"), what="the blocker running")
    # The pool holds one run ahead of its busy worker: the filler takes that place, so the
    # three after it wait in the daemon's queue, where priority orders them.
    filler = ask(gnomon_home, config, "filler")
    wait_for(lambda: taken_by_daemon(store, filler), what="the filler handed to the pool")
    waiting = {name: ask(gnomon_home, config, name) for name in ("low", "usual", "urgent")}
    for run_id in waiting.values():
        wait_for(lambda run_id=run_id: taken_by_daemon(store, run_id), what="the run queued")

    marker.touch()

    for run_id in waiting.values():
        wait_for(lambda run_id=run_id: in_state(store, run_id, "Completed"), what="completed")
    order = sorted(waiting, key=lambda name: row_of(store, waiting[name]).start_time)
    assert order == ["urgent", "usual", "low"]
    assert row_of(store, filler).start_time < row_of(store, waiting["urgent"]).start_time


# Pools.

POOL = """
[[pools]]
name = "warehouse"
slots = {slots}
"""


@dataclass
class PoolOfOne:
    """A daemon with load-a and load-b in a pool of one slot, a run of load-a running
    (until ``marker`` exists)."""

    config: Path
    daemon: Any
    marker: Path
    first: str


def pool_of_one(tmp_path: Path, home: Path, store: Store, daemons: list) -> PoolOfOne:
    marker = tmp_path / "go"
    members = "".join(
        hold_deployment(name, marker, 'pool = "warehouse"') for name in ("load-a", "load-b")
    )
    config = config_with(tmp_path, POOL.format(slots=1) + members, daemon="workers = 3")
    daemon = started(store, start_daemon(config, home), "load-a", "load-b")
    daemons.append(daemon)
    first = ask(home, config, "load-a")
    wait_for(lambda: in_state(store, first, "Running"), what="the first run running")
    return PoolOfOne(config, daemon, marker, first)


def test_a_pool_of_one_slot_never_runs_two_of_its_deployments_at_once_and_records_the_wait(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    pool = pool_of_one(tmp_path, gnomon_home, store, daemons)
    config, marker, first = pool.config, pool.marker, pool.first
    second = ask(gnomon_home, config, "load-b")

    wait_for(lambda: in_state(store, second, "AwaitingPool"), what="the second run waiting")
    assert row_of(store, second).state_message == "waiting for pool warehouse (1/1 slots taken)"
    assert pools(gnomon_home, config) == [
        {
            "name": "warehouse",
            "slots": 1,
            "taken": 1,
            "waiting": 1,
            "deployments": ["load-a", "load-b"],
        }
    ]
    listed = gnomon(gnomon_home, "pools", "ls", GNOMON_CONFIG=str(config))
    assert table(listed.stdout) == [
        ["NAME", "SLOTS", "TAKEN", "WAITING", "DEPLOYMENTS"],
        ["warehouse", "1", "1", "1", "load-a, load-b"],
    ]
    marker.touch()
    for run_id in (first, second):
        wait_for(lambda run_id=run_id: in_state(store, run_id, "Completed"), what="completed")

    a, b = row_of(store, first), row_of(store, second)
    assert a.end_time <= b.start_time  # never both at once
    messages = [state["message"] or "" for state in timeline(gnomon_home, config, second)]
    assert "waiting for pool warehouse (1/1 slots taken)" in messages
    [waited] = [message for message in messages if message.startswith("waited ")]
    assert waited.endswith(" s for pool warehouse")
    assert float(waited.split()[1]) >= 0
    assert pools(gnomon_home, config)[0] | {"deployments": []} == {
        "name": "warehouse",
        "slots": 1,
        "taken": 0,
        "waiting": 0,
        "deployments": [],
    }


def test_a_reload_that_gives_a_pool_more_slots_starts_a_run_waiting_for_one(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    pool = pool_of_one(tmp_path, gnomon_home, store, daemons)
    config, marker, first = pool.config, pool.marker, pool.first
    second = ask(gnomon_home, config, "load-b")
    wait_for(lambda: in_state(store, second, "AwaitingPool"), what="the second run waiting")

    config.write_text(config.read_text().replace("slots = 1", "slots = 2"))
    pool.daemon.send_signal(signal.SIGHUP)

    wait_for(lambda: in_state(store, second, "Running"), what="the second run running")
    assert in_state(store, first, "Running")  # both at once: the pool has two slots now
    assert [(pool["slots"], pool["taken"]) for pool in pools(gnomon_home, config)] == [(2, 2)]
    marker.touch()
    wait_for(lambda: in_state(store, second, "Completed"), what="the second run completed")


def test_a_deployment_naming_an_unknown_pool_is_a_config_error_naming_file_field_and_value(
    tmp_path: Path, gnomon_home: Path
) -> None:
    deployments = POOL.format(slots=2) + hold_deployment(
        "load-a", tmp_path / "go", 'pool = "warehose"'
    )
    config = config_with(tmp_path, deployments)

    checked = gnomon(gnomon_home, "deployments", "validate", GNOMON_CONFIG=str(config))

    assert checked.returncode != 0
    assert (
        'gnomon.toml: deployment "load-a": pool "warehose": no [[pools]] entry has this name;'
        ' did you mean "warehouse"?'
    ) in checked.stderr + checked.stdout


# A run's environment, working directory and user.


def reporting(name: str, out: Path, extra: str = "") -> str:
    """A deployment whose flow writes what it saw (variables, directory, ids) to ``out``."""
    return deployment(name, "report", f'out = "{out}"', extra)


def env_deployments(tmp_path: Path) -> str:
    (tmp_path / "secret-pw").write_text("file-pass-1234\n")
    (tmp_path / "work").mkdir(exist_ok=True)
    return (
        reporting("plain", tmp_path / "plain.json")
        + reporting("envy", tmp_path / "envy.json", 'working_dir = "work"')
        + """
[deployments.env]
API_URL = "https://api.example.com"
TOKEN = { from_env = "GNOMON_TEST_TOKEN" }
PASSWORD = { file = "secret-pw" }
"""
    )


def test_env_and_working_dir_reach_the_flow_for_its_run_only_and_are_masked_where_shown(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    config = config_with(tmp_path, env_deployments(tmp_path))
    daemon = start_daemon(config, gnomon_home, GNOMON_TEST_TOKEN="env-token-5678")
    daemons.append(started(store, daemon, "envy", "plain"))
    envy = ask(gnomon_home, config, "envy")
    wait_for(lambda: in_state(store, envy, "Completed"), what="envy completed")
    plain = ask(gnomon_home, config, "plain")  # in the same worker: there is one
    wait_for(lambda: in_state(store, plain, "Completed"), what="plain completed")

    seen = json.loads((tmp_path / "envy.json").read_text())
    assert seen["env"] | {"HOME": None} == {
        "API_URL": "https://api.example.com",
        "TOKEN": "env-token-5678",
        "PASSWORD": "file-pass-1234",
        "HOME": None,
    }
    assert seen["cwd"] == str(tmp_path / "work")
    after = json.loads((tmp_path / "plain.json").read_text())
    assert (after["env"]["API_URL"], after["env"]["TOKEN"], after["env"]["PASSWORD"]) == (
        None,
        None,
        None,
    )
    assert after["cwd"] == str(tmp_path)  # the worker's own again (the daemon's)
    assert row_of(store, envy).worker_pid == row_of(store, plain).worker_pid

    logged = gnomon(gnomon_home, "logs", "--run", envy, GNOMON_CONFIG=str(config))
    assert "the token is ******** and the password ********" in logged.stdout
    shown = gnomon(gnomon_home, "deployments", "show", "envy", "--json", GNOMON_CONFIG=str(config))
    assert shown.returncode == 0, shown.stderr
    for secret in ("api.example.com", "env-token-5678", "file-pass-1234"):
        assert secret not in shown.stdout
    policies = json.loads(shown.stdout)["policies"]
    assert policies["env"] == {
        "API_URL": "********",
        "PASSWORD": {"file": str(tmp_path / "secret-pw")},
        "TOKEN": {"from_env": "GNOMON_TEST_TOKEN"},
    }
    assert policies["working_dir"] == str(tmp_path / "work")


def test_a_run_whose_env_variable_is_missing_fails_naming_the_deployment_and_variable(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    config = config_with(tmp_path, env_deployments(tmp_path))
    # Without GNOMON_TEST_TOKEN in its environment.
    daemons.append(started(store, start_daemon(config, gnomon_home), "envy", "plain"))
    envy = ask(gnomon_home, config, "envy")
    wait_for(lambda: in_state(store, envy, "Failed"), what="envy failed")
    plain = ask(gnomon_home, config, "plain")
    wait_for(lambda: in_state(store, plain, "Completed"), what="plain completed after it")

    message = row_of(store, envy).state_message
    assert message == (
        "the run could not start: deployment 'envy': env TOKEN: environment variable"
        " GNOMON_TEST_TOKEN is not set"
    )
    assert not (tmp_path / "envy.json").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="running flows as another user needs root")
def test_a_run_as_another_user_runs_with_its_uid_and_its_worker_is_not_reused(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list, request: Any
) -> None:
    request_cleanup = request.addfinalizer
    nobody = pwd.getpwnam("nobody")
    # The user writes its report here: pytest's own directories are closed to others.
    out = Path(tempfile.mkdtemp(prefix="gnomon-user-test-"))
    request_cleanup(lambda: shutil.rmtree(out, ignore_errors=True))
    out.chmod(stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO)
    as_nobody = 'user = "nobody"\nworking_dir = "/"'
    deployments = (
        reporting("as-nobody", out / "nobody.json", as_nobody)
        + reporting("as-root", out / "root.json")
        # Fails: nobody cannot write in pytest's directory.
        + reporting("nobody-fails", tmp_path / "denied.json", as_nobody)
    )
    config = config_with(tmp_path, deployments)
    names = ("as-nobody", "as-root", "nobody-fails")
    daemons.append(started(store, start_daemon(config, gnomon_home), *names))
    first = ask(gnomon_home, config, "as-nobody")
    wait_for(lambda: in_state(store, first, "Completed", "Failed", "Crashed"), what="its end")
    assert in_state(store, first, "Completed"), row_of(store, first).state_message
    second = ask(gnomon_home, config, "as-root")
    wait_for(lambda: in_state(store, second, "Completed"), what="the root run completed")

    seen = json.loads((out / "nobody.json").read_text())
    assert (seen["uid"], seen["gid"], seen["env"]["HOME"]) == (
        nobody.pw_uid,
        nobody.pw_gid,
        nobody.pw_dir,
    )
    assert json.loads((out / "root.json").read_text())["uid"] == 0
    # A worker that gave root up never runs another run: the next one had a fresh worker.
    assert row_of(store, first).worker_pid != row_of(store, second).worker_pid

    failed = ask(gnomon_home, config, "nobody-fails")
    wait_for(lambda: in_state(store, failed, "Failed"), what="the failing run as nobody")
    assert "Permission denied" in row_of(store, failed).state_message
    third = ask(gnomon_home, config, "as-root")
    wait_for(lambda: in_state(store, third, "Completed"), what="root's run after it")
    assert row_of(store, third).worker_pid != row_of(store, failed).worker_pid


def test_a_daemon_killed_holding_a_pools_slot_leaves_it_free_for_the_next_daemon(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    pool = pool_of_one(tmp_path, gnomon_home, store, daemons)
    config, marker, first = pool.config, pool.marker, pool.first
    assert pools(gnomon_home, config)[0]["taken"] == 1

    pool.daemon.send_signal(signal.SIGKILL)
    pool.daemon.wait(timeout=30)
    daemons.append(start_daemon(config, gnomon_home))

    wait_for(lambda: in_state(store, first, "Crashed"), what="the run recovered Crashed")
    wait_for(lambda: pools(gnomon_home, config)[0]["taken"] == 0, what="the slot freed")
    second = ask(gnomon_home, config, "load-b")
    wait_for(lambda: in_state(store, second, "Running"), what="a run taking the slot")
    marker.touch()
    wait_for(lambda: in_state(store, second, "Completed"), what="it completed")
