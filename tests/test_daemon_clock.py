"""The daemon driven by a clock the test sets: its fires, reloads and catch-ups, without
sleeping until fire times.

A real daemon (a real store, real worker processes) runs in this process with a
``ManualClock``; ``Daemon.run_until_idle()`` takes the loop's passes at the clock's time, as
``serve`` does between its sleeps. The clock moves at most two seconds per pass, as the
loop's does (it wakes at least every second): a longer jump is a gap in the ticks, which the
catch-up policy decides.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gnomon.daemon import Daemon

# The daemon's scheduling, on SQLite only: the backend does not change it, and the store
# calls it makes run on both backends in test_scheduler.py and test_store*.py.
pytestmark = [pytest.mark.backends, pytest.mark.sqlite_only]

T0 = datetime(2027, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)
PASS = timedelta(seconds=2)  # under DOWNTIME_GAP


class ManualClock:
    """Wall-clock and monotonic time that move only when the test says."""

    def __init__(self, start: datetime) -> None:
        self.wall = start
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, delta: timedelta) -> None:
        self.wall += delta
        self.mono += delta.total_seconds()


def run_until(daemon: Daemon, clock: ManualClock, until: datetime) -> None:
    """Move the clock to ``until`` pass by pass, stopping at every fire's due time."""
    daemon.run_until_idle()
    while clock.now() < until:
        target = min(until, clock.now() + PASS)
        due = daemon.scheduler.next_due()
        if due is not None and clock.now() < due < target:
            target = due
        clock.advance(target - clock.now())
        daemon.run_until_idle()


def config_for(tmp_path: Path, deployments: str) -> Path:
    (tmp_path / "flows.py").write_text(
        "from gnomon import flow\n\n@flow\ndef tick() -> str:\n    return 'tock'\n"
    )
    config = tmp_path / "gnomon.toml"
    config.write_text(
        '[daemon]\nworkers = 1\napi = "off"\nshutdown_grace = "5s"\n\n'
        + textwrap.dedent(deployments)
    )
    return config


EVERY_MINUTE = """
[[deployments]]
name = "ticker"
flow = "flows.py:tick"
cron = "* * * * *"
"""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def daemon_at(clock: ManualClock, store) -> Iterator[Callable[[Path], Daemon]]:
    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        daemon = Daemon(config, clock)
        daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.shutdown()


def fires(store, deployment: str = "ticker") -> list[tuple[datetime, str, str]]:
    rows = store.read_runs(deployment=deployment, limit=1000)
    return sorted((row.scheduled_for, row.trigger, row.state_name) for row in rows)


def minute(n: int) -> datetime:
    return T0.replace(microsecond=0, second=0) + timedelta(minutes=n)


def test_each_fire_time_runs_once_at_its_time(tmp_path, clock, daemon_at, store) -> None:
    daemon = daemon_at(config_for(tmp_path, EVERY_MINUTE))

    run_until(daemon, clock, minute(5) + timedelta(seconds=1))

    assert fires(store) == [(minute(n), "schedule", "Completed") for n in range(1, 6)]


def test_a_reload_reschedules_from_the_next_fire_of_the_new_schedule(
    tmp_path, clock, daemon_at, store
) -> None:
    config = config_for(tmp_path, EVERY_MINUTE)
    daemon = daemon_at(config)
    run_until(daemon, clock, minute(1) + timedelta(seconds=30))

    config.write_text(config.read_text().replace('"* * * * *"', '"*/3 * * * *"'))
    daemon.request_reload()
    run_until(daemon, clock, minute(7))

    assert [nominal for nominal, _, _ in fires(store)] == [minute(1), minute(3), minute(6)]


def test_a_reload_requests_late_notify_loads_the_config_no_second_time(
    tmp_path, clock, daemon_at, store
) -> None:
    from gnomon.store import Actor, Origin

    config = config_for(tmp_path, EVERY_MINUTE)
    daemon = daemon_at(config)
    run_until(daemon, clock, minute(1))
    request = store.request_reload(Actor("on-call", Origin.CLI), str(config))
    daemon.nudge("poll")  # the CLI's SIGUSR1
    run_until(daemon, clock, minute(1) + timedelta(seconds=5))
    answered = store.read_reload(request)
    assert answered is not None
    assert answered.status == "applied"

    # The request's NOTIFY, delivered by the listener after the poll answered it: under
    # load it made a second load, audited as the daemon's, replacing the workers again.
    daemon.nudge("reload")
    run_until(daemon, clock, minute(2))

    reloads = [entry for entry in store.read_audit() if entry.action == "reload"]
    assert [(entry.actor, entry.origin) for entry in reloads] == [("on-call", "cli")]


def test_a_gap_in_the_ticks_is_caught_up_once_and_the_schedule_goes_on(
    tmp_path, clock, daemon_at, store
) -> None:
    daemon = daemon_at(config_for(tmp_path, EVERY_MINUTE))  # catchup = "latest"
    run_until(daemon, clock, minute(1) + timedelta(seconds=1))

    clock.advance(timedelta(hours=1))  # the process was frozen, or the clock stepped
    daemon.run_until_idle()
    run_until(daemon, clock, minute(62) + timedelta(seconds=1))

    runs = fires(store)
    assert runs[0] == (minute(1), "schedule", "Completed")
    assert [run for run in runs if run[2] == "Completed"][1:] == [
        (minute(61), "catchup", "Completed"),
        (minute(62), "schedule", "Completed"),
    ]
    assert {run[2] for run in runs[1:-2]} == {"Missed"}
    assert [run[0] for run in runs] == [minute(n) for n in range(1, 63)]


def test_a_fire_in_the_hour_a_fall_back_repeats_runs_at_its_time_not_an_hour_early(
    tmp_path, clock, daemon_at, store
) -> None:
    """New York's clocks go back from 02:00 EDT to 01:00 EST on 7 November 2027: a
    every-20-minutes cron fires at 01:40 EDT (05:40 UTC), then at 01:00 EST (06:00 UTC).
    Wall-clock arithmetic, which ignores ``fold``, made the second one due at 01:00 EDT
    (05:00 UTC), so it ran at once after the first, 20 minutes early."""
    clock.wall = datetime(2027, 11, 7, 5, 39, 30, tzinfo=UTC)
    config = config_for(
        tmp_path,
        """
        [[deployments]]
        name = "ticker"
        flow = "flows.py:tick"
        cron = "*/20 * * * *"
        timezone = "America/New_York"
        """,
    )
    daemon = daemon_at(config)
    run_until(daemon, clock, datetime(2027, 11, 7, 6, 0, 1, tzinfo=UTC))

    runs = sorted(store.read_runs(deployment="ticker"), key=lambda row: row.scheduled_for)
    assert [(row.scheduled_for, row.state_name) for row in runs] == [
        (datetime(2027, 11, 7, 5, 40, tzinfo=UTC), "Completed"),
        (datetime(2027, 11, 7, 6, 0, tzinfo=UTC), "Completed"),
    ]
    for row in runs:  # created by the daemon at its clock's time (workers keep their own)
        assert row.expected_start_time == row.scheduled_for
        assert row.created >= row.scheduled_for


def test_dst_choices_decide_the_fires_of_a_fall_back_night(
    tmp_path, clock, daemon_at, store
) -> None:
    """New York, 7 November 2027, 01:00-02:00 twice (EDT, then EST from 06:00 UTC): 01:30
    fires once by cronie's rule and twice with ``repeated = "both"``; every 20 minutes
    fires in both passes by cronie's rule and in the first only with ``repeated = "once"``."""
    clock.wall = datetime(2027, 11, 7, 5, 29, 30, tzinfo=UTC)
    config = config_for(
        tmp_path,
        """
        [[deployments]]
        name = "cronie"
        flow = "flows.py:tick"
        cron = "30 1 * * *"
        timezone = "America/New_York"

        [[deployments]]
        name = "both"
        flow = "flows.py:tick"
        cron = "30 1 * * *"
        timezone = "America/New_York"
        dst = { repeated = "both" }

        [[deployments]]
        name = "once"
        flow = "flows.py:tick"
        timezone = "America/New_York"
        schedules = [{ cron = "*/20 * * * *", dst = { repeated = "once" } }]
        """,
    )
    daemon = daemon_at(config)
    run_until(daemon, clock, datetime(2027, 11, 7, 6, 41, tzinfo=UTC))

    def nominal(name: str) -> list[datetime]:
        return [fire for fire, _, _ in fires(store, name)]

    assert nominal("cronie") == [datetime(2027, 11, 7, 5, 30, tzinfo=UTC)]
    assert nominal("both") == [
        datetime(2027, 11, 7, 5, 30, tzinfo=UTC),  # 01:30 EDT
        datetime(2027, 11, 7, 6, 30, tzinfo=UTC),  # 01:30 EST
    ]
    assert nominal("once") == [datetime(2027, 11, 7, 5, 40, tzinfo=UTC)]  # not 01:00-01:40 EST
    assert daemon.scheduler.next_due() == datetime(2027, 11, 7, 7, 0, tzinfo=UTC)  # 02:00 EST
