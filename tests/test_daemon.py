"""The daemon as operators run it: a real subprocess, real signals, a real SQLite store."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, logs_of
from gnomon.store.rows import FlowRunRow

pytestmark = pytest.mark.backends

FLOWS = textwrap.dedent(
    """
    import os, time
    from gnomon import flow, get_run_logger

    @flow
    def tick(label: str = "x") -> str:
        get_run_logger().info("tick %s from pid %s", label, os.getpid())
        return label

    @flow
    def slow(seconds: float = 30.0) -> None:
        marker = os.environ.get("SLOW_MARKER")
        if marker:
            open(marker, "a").write(f"{os.getpid()}\\n")
        time.sleep(seconds)
    """
)


def write_config(tmp_path: Path, deployments: str, daemon: str = "workers = 2") -> Path:
    """A config running ``deployments`` on the flows in FLOWS. The HTTP API is off unless
    ``daemon`` sets ``api``: the default port would be shared by every test's daemon."""
    (tmp_path / "flows.py").write_text(FLOWS)
    config = tmp_path / "gnomon.toml"
    api = "" if "api =" in daemon else 'api = "off"\n'
    config.write_text(
        f'[daemon]\n{daemon}\n{api}shutdown_grace = "5s"\nkill_grace = "2s"\n\n'
        + textwrap.dedent(deployments)
    )
    return config


class DaemonProcess(subprocess.Popen[str]):
    """A daemon subprocess whose stdout and stderr go to files, never to a pipe.

    A pipe nobody drains fills after 64 KiB and then blocks the daemon's next log write:
    a long test's daemon would stall mid-run. ``communicate`` waits and returns what the
    files hold, as it would for pipes.
    """

    def __init__(self, args: list[str], output: Path, **kwargs: Any) -> None:
        self.output_path = output.with_suffix(".stdout")
        self.error_path = output.with_suffix(".stderr")
        with self.output_path.open("w") as stdout, self.error_path.open("w") as stderr:
            super().__init__(args, stdout=stdout, stderr=stderr, text=True, **kwargs)

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self.output_path.read_text(), self.error_path.read_text()

    def output_lines(self, timeout: float = 30) -> Iterator[str]:
        """Complete stdout lines as the daemon writes them, until it exits or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.output_path.open() as output:
            pending = ""
            while time.monotonic() < deadline:
                pending += output.read()
                *lines, pending = pending.split("\n")
                yield from (line + "\n" for line in lines)
                if not lines:
                    if self.poll() is not None:
                        return
                    time.sleep(0.05)


def start_daemon(
    config: Path,
    home: Path,
    output_dir: Path | None = None,
    cgroup: Path | None = None,
    **env: str,
) -> DaemonProcess:
    """The daemon on ``config`` as a subprocess; its stdout and stderr go to files in
    ``output_dir`` (default: ``home``). Given ``cgroup`` (a cgroup v2 directory), the daemon
    starts in it, as systemd starts a service in a group of its own."""
    environment = {**os.environ, "GNOMON_HOME": str(home), "GNOMON_LOG_FORMAT": "json", **env}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "src"), environment.get("PYTHONPATH")])
    )
    home.mkdir(parents=True, exist_ok=True)
    output = (output_dir or home) / f"daemon-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "gnomon.cli", "daemon", "--config", str(config)]
    if cgroup is not None:  # the shell moves itself, then becomes the daemon (same pid)
        procs = shlex.quote(str(cgroup / "cgroup.procs"))
        command = ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *command]
    return DaemonProcess(
        command,
        output,
        env=environment,
        cwd=config.parent,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def runs(store, deployment: str | None = None) -> list[FlowRunRow]:
    return store.read_runs(deployment=deployment, limit=1000)


def completed(store, deployment: str, count: int) -> Callable[[], bool]:
    return lambda: sum(row.state_name == "Completed" for row in runs(store, deployment)) >= count


INTERVAL_TICK = """
[[deployments]]
name = "ticker"
flow = "flows.py:tick"
interval = "1s"
parameters = { label = "hello" }
"""


def test_daemon_fires_runs_on_schedule_and_stops_cleanly_on_sigterm(
    tmp_path, gnomon_home, store, daemons
) -> None:
    daemon = start_daemon(write_config(tmp_path, INTERVAL_TICK), gnomon_home)
    daemons.append(daemon)

    wait_for(completed(store, "ticker", 2), what="two completed ticker runs")
    daemon.send_signal(signal.SIGTERM)
    out, err = daemon.communicate(timeout=20)

    assert daemon.returncode == 0, err
    done = [row for row in runs(store, "ticker") if row.state_name == "Completed"]
    assert all(row.trigger == "schedule" and row.worker_pid != daemon.pid for row in done)
    nominal = sorted(row.scheduled_for for row in runs(store, "ticker"))
    assert len(nominal) == len(set(nominal))  # never two runs for one fire time
    assert "tick hello" in out  # the flow's log line reached the daemon's output
    assert "Beginning flow run" not in out  # the summary line says it once per run
    # The run's stored logs tell its story in the daemon's lines, not the engine's.
    stored = [log.message for log in logs_of(store, flow_run_id=done[0].id)]
    assert any(message.startswith("schedule decision: ticker fired") for message in stored)
    assert any(message.startswith("run finished: ticker Completed") for message in stored)
    assert not any(message.startswith(("Beginning flow run", "Finished in")) for message in stored)
    summaries = {
        line["flow_run_id"]: line
        for line in map(json.loads, out.splitlines())
        if line.get("event_kind") == "run_summary"
    }
    for row in done:
        summary = summaries[row.id]
        expected = row.expected_start_time
        assert (summary["deployment"], summary["flow"], summary["state"]) == (
            "ticker",
            "tick",
            "Completed",
        )
        assert (summary["flow_run_name"], summary["attempt"]) == (row.name, 1)
        assert (summary["worker_pid"], summary["error_type"]) == (row.worker_pid, None)
        assert summary["scheduled_for"] == row.scheduled_for.isoformat()
        assert summary["started_at"] == row.start_time.isoformat()
        assert summary["ended_at"] == row.end_time.isoformat()
        lateness = round((row.start_time - expected).total_seconds() * 1000)
        assert summary["lateness_ms"] == lateness


def test_at_debug_the_workers_log_and_store_a_runs_start_and_end_lines(
    tmp_path, gnomon_home, store, daemons
) -> None:
    config = write_config(tmp_path, INTERVAL_TICK)
    daemon = start_daemon(config, gnomon_home, GNOMON_LOG_LEVEL="DEBUG")
    daemons.append(daemon)

    wait_for(completed(store, "ticker", 1), what="a completed ticker run")
    daemon.send_signal(signal.SIGTERM)
    out, err = daemon.communicate(timeout=20)

    assert daemon.returncode == 0, err
    run = next(row for row in runs(store, "ticker") if row.state_name == "Completed")
    stored = [log.message for log in logs_of(store, flow_run_id=run.id)]
    assert any(message.startswith("Beginning flow run") for message in stored), stored
    assert "Finished in state Completed()" in stored
    assert "Beginning flow run" in out  # relayed into the daemon's log at DEBUG


def test_a_config_with_errors_stops_the_daemon_with_every_problem_listed(
    tmp_path, gnomon_home, daemons
) -> None:
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "bad-cron"
        flow = "flows.py:tick"
        cron = "61 * * * *"

        [[deployments]]
        name = "bad-flow"
        flow = "flows.py:nowhere"
        interval = "1m"
        """,
    )
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    _, err = daemon.communicate(timeout=30)

    assert daemon.returncode == 2
    assert 'deployment "bad-cron": cron "61 * * * *": minute 61 is outside 0-59' in err
    assert 'deployment "bad-flow"' in err


def test_a_second_daemon_on_the_same_store_refuses_naming_the_first(
    tmp_path, gnomon_home, store, daemons
) -> None:
    config = write_config(tmp_path, INTERVAL_TICK)
    first = start_daemon(config, gnomon_home)
    daemons.append(first)
    wait_for(completed(store, "ticker", 1), what="the first daemon running")

    second = start_daemon(config, gnomon_home)
    daemons.append(second)
    _, err = second.communicate(timeout=30)

    assert second.returncode == 1
    assert f"pid {first.pid}" in err


@pytest.mark.sqlite_only  # on PostgreSQL it joins the first as a cluster (test_cluster)
def test_a_second_daemon_with_another_home_on_the_same_database_refuses_naming_the_first(
    tmp_path, gnomon_home, store, daemons, backend
) -> None:
    # Homes differ, so the file locks do not meet: the database file's lock excludes it.
    config = write_config(tmp_path, INTERVAL_TICK)
    first = start_daemon(config, gnomon_home)
    daemons.append(first)
    wait_for(completed(store, "ticker", 1), what="the first daemon running")

    url = store.url if backend == "postgresql" else f"sqlite:///{gnomon_home / 'gnomon.db'}"
    second = start_daemon(config, tmp_path / "other-home", GNOMON_DATABASE_URL=url)
    daemons.append(second)
    _, err = second.communicate(timeout=30)

    assert second.returncode == 1
    assert f"pid {first.pid}" in err


def test_after_sigkill_a_restart_crashes_orphaned_runs_and_never_duplicates_a_fire(
    tmp_path, gnomon_home, store, daemons
) -> None:
    marker = tmp_path / "slow-started"
    config = write_config(
        tmp_path,
        INTERVAL_TICK
        + """
        [[deployments]]
        name = "slowpoke"
        flow = "flows.py:slow"
        interval = "1s"
        """,
    )
    first = start_daemon(config, gnomon_home, SLOW_MARKER=str(marker))
    daemons.append(first)
    wait_for(marker.exists, what="the slow flow to start")
    first.kill()
    first.communicate(timeout=10)
    orphaned = [row.id for row in runs(store, "slowpoke") if row.state_type == "RUNNING"]
    assert orphaned

    second = start_daemon(config, gnomon_home)
    daemons.append(second)
    wait_for(
        lambda: all(store.read_flow_run(run_id).state_name == "Crashed" for run_id in orphaned),
        timeout=5,
        what="orphaned runs marked Crashed within 5 s",
    )
    # One more Completed than now (counting all ticker rows would also wait out the Missed
    # and Skipped ones, which a loaded machine makes many of).
    done = sum(row.state_name == "Completed" for row in runs(store, "ticker"))
    try:
        wait_for(completed(store, "ticker", done + 1), what="ticking again")
    except AssertionError:
        second.kill()
        out, err = second.communicate(timeout=10)
        rows = [(r["scheduled_for"], r["state_name"], r["trigger"]) for r in runs(store)]
        raise AssertionError(f"no tick after the restart: {rows}\n{out}\n{err}") from None
    second.send_signal(signal.SIGTERM)
    second.communicate(timeout=30)

    for deployment in ("ticker", "slowpoke"):
        nominal = [row.scheduled_for for row in runs(store, deployment)]
        assert len(nominal) == len(set(nominal))
    assert not [row for row in runs(store) if row.state_type in ("RUNNING", "PENDING")]


def test_sighup_reload_starts_added_deployments_and_stops_removed_ones(
    tmp_path, gnomon_home, store, daemons
) -> None:
    config = write_config(tmp_path, INTERVAL_TICK)
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "ticker", 1), what="the ticker")

    config.write_text(config.read_text().replace('name = "ticker"', 'name = "renamed"'))
    daemon.send_signal(signal.SIGHUP)
    wait_for(completed(store, "renamed", 1), what="the added deployment firing")
    before = len(runs(store, "ticker"))
    time.sleep(1.5)  # a removed 1 s deployment would have fired in this window

    assert len(runs(store, "ticker")) == before
    assert store.read_deployment("ticker").active is False
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0


def test_a_reload_with_a_broken_edit_reports_it_and_keeps_the_last_good_version(
    tmp_path, gnomon_home, store, daemons
) -> None:
    config = write_config(tmp_path, INTERVAL_TICK)
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "ticker", 1), what="the ticker")

    config.write_text(config.read_text().replace('interval = "1s"', 'interval = "soon"'))
    daemon.send_signal(signal.SIGHUP)
    # The load runs beside the loop: its outcome is audited once it is applied or refused.
    wait_for(
        lambda: [entry for entry in store.read_audit() if entry.action == "reload"],
        what="the reload's outcome",
    )
    count = len(runs(store, "ticker"))
    wait_for(completed(store, "ticker", count + 1), what="the old version still firing")
    daemon.send_signal(signal.SIGTERM)
    out, _ = daemon.communicate(timeout=30)

    assert daemon.returncode == 0
    assert (
        'config problem on reload: gnomon.toml: deployment \\"ticker\\": interval \\"soon\\"' in out
    )
    assert store.read_deployment("ticker").schedule == "1s"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    """A real datagram socket for NOTIFY_SOCKET, as systemd provides one."""
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(30)
    yield path, listener
    listener.close()


def test_ready_and_stopping_are_sent_on_the_notify_socket(
    tmp_path, gnomon_home, store, daemons, notify_socket
) -> None:
    path, listener = notify_socket
    daemon = start_daemon(
        write_config(tmp_path, INTERVAL_TICK), gnomon_home, NOTIFY_SOCKET=str(path)
    )
    daemons.append(daemon)

    assert "READY=1" in listener.recv(4096).decode()
    # READY promises migrations ran and deployments are loaded into the store.
    assert store.read_deployment("ticker") is not None
    daemon.send_signal(signal.SIGTERM)
    messages = []
    while "STOPPING=1" not in "".join(messages):
        messages.append(listener.recv(4096).decode())
    assert daemon.wait(timeout=30) == 0


def test_the_loop_feeds_the_systemd_watchdog_when_watchdog_usec_is_set(
    tmp_path, gnomon_home, daemons, notify_socket
) -> None:
    path, listener = notify_socket
    daemon = start_daemon(
        write_config(tmp_path, INTERVAL_TICK),
        gnomon_home,
        NOTIFY_SOCKET=str(path),
        WATCHDOG_USEC="1000000",
    )
    daemons.append(daemon)
    received: list[str] = []
    while sum("WATCHDOG=1" in message for message in received) < 3:
        received.append(listener.recv(4096).decode())

    assert "READY=1" in received[0]
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0


def test_sigterm_ends_a_run_still_going_after_shutdown_grace_as_cancelled(
    tmp_path, gnomon_home, store, daemons
) -> None:
    marker = tmp_path / "slow-started"
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "slowpoke"
        flow = "flows.py:slow"
        interval = "1s"
        """,
        daemon='workers = 1\nshutdown_grace = "1s"',
    )
    config.write_text(config.read_text().replace('shutdown_grace = "5s"\n', ""))
    daemon = start_daemon(config, gnomon_home, SLOW_MARKER=str(marker))
    daemons.append(daemon)
    wait_for(marker.exists, what="the slow flow to start")

    daemon.send_signal(signal.SIGTERM)

    assert daemon.wait(timeout=30) == 0
    [cancelled] = [row for row in runs(store, "slowpoke") if row.state_name == "Cancelled"]
    assert cancelled.end_time is not None
    assert not [row for row in runs(store) if row.state_type in ("RUNNING", "PENDING")]


def test_a_reload_picks_up_edited_flow_code_in_checks_and_in_workers(
    tmp_path, gnomon_home, store, daemons
) -> None:
    config = write_config(tmp_path, INTERVAL_TICK)
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "ticker", 1), what="the ticker")

    flows = tmp_path / "flows.py"
    flows.write_text(
        flows.read_text()
        .replace(
            'def tick(label: str = "x") -> str:',
            'def tick(label: str = "x", shout: bool = False) -> str:',
        )
        .replace('"tick %s from pid %s"', '"tock %s from pid %s"')
    )
    config.write_text(
        config.read_text().replace(
            'parameters = { label = "hello" }', 'parameters = { label = "hello", shout = true }'
        )
    )
    daemon.send_signal(signal.SIGHUP)

    def tocked() -> bool:
        return any(
            "tock hello" in row.message
            for run in runs(store, "ticker")
            for row in logs_of(store, flow_run_id=run.id)
        )

    wait_for(tocked, what="a run of the edited flow")
    daemon.send_signal(signal.SIGTERM)
    out, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0
    assert (
        "config problem on reload" not in out
    )  # the new parameter was checked against the new code


def test_a_pause_made_in_the_store_by_another_process_stops_fires_and_resume_restarts_them(
    tmp_path, gnomon_home, store, daemons
) -> None:
    from gnomon.store import Actor

    daemon = start_daemon(write_config(tmp_path, INTERVAL_TICK), gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "ticker", 1), what="the ticker")

    assert store.set_paused(["ticker"], True, Actor("test", "cli"), "incident")
    time.sleep(2.5)  # the pause applies within a second; let an in-flight fire settle
    paused_count = len(runs(store, "ticker"))
    time.sleep(2.5)  # a 1 s deployment would fire twice in this window if still scheduled
    assert len(runs(store, "ticker")) == paused_count

    assert store.set_paused(["ticker"], False, Actor("test", "cli"), None)
    wait_for(lambda: len(runs(store, "ticker")) > paused_count, what="fires after resume")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
