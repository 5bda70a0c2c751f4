"""The scheduler with calendars and maintenance windows, at literal times: the catch-up
after downtime neither runs nor records the fires a calendar excluded; a window set while
running replans a fire planned inside it, and fires resume at its end; its removal lets
the next fire run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gnomon.scheduling import MaintenanceWindow
from test_daemon import runs
from test_schedule_specs_daemon import scheduler_for

pytestmark = pytest.mark.backends

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)  # registered an hour before (scheduler_for)


def test_the_catch_up_skips_the_excluded_day_without_a_row(tmp_path: Path, store) -> None:
    """Down from Feb 28 11:00 (registered then) to Mar 2 12:00, catchup = all: the hourly
    fires of Mar 1 (excluded) are neither run nor recorded Missed."""
    scheduler = scheduler_for(
        tmp_path,
        store,
        """
        [[calendars]]
        name = "first"
        dates = [2027-03-01]

        [[deployments]]
        name = "hourly"
        flow = "flows.py:job"
        cron = "0 * * * *"
        exclude = ["first"]
        overlap = "allow"
        max_concurrent = 100
        catchup = "all"
        max_catchup = 1000
        """,
    )
    scheduler.catch_up(T0 + timedelta(days=1))
    days = sorted({row.scheduled_for.date().isoformat() for row in runs(store, "hourly")})
    assert days == ["2027-03-02"]
    assert len(runs(store, "hourly")) == 13  # 00:00 to 12:00 of Mar 2


def test_a_window_set_while_running_holds_fires_until_its_end(tmp_path: Path, store) -> None:
    scheduler = scheduler_for(
        tmp_path,
        store,
        """
        [[deployments]]
        name = "minutely"
        flow = "flows.py:job"
        cron = "* * * * *"
        tags = ["warehouse"]
        overlap = "allow"
        max_concurrent = 100
        """,
    )
    scheduler.plan_fires(T0)
    scheduler.tick(T0 + timedelta(minutes=1))  # 12:01 fires; 12:02 is planned
    window = MaintenanceWindow(
        T0 + timedelta(minutes=2), T0 + timedelta(minutes=4), "swap", tags=("warehouse",)
    )
    other = MaintenanceWindow(T0, T0 + timedelta(hours=1), deployments=("someone-else",))
    scheduler.set_windows([window, other], T0 + timedelta(minutes=1, seconds=30))
    for minute in range(2, 6):
        scheduler.tick(T0 + timedelta(minutes=minute))
    fired = sorted(row.scheduled_for.strftime("%H:%M") for row in runs(store, "minutely"))
    assert fired == ["12:01", "12:04", "12:05"]  # [12:02, 12:04): none, no row
    assert scheduler.next_due() == T0 + timedelta(minutes=6)

    later = MaintenanceWindow(T0 + timedelta(minutes=6), T0 + timedelta(minutes=9))
    scheduler.set_windows([later], T0 + timedelta(minutes=5, seconds=30))
    assert scheduler.next_due() == T0 + timedelta(minutes=9)
    scheduler.set_windows([], T0 + timedelta(minutes=5, seconds=40))  # removed again
    assert scheduler.next_due() == T0 + timedelta(minutes=6)
