"""The daemon's health, its loop's timing rules and the reload rule, on literal times.

The real-process behaviour (a stuck loop restarted by systemd's watchdog, a locked store
ridden out) is in test_faults_daemon.py; here are the rules those rest on.
"""

from __future__ import annotations

import os
import signal
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gnomon.daemon._cadence import (
    DOWNTIME_GAP,
    MAX_RETRY,
    MIN_POLL_GAP,
    POLL_INTERVAL,
    ClockWatch,
    PollTimer,
    StoreOutage,
)
from gnomon.daemon._health import (
    Health,
    HealthMonitor,
    HealthState,
    HealthStatus,
    read_status,
    status_path,
)
from gnomon.daemon._reload import ReloadStatus, plan_reload
from gnomon.daemon._wakeup import Wakeup
from gnomon.deployments import load_config
from test_faults_store import read_only

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# Health.


def test_a_loop_that_ticks_is_ok_and_one_that_stops_ticking_is_stuck_after_the_bound() -> None:
    clock = Ticks()
    health = Health(5.0, monotonic=clock)
    health.ticked()
    clock.now += 4.9
    assert health.status() == HealthStatus(HealthState.OK, pytest.approx(4.9))
    clock.now += 0.2
    status = health.status()
    assert status.state is HealthState.STUCK
    assert status.reason == "the scheduling loop has not ticked for 5.1 s"


def test_a_failing_store_is_degraded_with_its_reason_until_it_works_again() -> None:
    clock = Ticks()
    health = Health(5.0, monotonic=clock)
    health.ticked()
    health.report("store", "the store cannot be written", "OperationalError: disk is full")
    status = health.status()
    assert (status.state, status.reason) == (HealthState.DEGRADED, "the store cannot be written")
    # /healthz shows the reason in general terms, never the error behind it.
    assert status.as_json() == {
        "status": "degraded",
        "last_tick_age_seconds": 0.0,
        "reason": "the store cannot be written",
    }
    assert status.as_json(detail=True)["detail"] == "OperationalError: disk is full"
    health.report("store", None)
    assert health.status().state is HealthState.OK


def test_a_loop_waiting_for_the_stores_write_lock_is_degraded_not_stuck() -> None:
    clock = Ticks()
    waiting_since: list[float | None] = [None]
    health = Health(5.0, store_wait=lambda: waiting_since[0], monotonic=clock)
    health.ticked()
    waiting_since[0] = clock.now + 0.5
    clock.now += 30
    status = health.status()
    assert status.state is HealthState.DEGRADED
    assert status.reason == "waiting 29.5 s for the store's write lock"


def test_the_monitor_feeds_the_watchdog_unless_stuck_and_writes_the_status_file(
    tmp_path: Path,
) -> None:
    clock = Ticks()
    health = Health(5.0, monotonic=clock)
    pings: list[str] = []
    statuses: list[str] = []
    lock = tmp_path / "daemon.lock"
    monitor = HealthMonitor(
        health,
        interval=3600,  # the test calls check() itself
        watchdog=lambda: pings.append("WATCHDOG=1"),
        status_file=status_path(lock),
        systemd_status=statuses.append,
    )
    monitor.start()  # writes the status at once, before the loop's first tick
    try:
        assert read_status(lock) == HealthStatus(HealthState.OK, None)
        health.ticked()
        monitor.check()
        health.report("store", "the store cannot be written", "OperationalError: locked")
        monitor.check()
        assert len(pings) == 3  # degraded still feeds it: riding out a locked store
        on_disk = read_status(lock)
        assert on_disk is not None
        assert on_disk.state is HealthState.DEGRADED
        assert on_disk.detail == "OperationalError: locked"
        clock.now += 60
        monitor.check()
        assert len(pings) == 3  # stuck: systemd must restart it
        assert statuses == ["ok", "degraded: the store cannot be written", statuses[-1]]
        assert statuses[-1].startswith("stuck: the scheduling loop has not ticked for 60.0 s")
    finally:
        monitor.stop()
    assert read_status(lock) is None  # a stopped daemon leaves no status


def test_a_status_file_its_daemon_stopped_rewriting_reads_as_stuck(tmp_path: Path) -> None:
    lock = tmp_path / "daemon.lock"
    monitor = HealthMonitor(
        Health(5.0), interval=3600, watchdog=lambda: None, status_file=status_path(lock)
    )
    monitor.start()
    try:
        monitor.health.ticked()
        monitor.check()
        assert read_status(lock, silence=5.0).state is HealthState.OK
        status = read_status(lock, silence=-1.0)  # as if written long ago
        assert status is not None
        assert status.state is HealthState.STUCK
        assert "has not updated its status" in (status.reason or "")
    finally:
        monitor.stop()


def test_a_disk_read_only_before_the_monitor_started_is_told_then_the_status_appears(
    tmp_path: Path,
) -> None:
    """The disk turned read-only after the daemon took its lock but before its monitor
    created the status file: `daemon status` says it is degraded and why, not that its
    health is unknown; once the disk can be written again the monitor writes the status."""
    if os.geteuid() != 0:
        pytest.skip("a read-only file system (EROFS) needs a read-only mount, which needs root")
    home = tmp_path / "home"
    home.mkdir()
    lock = home / "daemon.lock"
    lock.touch()  # the daemon's lock is taken before its monitor starts
    monitor = HealthMonitor(
        Health(5.0), interval=3600, watchdog=lambda: None, status_file=status_path(lock)
    )
    try:
        with read_only(home):
            monitor.start()
            assert not status_path(lock).exists()
            status = read_status(lock)
            assert status is not None
            assert status.state is HealthState.DEGRADED
            assert f"the file system of {home} is read-only" in (status.reason or "")
        monitor.check()
        assert read_status(lock) == HealthStatus(HealthState.OK, None)
    finally:
        monitor.stop()


# The loop's timing rules.


def test_polls_requested_by_a_flood_of_signals_run_at_most_once_per_min_poll_gap() -> None:
    polls = PollTimer()
    now, done = 0.0, 0
    for _ in range(10_000):  # a request every millisecond for ten seconds
        polls.request()
        if polls.due(now, backlog=False):
            polls.done(now)
            done += 1
        now += 0.001
    assert done == pytest.approx(10 / MIN_POLL_GAP, abs=2)


def test_a_requested_poll_waits_out_the_gap_and_the_timed_poll_comes_each_interval() -> None:
    polls = PollTimer()
    polls.done(100.0)
    assert not polls.due(100.05, backlog=False)
    polls.request()
    assert polls.wait(100.05, backlog=False) == pytest.approx(MIN_POLL_GAP - 0.05)
    assert polls.due(100.0 + MIN_POLL_GAP, backlog=False)
    polls.done(100.1)
    assert polls.wait(100.2, backlog=False) == pytest.approx(POLL_INTERVAL - 0.1)
    assert not polls.due(100.1 + POLL_INTERVAL - 0.01, backlog=False)
    assert polls.due(100.1 + POLL_INTERVAL, backlog=False)
    assert not polls.due(100.1 + POLL_INTERVAL, backlog=True)  # runs wait: one more interval


def test_the_loop_sleeps_until_a_poll_a_backlog_puts_off_is_due() -> None:
    """While runs wait for a worker the timed poll is put off by an interval, and the wait
    says so: a wait of 0 for a poll that is not due would spin the loop through the whole
    backlog (it doubled the daemon's CPU per run in a burst of 1,000 runs)."""
    polls = PollTimer()
    polls.done(100.0)
    late = 100.0 + POLL_INTERVAL + 0.2  # the timed poll's time has passed
    assert not polls.due(late, backlog=True)
    assert polls.wait(late, backlog=True) == pytest.approx(POLL_INTERVAL - 0.2)
    assert polls.wait(late, backlog=False) == 0.0
    assert polls.due(late, backlog=False)


@pytest.mark.parametrize(
    ("wall", "monotonic", "stepped", "downtime"),
    [
        (1.0, 1.0, False, False),  # a normal tick
        (3.0, 1.0, True, False),  # a small step forward: fires are only late
        (3600.0, 1.0, True, True),  # an NTP step or a resumed VM
        (-3600.0, 1.0, True, False),  # stepped back: nothing is fired again
        (600.0, 600.0, False, True),  # SIGSTOP for ten minutes
    ],
)
def test_a_gap_between_ticks_is_downtime_when_wall_time_moved_beyond_the_bound(
    wall: float, monotonic: float, stepped: bool, downtime: bool
) -> None:
    watch = ClockWatch()
    watch.observe(T0, 50.0)
    gap = watch.observe(T0 + timedelta(seconds=wall), 50.0 + monotonic)
    assert (gap.stepped, gap.downtime) == (stepped, downtime)
    assert DOWNTIME_GAP < 600


def test_a_failing_store_is_retried_with_doubling_back_off_capped_then_reset() -> None:
    outage = StoreOutage()
    delays = [outage.failed(T0, 10.0) for _ in range(8)]
    assert delays[:3] == [0.1, 0.2, 0.4]
    assert max(delays) == MAX_RETRY
    assert outage.since == T0
    assert not outage.ready(10.0)
    assert outage.ready(10.0 + MAX_RETRY)
    assert outage.ended(T0 + timedelta(seconds=40)) == timedelta(seconds=40)
    assert not outage.active
    assert outage.failed(T0, 20.0) == 0.1


# Signals.


def test_a_burst_of_signals_only_sets_flags_and_wakes_the_waiting_loop() -> None:
    wakeup = Wakeup()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGUSR1, signal.SIGHUP)}
    wakeup.catch((signal.SIGUSR1, signal.SIGHUP))
    try:
        for _ in range(2000):
            os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGHUP)
        wakeup.wait(5.0)  # returns at once: the pipe holds the bytes
        assert wakeup.take_signals() == {signal.SIGUSR1, signal.SIGHUP}
        assert wakeup.take_signals() == set()
    finally:
        wakeup.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# The reload rule.

FLOWS = """
from gnomon import flow

@flow
def tick() -> int:
    return 1
"""


def load(tmp_path: Path, text: str):
    (tmp_path / "flows.py").write_text(FLOWS)
    config = tmp_path / "gnomon.toml"
    config.write_text(textwrap.dedent(text))
    return load_config(config)


GOOD = """
[[deployments]]
name = "a"
flow = "flows.py:tick"
interval = "1m"

[[deployments]]
name = "b"
flow = "flows.py:tick"
cron = "0 * * * *"
"""


def current(tmp_path: Path):
    return {d.name: d for d in load(tmp_path, GOOD).config.deployments}


def test_a_reload_applies_additions_removals_and_names_the_fields_that_changed(
    tmp_path: Path,
) -> None:
    before = current(tmp_path)
    plan = plan_reload(
        before,
        load(
            tmp_path,
            """
            [[deployments]]
            name = "a"
            flow = "flows.py:tick"
            interval = "2m"
            timeout = "30s"

            [[deployments]]
            name = "c"
            flow = "flows.py:tick"
            interval = "1h"
            """,
        ),
    )
    assert plan.status is ReloadStatus.APPLIED
    assert (plan.added, plan.removed) == (("c",), ("b",))
    assert plan.changed == {"a": ("interval", "timeout")}
    assert plan.summary() == "applied: 1 added, 1 removed, 1 changed"


def test_a_problem_in_one_deployment_keeps_its_last_good_version_and_applies_the_rest(
    tmp_path: Path,
) -> None:
    before = current(tmp_path)
    plan = plan_reload(
        before,
        load(tmp_path, GOOD.replace('interval = "1m"', 'interval = "soon"').replace("0 *", "5 *")),
    )
    assert plan.status is ReloadStatus.PARTIAL
    assert plan.kept == ("a",)
    assert {d.name: d for d in plan.deployments}["a"] is before["a"]
    assert plan.changed == {"b": ("cron",)}
    assert plan.removed == ()
    assert plan.status.exit_code == 1


@pytest.mark.parametrize(
    "broken",
    [
        GOOD + "\n[[deployments]\n",  # not TOML
        GOOD + GOOD.replace('"b"', '"c"'),  # "a" defined twice
        'include = ["missing.toml"]\n' + GOOD,  # a broken include
        "[daemon]\nworkers = 0\n" + GOOD,  # a bad [daemon] key
        GOOD + '\n[[notify]]\nurl_env = "NO_SUCH_VARIABLE_HERE"\n',  # a bad notify target
    ],
    ids=["toml", "duplicate", "include", "daemon", "notify"],
)
def test_a_problem_not_confined_to_one_deployment_changes_nothing(
    tmp_path: Path, broken: str
) -> None:
    before = current(tmp_path)
    plan = plan_reload(before, load(tmp_path, broken))
    assert plan.status is ReloadStatus.REFUSED
    assert plan.deployments == tuple(before.values())
    assert (plan.added, plan.removed, plan.changed) == ((), (), {})
    assert plan.problems
    assert plan.status.exit_code == 2


def test_a_missing_config_file_changes_nothing(tmp_path: Path) -> None:
    before = current(tmp_path)
    plan = plan_reload(before, load_config(tmp_path / "gone.toml"))
    assert plan.status is ReloadStatus.REFUSED
    assert plan.problems == ("gone.toml: no such file",)
