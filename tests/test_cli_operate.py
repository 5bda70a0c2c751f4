"""The operator CLI against a running daemon: pause stops fires at once, resume restarts
them, `run --wait` exits with the run's outcome, `runs cancel` stops a running run,
`logs -f` follows runs that start later, and `apply` makes the daemon pick up an edit.

Everything is real: the installed ``gnomon`` script in subprocesses, a daemon subprocess,
its worker processes and a SQLite store.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gnomon.store import Store
from test_cli_daemon import GNOMON, gnomon
from test_daemon import completed, runs, start_daemon, wait_for, write_config

pytestmark = pytest.mark.backends

FLOWS = """
import time
from gnomon import flow, get_run_logger


@flow
def tick(label: str = "x") -> str:
    get_run_logger().info("tick %s", label)
    return label


@flow
def boom() -> None:
    raise ValueError("it broke")


@flow
def slow(seconds: float = 60.0) -> None:
    get_run_logger().info("sleeping")
    time.sleep(seconds)
"""

DEPLOYMENTS = """
[[deployments]]
name = "ticker"
flow = "ops_flows.py:tick"
interval = "1s"

[[deployments]]
name = "yearly"
flow = "ops_flows.py:tick"
cron = "0 0 1 1 *"

[[deployments]]
name = "broken"
flow = "ops_flows.py:boom"
cron = "0 0 1 1 *"

[[deployments]]
name = "sleeper"
flow = "ops_flows.py:slow"
cron = "0 0 1 1 *"
"""


@pytest.fixture
def daemon(tmp_path: Path, gnomon_home: Path, daemons: list, store: Store) -> Path:
    """A running daemon on DEPLOYMENTS that has fired once; returns its config file."""
    (tmp_path / "ops_flows.py").write_text(FLOWS)
    config = write_config(tmp_path, DEPLOYMENTS)
    daemons.append(start_daemon(config, gnomon_home))
    wait_for(lambda: _ready(store), what="the daemon to sync and fire")
    return config


def _ready(store: Store) -> bool:
    return any(row.state_name == "Completed" for row in runs(store, "ticker"))


def cli(home: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return gnomon(home, *args, GNOMON_CONFIG=str(config))


def test_pause_stops_fires_before_it_returns_and_resume_restarts_them(
    daemon: Path, gnomon_home: Path, store: Store
) -> None:
    paused = cli(gnomon_home, daemon, "pause", "ticker", "--reason", "incident")
    returned = datetime.now(UTC)

    assert paused.returncode == 0, paused.stderr
    # Proving an absence takes waiting: three fire times of a 1 s interval.
    time.sleep(3)
    assert not [row for row in runs(store, "ticker") if row.created > returned]

    resumed = cli(gnomon_home, daemon, "resume", "ticker")
    assert resumed.returncode == 0, resumed.stderr
    wait_for(
        lambda: [row for row in runs(store, "ticker") if row.created > returned],
        timeout=10,
        what="a fire after resume",
    )


def test_run_wait_exits_0_for_a_completed_run_and_1_for_a_failed_one(
    daemon: Path, gnomon_home: Path, store: Store
) -> None:
    ok = cli(gnomon_home, daemon, "run", "yearly", "--param", "label=by-hand", "--wait")
    failed = cli(gnomon_home, daemon, "run", "broken", "--wait")

    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1] == "Completed"
    [manual] = runs(store, "yearly")
    assert (manual.trigger, manual.state_name) == ("manual", "Completed")
    assert failed.returncode == 1
    assert "ValueError: it broke" in failed.stderr


def test_runs_cancel_stops_a_running_run_within_seconds(
    daemon: Path, gnomon_home: Path, store: Store
) -> None:
    row = _start_sleeper(gnomon_home, daemon, store)

    cancelled = cli(gnomon_home, daemon, "runs", "cancel", row.id, "--reason", "stuck")

    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelling" in cancelled.stdout
    final = wait_for(
        lambda: getattr(store.read_flow_run(row.id), "state_type", None) == "CANCELLED",
        timeout=10,
        what="the run to end Cancelled",
    )
    assert final
    wait_for(lambda: not _alive(row.worker_pid), timeout=10, what="its worker to be stopped")


def test_pause_with_cancel_running_cancels_the_running_run(
    daemon: Path, gnomon_home: Path, store: Store
) -> None:
    row = _start_sleeper(gnomon_home, daemon, store)

    paused = cli(gnomon_home, daemon, "pause", "sleeper", "--cancel-running")

    assert f"cancelling run {row.id}" in paused.stdout
    wait_for(
        lambda: getattr(store.read_flow_run(row.id), "state_type", None) == "CANCELLED",
        timeout=10,
        what="the run to end Cancelled",
    )


def test_logs_follow_shows_a_line_from_a_run_that_started_after_it(
    daemon: Path, gnomon_home: Path, store: Store
) -> None:
    store.add_log(
        {
            "flow_run_id": None,
            "timestamp": datetime.now(UTC),
            "level": logging.INFO,
            "logger": "test",
            "message": "before following",
            "deployment_name": "yearly",
        }
    )
    store.flush()
    follower = subprocess.Popen(
        [str(GNOMON), "logs", "-f", "--deployment", "yearly", "-n", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GNOMON_HOME": str(gnomon_home), "GNOMON_CONFIG": str(daemon)},
    )
    lines = _lines(follower)
    try:
        # Once it printed the newest line it follows: a run started now is one it has not seen.
        assert "before following" in _read_line(lines, timeout=20)
        requested = cli(gnomon_home, daemon, "run", "yearly", "--param", "label=followed")
        assert requested.returncode == 0, requested.stderr
        seen = [_read_line(lines, timeout=20)]
        while "tick followed" not in seen[-1]:
            seen.append(_read_line(lines, timeout=20))
        assert " yearly " in seen[-1]
    finally:
        follower.terminate()
        follower.communicate(timeout=10)


def test_apply_after_editing_the_config_starts_the_new_deployment(
    daemon: Path, gnomon_home: Path, store: Store
) -> None:
    with daemon.open("a") as file:
        file.write(
            '\n[[deployments]]\nname = "added"\nflow = "ops_flows.py:tick"\ninterval = "1s"\n'
        )

    applied = cli(gnomon_home, daemon, "deployments", "apply")

    assert applied.returncode == 0, applied.stderr
    assert "added: added" in applied.stdout
    wait_for(completed(store, "added", 1), timeout=15, what="the added deployment to fire")
    # With a daemon running, apply is its reload: audited with what it changed.
    newest = store.read_audit()[0]
    assert (newest.action, newest.origin) == ("reload", "cli")
    assert newest.detail["added"] == ["added"]


def _start_sleeper(home: Path, config: Path, store: Store) -> dict:
    """Run the sleeper deployment by hand; its row once it is Running."""
    cli(home, config, "run", "sleeper")
    [row] = wait_for(
        lambda: [r for r in runs(store, "sleeper") if r.state_type == "RUNNING"],
        what="the sleeper to run",
    )
    return row


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout lines as they come, read on a thread (select() cannot see lines
    a text stream has already buffered)."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _read_line(lines: queue.Queue[str], timeout: float) -> str:
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no line within {timeout} s") from None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of the daemon counts as stopped.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_manual_run_follows_the_overlap_policy_unless_forced(
    daemon: Path, gnomon_home: Path, store: Store
) -> None:
    running = _start_sleeper(gnomon_home, daemon, store)

    cli(gnomon_home, daemon, "run", "sleeper")
    skipped = wait_for(
        lambda: [r for r in runs(store, "sleeper") if r.state_name == "Skipped"],
        what="the second manual run to be skipped (overlap = skip)",
    )
    forced = cli(gnomon_home, daemon, "run", "sleeper", "--force")

    assert "previous run still going" in skipped[0].state_message
    assert running.id in skipped[0].state_message
    assert forced.returncode == 0, forced.stderr
    both = wait_for(
        lambda: len([r for r in runs(store, "sleeper") if r.state_type == "RUNNING"]) == 2,
        what="the forced run running beside the first",
    )
    assert both
