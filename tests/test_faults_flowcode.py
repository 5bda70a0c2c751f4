"""Fault tests for flow code: a flow module that loops forever at import, exits the process
or does not parse never stops the daemon or its scheduling, and edited code takes effect only
through a reload whose check passes; run requests are checked against the flow's stored
parameter schema. Real daemons, real signals, the installed ``gnomon`` script.
"""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest

from conftest import logs_of
from test_api import Api, api  # noqa: F401  (the fixture: a live API over a real store)
from test_cli_daemon import gnomon
from test_daemon import INTERVAL_TICK, completed, runs, start_daemon, wait_for, write_config
from test_pool import _running as alive

GOOD = textwrap.dedent(
    """
    import os
    from gnomon import flow, get_run_logger

    @flow
    def tick(label: str = "x") -> str:
        get_run_logger().info("%s %s from pid %s", "tick", label, os.getpid())
        return label
    """
)

# Top-level code that breaks the module, and the words the check reports it with.
BROKEN = {
    "loops forever": (
        "import os, pathlib\n"
        "pathlib.Path(os.environ['LOOP_PIDS']).open('a').write(f'{os.getpid()}\\n')\n"
        "while True:\n    pass\n",
        "no answer within 3 s",
    ),
    "exits the process": (
        "import os\nos._exit(3)\n",
        "it ended the flow check process (exit code 3)",
    ),
    "does not parse": ("def broken(:\n    pass\n", "SyntaxError"),
}


def flow_config(tmp_path: Path, daemon: str = "") -> Path:
    config = write_config(
        tmp_path, INTERVAL_TICK, daemon=f'workers = 1\nflow_check_timeout = "3s"\n{daemon}'
    )
    (tmp_path / "flows.py").write_text(GOOD)
    return config


def ticks(store, word: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Completed ticker runs whose flow logged ``word``, with the worker pid it logged."""
    found = {}
    for run in runs(store, "ticker"):
        for row in logs_of(store, flow_run_id=run.id):
            parts = row.message.split()
            if parts[:1] == [word] and run.state_name == "Completed":
                found[run.id] = int(parts[-1])
    return found


def worker_pids(daemon_pid: int) -> set[int]:
    """The daemon's live workers: the children of its worker templates."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (FileNotFoundError, ProcessLookupError):
                continue
    templates = {pid for pid, parent in parents.items() if parent == daemon_pid}
    return {pid for pid, parent in parents.items() if parent in templates and alive(pid)}


@pytest.mark.slow
def test_a_daemon_whose_flow_loops_forever_at_import_reports_the_timeout_and_exits_2(
    tmp_path, gnomon_home, daemons
) -> None:
    config = flow_config(tmp_path)
    code, _ = BROKEN["loops forever"]
    (tmp_path / "flows.py").write_text(code + GOOD)
    loop_pids = tmp_path / "loop-pids"
    daemon = start_daemon(config, gnomon_home, LOOP_PIDS=str(loop_pids))
    daemons.append(daemon)

    _, err = daemon.communicate(timeout=60)

    assert daemon.returncode == 2, err
    expected = (
        f'gnomon.toml: deployment "ticker": flow "flows.py:tick": cannot import '
        f"{tmp_path / 'flows.py'}: no answer within 3 s (see flow_check_timeout)"
    )
    assert expected in err
    [looping] = [int(pid) for pid in loop_pids.read_text().split()]
    assert not alive(looping)  # the check process was ended, not left spinning


@pytest.mark.slow
@pytest.mark.parametrize("breakage", sorted(BROKEN))
def test_a_reload_with_broken_flow_code_keeps_scheduling_with_the_last_good_code(
    tmp_path, gnomon_home, store, daemons, breakage: str
) -> None:
    config = flow_config(tmp_path, daemon="max_runs_per_worker = 2")
    daemon = start_daemon(config, gnomon_home, LOOP_PIDS=str(tmp_path / "loop-pids"))
    daemons.append(daemon)
    wait_for(completed(store, "ticker", 1), what="the ticker")

    code, reported = BROKEN[breakage]
    (tmp_path / "flows.py").write_text(code + GOOD.replace('"tick"', '"broken"'))
    daemon.send_signal(signal.SIGHUP)
    fired_at_reload = len(runs(store, "ticker"))
    wait_for(lambda: reported in daemon.output_path.read_text(), 30, "the check's report")
    fired_at_report = len(runs(store, "ticker"))

    # The loop kept firing while the check ran, and goes on with the last good code: also
    # in workers started since (recycled after two runs, or replacing a killed one).
    assert 'config problem on reload: gnomon.toml: deployment \\"ticker\\"' in (
        daemon.output_path.read_text()
    )
    if breakage == "loops forever":
        assert fired_at_report > fired_at_reload
    ran_old_code = set(ticks(store, "tick").values())
    worker = wait_for(lambda: worker_pids(daemon.pid), what="a worker").pop()
    os.kill(worker, signal.SIGKILL)
    wait_for(
        lambda: set(ticks(store, "tick").values()) - ran_old_code - {worker},
        30,
        "a run of the last good code in a worker started after the edit",
    )
    assert not ticks(store, "broken")

    # Fixed code takes effect with the next reload.
    (tmp_path / "flows.py").write_text(GOOD.replace('"tick"', '"tock"'))
    daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: ticks(store, "tock"), 30, "a run of the fixed code")
    daemon.send_signal(signal.SIGTERM)
    out, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0
    assert "flow code reloaded" in out


REPORT = """
from gnomon import flow

@flow
def report(day: str = "today", count: int = 1, api_token: str = "from-config") -> str:
    return day
"""


def test_gnomon_run_refuses_unknown_and_mistyped_parameters_naming_them_and_queues_nothing(
    tmp_path, gnomon_home, store
) -> None:
    config = write_config(
        tmp_path,
        '[[deployments]]\nname = "report"\nflow = "report.py:report"\ncron = "0 3 * * *"\n',
    )
    (tmp_path / "report.py").write_text(REPORT)
    assert gnomon(gnomon_home, "deployments", "apply", "--config", str(config)).returncode == 0

    def run(*params: str):  # type: ignore[no-untyped-def]
        args = [part for param in params for part in ("--param", param)]
        return gnomon(gnomon_home, "run", "report", *args, GNOMON_CONFIG=str(config))

    unknown, mistyped, secret = run("cuont=2"), run("count=many"), run("api_token=987654321")

    assert (unknown.returncode, mistyped.returncode, secret.returncode) == (2, 2, 2)
    assert (
        "deployment \"report\": parameters.cuont 2: flow 'report' has no parameter 'cuont' "
        "(it takes: day, count, api_token)"
    ) in unknown.stderr
    assert 'deployment "report": parameters.count "many": expected integer' in mistyped.stderr
    assert 'parameters.api_token "********": expected string' in secret.stderr
    assert "987654321" not in secret.stderr + secret.stdout
    assert store.read_runs() == []
    accepted = run("count=3", "day=2026-11-23")
    assert accepted.returncode == 0, accepted.stderr
    [row] = store.read_runs("report")
    assert row.parameters == {"count": 3, "day": "2026-11-23"}


def test_the_api_refuses_unknown_and_mistyped_run_parameters_with_422_and_queues_nothing(
    api: Api,  # noqa: F811
) -> None:
    with api.admin as client:
        unknown = client.post(
            "/api/v1/deployments/sync-crm/runs", json={"parameters": {"dya": "monday"}}
        )
        mistyped = client.post("/api/v1/deployments/sync-crm/runs", json={"parameters": {"day": 5}})
        secret = client.post(
            "/api/v1/deployments/sync-crm/runs", json={"parameters": {"api_token": 987654321}}
        )

    assert (unknown.status_code, mistyped.status_code, secret.status_code) == (422, 422, 422)
    assert unknown.json()["field"] == "parameters.dya"
    assert unknown.json()["error"] == (
        'deployment "sync-crm": parameters.dya "monday": flow \'report\' has no parameter '
        "'dya' (it takes: day, api_token)"
    )
    assert mistyped.json()["error"] == 'deployment "sync-crm": parameters.day 5: expected string'
    assert secret.json()["field"] == "parameters.api_token"
    assert "987654321" not in secret.text
    assert api.store.read_runs() == []
    assert api.nudges == []
