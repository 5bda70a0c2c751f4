"""The ``Schedule`` value: a deployment's specs, their union of fire times, the jitter offset,
and the same schedule built from the config and from the store row (literal-date tables)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gnomon.deployments import load_config, stored_schedule, sync_deployments
from gnomon.scheduling import (
    Schedule,
    ScheduleError,
    ScheduleKind,
    ScheduleSpec,
    jitter_offset,
)

NEW_YORK = ZoneInfo("America/New_York")


def at(text: str, zone: ZoneInfo | None = None) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=zone) if zone is not None else moment


def test_a_cron_schedule_fires_by_its_zone_across_the_spring_gap() -> None:
    schedule = Schedule.single("etl", ScheduleKind.CRON, "30 2 * * *", "America/New_York")
    fires = schedule.next_fires(at("2027-03-13T12:00", NEW_YORK), 3)
    # 02:30 does not exist on 14 March 2027: cronie fires right after the jump, at 03:00.
    assert fires == [
        at("2027-03-14T03:00", NEW_YORK),
        at("2027-03-15T02:30", NEW_YORK),
        at("2027-03-16T02:30", NEW_YORK),
    ]
    assert schedule.timezone == "America/New_York"
    assert schedule.written == "cron 30 2 * * *"
    assert schedule.describe() == "At 02:30"


def test_fires_in_the_hour_a_fall_back_repeats_come_in_utc_in_order() -> None:
    """Both passes of 01:00 in New York on 7 November 2027 (a wildcard hour fires in each,
    as in cronie), as UTC instants: a zone's wall times compare and add ignoring ``fold``,
    which once made the daemon's timer take the second 01:00 for a fire already decided
    and plan it again forever."""
    schedule = Schedule.single("hourly", "cron", "0 * * * *", "America/New_York")
    fires = schedule.next_fires(datetime(2027, 11, 7, 4, 30, tzinfo=UTC), 4)
    assert fires == [
        datetime(2027, 11, 7, 5, tzinfo=UTC),  # 01:00 EDT
        datetime(2027, 11, 7, 6, tzinfo=UTC),  # 01:00 EST
        datetime(2027, 11, 7, 7, tzinfo=UTC),  # 02:00 EST
        datetime(2027, 11, 7, 8, tzinfo=UTC),
    ]
    assert all(fire.tzinfo is UTC for fire in fires)
    assert schedule.next_fire(fires[0]) == fires[1]


def test_several_specs_fire_at_the_union_of_their_times_and_a_shared_time_once() -> None:
    anchor = datetime(2027, 1, 1, 9, tzinfo=UTC)
    schedule = Schedule(
        "report",
        (
            ScheduleSpec(ScheduleKind.CRON, "0 9 * * *"),
            ScheduleSpec(ScheduleKind.INTERVAL, "12h", anchor=anchor),
        ),
    )
    assert schedule.next_fires(datetime(2027, 1, 1, 8, tzinfo=UTC), 4) == [
        datetime(2027, 1, 1, 9, tzinfo=UTC),
        datetime(2027, 1, 1, 21, tzinfo=UTC),
        datetime(2027, 1, 2, 9, tzinfo=UTC),
        datetime(2027, 1, 2, 21, tzinfo=UTC),
    ]
    assert schedule.written == "cron 0 9 * * *; interval 12h"
    assert schedule.describe() == "At 09:00; every 12h"
    assert schedule.timezone == "UTC"


def test_fires_are_due_their_deployments_fixed_jitter_offset_after_the_nominal_time() -> None:
    jitter = timedelta(minutes=10)
    schedule = Schedule.single("nightly-report", "cron", "0 3 * * *", jitter=jitter)
    offset = jitter_offset("nightly-report", jitter)
    assert timedelta(0) < schedule.offset < jitter
    assert schedule.offset == offset
    after = datetime(2027, 5, 1, tzinfo=UTC)
    assert schedule.next_fire(after) == datetime(2027, 5, 1, 3, tzinfo=UTC)  # nominal
    assert schedule.next_fires(after, 1) == [datetime(2027, 5, 1, 3, tzinfo=UTC) + offset]


def test_a_schedule_that_ends_gives_fewer_fires() -> None:
    schedule = Schedule.single("leap", "cron", "0 0 29 2 *")
    fires = schedule.next_fires(datetime(9995, 1, 1, tzinfo=UTC), 5)
    assert fires == [datetime(9996, 2, 29, tzinfo=UTC)]


def test_schedules_are_equal_by_what_they_say_and_their_errors_name_the_value() -> None:
    anchor = datetime(2027, 1, 1, tzinfo=UTC)
    one = Schedule.single("a", "interval", "15m", anchor=anchor)
    assert one == Schedule.single("a", "interval", "15m", anchor=anchor)
    assert one != Schedule.single("a", "interval", "15m", anchor=anchor + timedelta(minutes=1))
    assert one != Schedule.single("b", "interval", "15m", anchor=anchor)  # another offset
    assert hash(one) == hash(Schedule.single("a", "interval", "15m", anchor=anchor))
    with pytest.raises(ScheduleError, match="needs an anchor"):
        Schedule.single("a", "interval", "15m")
    with pytest.raises(ScheduleError, match="61"):
        Schedule.single("a", "cron", "61 * * * *")
    with pytest.raises(ScheduleError, match="no schedule"):
        Schedule("a", ())


def test_the_config_and_the_store_row_give_the_same_schedule(tmp_path: Path, store) -> None:
    config = tmp_path / "gnomon.toml"
    config.write_text(
        "\n".join(
            f'[[deployments]]\nname = "{name}"\nflow = "flows.py:f"\n{lines}\n'
            for name, lines in [
                ("cron", 'cron = "*/5 * * * *"\ntimezone = "Europe/Berlin"\njitter = "30s"'),
                ("interval", 'interval = "90m"'),
            ]
        )
    )
    (tmp_path / "flows.py").write_text("from gnomon import flow\n\n@flow\ndef f(): pass\n")
    deployments = load_config(config, check_flows=False).config.deployments
    sync_deployments(store, deployments, datetime.now(UTC))
    for deployment in deployments:
        row = store.read_deployment(deployment.name)
        assert row is not None
        assert stored_schedule(row) == deployment.timing(row.anchor)
        assert stored_schedule(row).offset == deployment.timing(row.anchor).offset
