"""kill -9 of the daemon at the worst moments: no fire is lost or made twice.

The kill is injected by a ``sitecustomize`` module on the daemon's PYTHONPATH that wraps a
store function and SIGKILLs the daemon process at that point (never its workers), so the
daemon's own code carries no test hooks. After a restart, every nominal fire time of the
deployment must appear exactly once in the store (as a run, or as Missed for the downtime),
and no run may be left Running or Pending by the dead daemon.
"""

from __future__ import annotations

import itertools
import signal
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from test_daemon import DaemonProcess, start_daemon, wait_for, write_config

pytestmark = pytest.mark.backends

# What every crash hook starts with (test_upstreams_daemon's too): the crash point asked
# for, whether this is the daemon (not its worker template or a worker), and the kill.
CRASH_PREAMBLE = textwrap.dedent(
    """
    import os, signal, sys

    point = os.environ.get("GNOMON_CRASH_AT")
    in_worker = "gnomon.daemon._template" in sys.orig_argv  # the template and its workers


    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    """
)
CRASHER = CRASH_PREAMBLE + textwrap.dedent(
    """
    if point and not in_worker:
        if point == "after_run_insert":
            from gnomon.store import _scheduled

            original = _scheduled.ScheduledRunQueries._create_runs

            def create_runs(self, runs, unless_paused):
                created, paused = original(self, runs, unless_paused)
                if any(run["state_name"] == "Pending" for run in runs if run["id"] in created):
                    die()
                return created, paused

            _scheduled.ScheduledRunQueries._create_runs = create_runs
        elif point == "inside_write_transaction":
            import contextlib

            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            from gnomon.store import _db, _scheduled

            original = _scheduled.ScheduledRunQueries._create_runs
            armed = []

            def create_runs(self, runs, unless_paused):
                created, paused = original(self, runs, unless_paused)
                if any(run["state_name"] == "Pending" for run in runs if run["id"] in created):
                    armed.append(True)
                return created, paused

            def commit(connection):
                if armed:
                    die()  # the write after the first run's: its statements ran, uncommitted

            # The store's hot writes commit on the driver's connection, not SQLAlchemy's.
            driver_transaction = _db._transaction

            @contextlib.contextmanager
            def transaction(dialect, pooled):
                with driver_transaction(dialect, pooled) as connection:
                    yield connection
                    commit(connection)

            _scheduled.ScheduledRunQueries._create_runs = create_runs
            event.listen(Engine, "commit", commit)
            _db._transaction = transaction
    """
)


def crash_daemon(config: Path, home: Path, hooks: str, point: str) -> DaemonProcess:
    """A daemon on ``config`` with the crash ``hooks`` (a sitecustomize) killing it at
    ``point``, once it has died there."""
    folder = config.parent / "hooks"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(hooks)
    daemon = start_daemon(config, home, GNOMON_CRASH_AT=point, PYTHONPATH=str(folder))
    try:
        daemon.wait(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate(timeout=10)
    assert daemon.returncode == -signal.SIGKILL
    return daemon


TICKER = """
[[deployments]]
name = "ticker"
flow = "flows.py:tick"
interval = "1s"
"""


def assert_every_fire_once(store) -> None:
    nominal = sorted(
        row.scheduled_for for row in store.read_runs(deployment="ticker", limit=10_000)
    )
    assert len(nominal) == len(set(nominal)), "a fire time was recorded twice"
    gaps = [(a, b) for a, b in itertools.pairwise(nominal) if b - a != timedelta(seconds=1)]
    assert not gaps, f"fire times missing between {gaps[:3]}"


@pytest.mark.parametrize("point", ["after_run_insert", "inside_write_transaction"])
def test_a_daemon_killed_at_a_crash_point_restarts_without_duplicate_or_lost_fires(
    point: str, tmp_path: Path, gnomon_home: Path, store, daemons
) -> None:
    config = write_config(tmp_path, TICKER)
    daemons.append(crash_daemon(config, gnomon_home, CRASHER, point))
    assert store.read_runs(deployment="ticker")  # it got as far as creating a run

    second = start_daemon(config, gnomon_home)
    daemons.append(second)
    wait_for(
        lambda: (
            not [
                row
                for row in store.read_runs(limit=10_000)
                if row.state_type in ("RUNNING", "PENDING")
                and row.daemon_id != _daemon_id(store, second.pid)
            ]
        ),
        timeout=5,
        what="runs of the dead daemon settled within 5 s",
    )
    completed_before = sum(
        row.state_name == "Completed" for row in store.read_runs(deployment="ticker")
    )
    wait_for(
        lambda: (
            sum(row.state_name == "Completed" for row in store.read_runs(deployment="ticker"))
            >= completed_before + 2
        ),
        what="the restarted daemon firing again",
    )
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0

    assert_every_fire_once(store)
    assert not [
        row for row in store.read_runs(limit=10_000) if row.state_type in ("RUNNING", "PENDING")
    ]


def _daemon_id(store, pid: int) -> str | None:
    """The daemon_id the daemon with ``pid`` stamps on its runs (hostname:pid:token)."""
    for row in store.read_runs(limit=10_000):
        daemon_id = row.daemon_id or ""
        if f":{pid}:" in daemon_id:
            return daemon_id
    return None


def test_a_deployment_killed_before_its_first_fire_catches_it_up_after_a_restart(
    tmp_path: Path, gnomon_home: Path, store, daemons
) -> None:
    # The fire due while no daemon ran belonged to a deployment that had never fired: the
    # restarted daemon decides it by the catch-up policy, as for one that had.
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "hourly"
        flow = "flows.py:tick"
        interval = "8s"
        catchup = "all"
        """,
    )
    first = start_daemon(config, gnomon_home)
    daemons.append(first)
    row = wait_for(lambda: store.read_deployment("hourly"), what="the deployment registered")
    first.kill()
    first.communicate(timeout=10)
    registered = row.registered_at
    assert not store.read_runs(deployment="hourly")  # killed before the first fire

    time.sleep(max(0.0, (registered + timedelta(seconds=9) - datetime.now(UTC)).total_seconds()))
    second = start_daemon(config, gnomon_home)
    daemons.append(second)
    first_fire = registered + timedelta(seconds=8)
    caught_up = wait_for(
        lambda: [r for r in store.read_runs(deployment="hourly") if r.scheduled_for == first_fire],
        what="the missed first fire caught up",
    )
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    assert [r.trigger for r in caught_up] == ["catchup"]
