"""Cron triggers: crontab semantics, validation messages and cronie's DST rules.

Every expected time below is a literal worked out by hand from the calendar and the tz
database (transition instants checked with zoneinfo), never computed by the code under test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnomon.exceptions import GnomonError
from gnomon.scheduling import CronTrigger, ScheduleError, Trigger


def _fires(trigger: CronTrigger, after: str, count: int) -> list[datetime]:
    fires: list[datetime] = []
    moment = datetime.fromisoformat(after)
    for _ in range(count):
        fire = trigger.next_fire(moment)
        assert fire is not None
        fires.append(fire)
        moment = fire
    return fires


# (expression, after, the next fire times), all in UTC.
FIELD_SEMANTICS = [
    ("*/15 * * * *", "2027-01-01T00:07:00+00:00", [
        "2027-01-01T00:15:00", "2027-01-01T00:30:00", "2027-01-01T00:45:00",
        "2027-01-01T01:00:00",
    ]),
    ("0 9-17/4 * * *", "2027-01-01T00:00:00+00:00", [
        "2027-01-01T09:00:00", "2027-01-01T13:00:00", "2027-01-01T17:00:00",
        "2027-01-02T09:00:00",
    ]),
    ("5,35 */12 * * *", "2027-01-01T00:10:00+00:00", [
        "2027-01-01T00:35:00", "2027-01-01T12:05:00", "2027-01-01T12:35:00",
        "2027-01-02T00:05:00",
    ]),
    ("* * * * *", "2027-01-01T10:00:00.000001+00:00", [
        "2027-01-01T10:01:00", "2027-01-01T10:02:00",
    ]),
    ("0 12 * * *", "2027-01-01T17:00:00+05:30", [
        "2027-01-01T12:00:00", "2027-01-02T12:00:00",
    ]),
    # Six fields: seconds last, as croniter reads them.
    ("30 1 * * * 15", "2027-01-01T00:00:00+00:00", [
        "2027-01-01T01:30:15", "2027-01-02T01:30:15",
    ]),
    ("* * * * * */20", "2027-01-01T00:00:10+00:00", [
        "2027-01-01T00:00:20", "2027-01-01T00:00:40", "2027-01-01T00:01:00",
    ]),
    ("@hourly", "2027-01-01T00:00:00+00:00", ["2027-01-01T01:00:00", "2027-01-01T02:00:00"]),
]  # fmt: skip


@pytest.mark.parametrize(("expression", "after", "expected"), FIELD_SEMANTICS)
def test_fields_select_the_times_crontab_5_describes(
    expression: str, after: str, expected: list[str]
) -> None:
    fires = _fires(CronTrigger(expression), after, len(expected))

    assert [fire.isoformat() for fire in fires] == [f"{moment}+00:00" for moment in expected]


# (expression, after, the dates of the next fires at midnight UTC)
DAYS = [
    ("0 0 * * MON-FRI", "2027-01-01T12:00", ["01-04", "01-05", "01-06", "01-07", "01-08"]),
    ("0 0 * * 0", "2027-01-01T00:00", ["01-03", "01-10", "01-17"]),
    ("0 0 * * 7", "2027-01-01T00:00", ["01-03", "01-10", "01-17"]),
    ("0 0 * * sun", "2027-01-01T00:00", ["01-03", "01-10", "01-17"]),
    ("0 0 * * 5-7", "2027-01-01T00:00", ["01-02", "01-03", "01-08", "01-09"]),
    ("0 0 * * SAT,SUN", "2027-01-01T00:00", ["01-02", "01-03", "01-09", "01-10"]),
    ("0 0 1 JAN-MAR *", "2027-01-15T00:00", ["02-01", "03-01", "2028-01-01"]),
    ("0 0 1 jan,Jul *", "2027-01-15T00:00", ["07-01", "2028-01-01"]),
    ("0 0 31 * *", "2027-01-01T00:00", ["01-31", "03-31", "05-31", "07-31", "08-31"]),
    # Both day fields restricted: either matches (September 13, 2027 is a Monday).
    ("0 0 13 * FRI", "2027-09-01T00:00", ["09-03", "09-10", "09-13", "09-17", "09-24"]),
    ("0 0 1-31 * MON", "2027-01-01T00:00", ["01-02", "01-03", "01-04"]),
    ("0 0 30 2 MON", "2027-01-01T00:00", ["02-01", "02-08", "02-15", "02-22", "2028-02-07"]),
    # A day field starting with * is unrestricted (cronie): the two intersect, giving
    # Mondays that fall on odd days.
    ("0 0 */2 * MON", "2027-01-01T00:00", ["01-11", "01-25", "02-01", "02-15"]),
    # 2100 is not a leap year, and Sundays that are February 29 come 28 years apart.
    ("0 0 29 2 *", "2097-03-01T00:00", ["2104-02-29", "2108-02-29"]),
    ("0 0 29 2 */7", "2027-01-01T00:00", ["2032-02-29", "2060-02-29"]),
    ("@yearly", "2027-06-01T00:00", ["2028-01-01", "2029-01-01"]),
    ("@annually", "2027-06-01T00:00", ["2028-01-01"]),
    ("@monthly", "2027-06-01T00:00", ["07-01", "08-01"]),
    ("@weekly", "2027-01-01T00:00", ["01-03", "01-10"]),
    ("@daily", "2027-01-01T00:00", ["01-02", "01-03"]),
    ("@MIDNIGHT", "2027-01-01T00:00", ["01-02"]),
]


@pytest.mark.parametrize(("expression", "after", "expected"), DAYS)
def test_day_fields_names_and_aliases(expression: str, after: str, expected: list[str]) -> None:
    fires = _fires(CronTrigger(expression), after + "+00:00", len(expected))

    assert {fire.time().isoformat() for fire in fires} == {"00:00:00"}
    written = [
        fire.strftime("%m-%d" if fire.year == int(after[:4]) else "%Y-%m-%d") for fire in fires
    ]
    assert written == expected


def test_a_fire_time_is_strictly_after_the_given_instant() -> None:
    trigger = CronTrigger("30 1 * * *")

    on_the_dot = trigger.next_fire(datetime(2027, 1, 1, 1, 30, tzinfo=UTC))
    just_before = trigger.next_fire(datetime(2027, 1, 1, 1, 29, 59, 999999, tzinfo=UTC))

    assert on_the_dot == datetime(2027, 1, 2, 1, 30, tzinfo=UTC)
    assert just_before == datetime(2027, 1, 1, 1, 30, tzinfo=UTC)


# The DST tables. Each row: zone, expression, after (with its offset, since a repeated
# local time is ambiguous without it), then each fire as (local time, UTC instant).
# Transitions, checked with zoneinfo:
#   America/New_York    2027-03-14 02:00 EST -> 03:00 EDT (07:00Z);
#                       2027-11-07 02:00 EDT -> 01:00 EST (06:00Z)
#   Europe/London       2027-03-28 01:00 GMT -> 02:00 BST (01:00Z);
#                       2027-10-31 02:00 BST -> 01:00 GMT (01:00Z)
#   Europe/Berlin       2027-03-28 02:00 CET -> 03:00 CEST (01:00Z);
#                       2027-10-31 03:00 CEST -> 02:00 CET (01:00Z)
#   Australia/Sydney    2027-04-04 03:00 AEDT -> 02:00 AEST (04-03 16:00Z);
#                       2027-10-03 02:00 AEST -> 03:00 AEDT (10-02 16:00Z)
#   Australia/Lord_Howe 2027-04-04 02:00 +11 -> 01:30 +1030 (04-03 15:00Z);
#                       2026-10-04 02:00 +1030 -> 02:30 +11 (10-03 15:30Z)
Fire = tuple[str, str]
DST: list[tuple[str, str, str, list[Fire]]] = [
    # New York, spring forward: a skipped fixed time fires once, right after the jump.
    ("America/New_York", "30 2 * * *", "2027-03-13T12:00:00-05:00", [
        ("2027-03-14T03:00:00-04:00", "2027-03-14T07:00:00Z"),
        ("2027-03-15T02:30:00-04:00", "2027-03-15T06:30:00Z"),
    ]),
    ("America/New_York", "0 2 * * *", "2027-03-13T12:00:00-05:00", [
        ("2027-03-14T03:00:00-04:00", "2027-03-14T07:00:00Z"),
        ("2027-03-15T02:00:00-04:00", "2027-03-15T06:00:00Z"),
    ]),
    ("America/New_York", "59 2 * * *", "2027-03-14T01:59:00-05:00", [
        ("2027-03-14T03:00:00-04:00", "2027-03-14T07:00:00Z"),
    ]),
    # 02:00, 02:30 and 03:00 all land on 03:00 EDT, which fires once.
    ("America/New_York", "0,30 1-3 * * *", "2027-03-14T00:00:00-05:00", [
        ("2027-03-14T01:00:00-05:00", "2027-03-14T06:00:00Z"),
        ("2027-03-14T01:30:00-05:00", "2027-03-14T06:30:00Z"),
        ("2027-03-14T03:00:00-04:00", "2027-03-14T07:00:00Z"),
        ("2027-03-14T03:30:00-04:00", "2027-03-14T07:30:00Z"),
        ("2027-03-15T01:00:00-04:00", "2027-03-15T05:00:00Z"),
    ]),
    # ... while a periodic job has no 02:00 that night.
    ("America/New_York", "0 * * * *", "2027-03-14T00:30:00-05:00", [
        ("2027-03-14T01:00:00-05:00", "2027-03-14T06:00:00Z"),
        ("2027-03-14T03:00:00-04:00", "2027-03-14T07:00:00Z"),
        ("2027-03-14T04:00:00-04:00", "2027-03-14T08:00:00Z"),
    ]),
    ("America/New_York", "*/30 * * * *", "2027-03-14T01:15:00-05:00", [
        ("2027-03-14T01:30:00-05:00", "2027-03-14T06:30:00Z"),
        ("2027-03-14T03:00:00-04:00", "2027-03-14T07:00:00Z"),
        ("2027-03-14T03:30:00-04:00", "2027-03-14T07:30:00Z"),
    ]),
    ("America/New_York", "*/10 2 * * *", "2027-03-13T12:00:00-05:00", [
        ("2027-03-15T02:00:00-04:00", "2027-03-15T06:00:00Z"),
        ("2027-03-15T02:10:00-04:00", "2027-03-15T06:10:00Z"),
    ]),
    # New York, fall back: a repeated fixed time fires once, at its first occurrence
    # (croniter on its own fires 01:30 EDT and again 01:30 EST).
    ("America/New_York", "30 1 * * *", "2027-11-06T12:00:00-04:00", [
        ("2027-11-07T01:30:00-04:00", "2027-11-07T05:30:00Z"),
        ("2027-11-08T01:30:00-05:00", "2027-11-08T06:30:00Z"),
    ]),
    ("America/New_York", "30 1 * * *", "2027-11-07T01:15:00-04:00", [
        ("2027-11-07T01:30:00-04:00", "2027-11-07T05:30:00Z"),
    ]),
    ("America/New_York", "30 1 * * *", "2027-11-07T01:15:00-05:00", [
        ("2027-11-08T01:30:00-05:00", "2027-11-08T06:30:00Z"),
    ]),
    ("America/New_York", "30 1 * * *", "2027-11-07T01:30:00-04:00", [
        ("2027-11-08T01:30:00-05:00", "2027-11-08T06:30:00Z"),
    ]),
    ("America/New_York", "0,30 1-3 * * *", "2027-11-07T00:00:00-04:00", [
        ("2027-11-07T01:00:00-04:00", "2027-11-07T05:00:00Z"),
        ("2027-11-07T01:30:00-04:00", "2027-11-07T05:30:00Z"),
        ("2027-11-07T02:00:00-05:00", "2027-11-07T07:00:00Z"),
        ("2027-11-07T02:30:00-05:00", "2027-11-07T07:30:00Z"),
        ("2027-11-07T03:00:00-05:00", "2027-11-07T08:00:00Z"),
    ]),
    # ... while a periodic job fires at every real occurrence: 01:00 EDT, then 01:00 EST.
    ("America/New_York", "0 * * * *", "2027-11-07T00:30:00-04:00", [
        ("2027-11-07T01:00:00-04:00", "2027-11-07T05:00:00Z"),
        ("2027-11-07T01:00:00-05:00", "2027-11-07T06:00:00Z"),
        ("2027-11-07T02:00:00-05:00", "2027-11-07T07:00:00Z"),
    ]),
    ("America/New_York", "*/30 * * * *", "2027-11-07T01:45:00-04:00", [
        ("2027-11-07T01:00:00-05:00", "2027-11-07T06:00:00Z"),
        ("2027-11-07T01:30:00-05:00", "2027-11-07T06:30:00Z"),
        ("2027-11-07T02:00:00-05:00", "2027-11-07T07:00:00Z"),
    ]),
    ("America/New_York", "30 * * * *", "2027-11-07T01:40:00-04:00", [
        ("2027-11-07T01:30:00-05:00", "2027-11-07T06:30:00Z"),
        ("2027-11-07T02:30:00-05:00", "2027-11-07T07:30:00Z"),
    ]),
    ("America/New_York", "30 * * * *", "2027-11-07T01:40:00-05:00", [
        ("2027-11-07T02:30:00-05:00", "2027-11-07T07:30:00Z"),
    ]),
    ("America/New_York", "@daily", "2027-11-06T12:00:00-04:00", [
        ("2027-11-07T00:00:00-04:00", "2027-11-07T04:00:00Z"),
        ("2027-11-08T00:00:00-05:00", "2027-11-08T05:00:00Z"),
    ]),
    # London: the jump is at 01:00 local.
    ("Europe/London", "30 1 * * *", "2027-03-27T12:00:00+00:00", [
        ("2027-03-28T02:00:00+01:00", "2027-03-28T01:00:00Z"),
        ("2027-03-29T01:30:00+01:00", "2027-03-29T00:30:00Z"),
    ]),
    ("Europe/London", "*/30 1 * * *", "2027-03-27T12:00:00+00:00", [
        ("2027-03-29T01:00:00+01:00", "2027-03-29T00:00:00Z"),
        ("2027-03-29T01:30:00+01:00", "2027-03-29T00:30:00Z"),
    ]),
    ("Europe/London", "30 1 * * *", "2027-10-30T12:00:00+01:00", [
        ("2027-10-31T01:30:00+01:00", "2027-10-31T00:30:00Z"),
        ("2027-11-01T01:30:00+00:00", "2027-11-01T01:30:00Z"),
    ]),
    ("Europe/London", "0 * * * *", "2027-10-31T00:30:00+01:00", [
        ("2027-10-31T01:00:00+01:00", "2027-10-31T00:00:00Z"),
        ("2027-10-31T01:00:00+00:00", "2027-10-31T01:00:00Z"),
        ("2027-10-31T02:00:00+00:00", "2027-10-31T02:00:00Z"),
    ]),
    # Berlin: the same instants as London, an hour later on the wall.
    ("Europe/Berlin", "30 2 * * *", "2027-03-27T12:00:00+01:00", [
        ("2027-03-28T03:00:00+02:00", "2027-03-28T01:00:00Z"),
        ("2027-03-29T02:30:00+02:00", "2027-03-29T00:30:00Z"),
    ]),
    ("Europe/Berlin", "30 2 * * *", "2027-10-30T12:00:00+02:00", [
        ("2027-10-31T02:30:00+02:00", "2027-10-31T00:30:00Z"),
        ("2027-11-01T02:30:00+01:00", "2027-11-01T01:30:00Z"),
    ]),
    # Sydney: southern hemisphere, clocks go back in April and forward in October.
    ("Australia/Sydney", "30 2 * * *", "2027-04-03T12:00:00+11:00", [
        ("2027-04-04T02:30:00+11:00", "2027-04-03T15:30:00Z"),
        ("2027-04-05T02:30:00+10:00", "2027-04-04T16:30:00Z"),
    ]),
    ("Australia/Sydney", "30 * * * *", "2027-04-04T01:45:00+11:00", [
        ("2027-04-04T02:30:00+11:00", "2027-04-03T15:30:00Z"),
        ("2027-04-04T02:30:00+10:00", "2027-04-03T16:30:00Z"),
        ("2027-04-04T03:30:00+10:00", "2027-04-03T17:30:00Z"),
    ]),
    ("Australia/Sydney", "30 2 * * *", "2027-10-02T12:00:00+10:00", [
        ("2027-10-03T03:00:00+11:00", "2027-10-02T16:00:00Z"),
        ("2027-10-04T02:30:00+11:00", "2027-10-03T15:30:00Z"),
    ]),
    ("Australia/Sydney", "0 * * * *", "2027-10-03T01:30:00+10:00", [
        ("2027-10-03T03:00:00+11:00", "2027-10-02T16:00:00Z"),
        ("2027-10-03T04:00:00+11:00", "2027-10-02T17:00:00Z"),
    ]),
    # Lord Howe: a 30-minute shift. 01:30-02:00 repeats in April; 02:00-02:30 is skipped
    # in October.
    ("Australia/Lord_Howe", "45 1 * * *", "2027-04-03T12:00:00+11:00", [
        ("2027-04-04T01:45:00+11:00", "2027-04-03T14:45:00Z"),
        ("2027-04-05T01:45:00+10:30", "2027-04-04T15:15:00Z"),
    ]),
    ("Australia/Lord_Howe", "*/30 * * * *", "2027-04-04T01:00:00+11:00", [
        ("2027-04-04T01:30:00+11:00", "2027-04-03T14:30:00Z"),
        ("2027-04-04T01:30:00+10:30", "2027-04-03T15:00:00Z"),
        ("2027-04-04T02:00:00+10:30", "2027-04-03T15:30:00Z"),
    ]),
    ("Australia/Lord_Howe", "15,45 * * * *", "2027-04-04T01:20:00+11:00", [
        ("2027-04-04T01:45:00+11:00", "2027-04-03T14:45:00Z"),
        ("2027-04-04T01:45:00+10:30", "2027-04-03T15:15:00Z"),
        ("2027-04-04T02:15:00+10:30", "2027-04-03T15:45:00Z"),
    ]),
    ("Australia/Lord_Howe", "15 2 * * *", "2026-10-03T12:00:00+10:30", [
        ("2026-10-04T02:30:00+11:00", "2026-10-03T15:30:00Z"),
        ("2026-10-05T02:15:00+11:00", "2026-10-04T15:15:00Z"),
    ]),
    ("Australia/Lord_Howe", "0 2 * * *", "2026-10-03T12:00:00+10:30", [
        ("2026-10-04T02:30:00+11:00", "2026-10-03T15:30:00Z"),
    ]),
    ("Australia/Lord_Howe", "*/30 * * * *", "2026-10-04T01:00:00+10:30", [
        ("2026-10-04T01:30:00+10:30", "2026-10-03T15:00:00Z"),
        ("2026-10-04T02:30:00+11:00", "2026-10-03T15:30:00Z"),
        ("2026-10-04T03:00:00+11:00", "2026-10-03T16:00:00Z"),
    ]),
    ("Australia/Lord_Howe", "15 * * * *", "2026-10-04T01:20:00+10:30", [
        ("2026-10-04T03:15:00+11:00", "2026-10-03T16:15:00Z"),
    ]),
    # UTC has no transitions: New York's change night is an ordinary night.
    ("UTC", "30 2 * * *", "2027-03-13T12:00:00+00:00", [
        ("2027-03-14T02:30:00+00:00", "2027-03-14T02:30:00Z"),
        ("2027-03-15T02:30:00+00:00", "2027-03-15T02:30:00Z"),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("zone", "expression", "after", "expected"), DST)
def test_dst_changes_follow_cronie(
    zone: str, expression: str, after: str, expected: list[Fire]
) -> None:
    fires = _fires(CronTrigger(expression, zone), after, len(expected))

    assert [(fire.isoformat(), _utc(fire)) for fire in fires] == expected
    assert all(fire.tzinfo is ZoneInfo(zone) for fire in fires)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# A whole local year, 2027: a fixed-time daily job runs once every local day, even on
# change nights; a periodic job runs once every real hour (or half hour).
YEARS = [
    ("America/New_York", "30 1 * * *", 365),
    ("America/New_York", "30 2 * * *", 365),
    ("America/New_York", "0 * * * *", 365 * 24),
    ("Europe/Berlin", "@daily", 365),
    ("Australia/Sydney", "30 2 * * *", 365),
    ("Australia/Lord_Howe", "15 2 * * *", 365),
    ("Australia/Lord_Howe", "*/30 * * * *", 365 * 48),
]


@pytest.mark.parametrize(("zone", "expression", "count"), YEARS)
def test_a_year_of_fires_is_strictly_increasing_without_repeats(
    zone: str, expression: str, count: int
) -> None:
    trigger = CronTrigger(expression, zone)
    fires: list[datetime] = []
    moment = datetime(2027, 1, 1, tzinfo=ZoneInfo(zone)) - timedelta(microseconds=1)
    while (fire := trigger.next_fire(moment)) is not None and fire.year == 2027:
        fires.append(fire)
        moment = fire

    instants = [fire.astimezone(UTC) for fire in fires]
    assert len(instants) == count
    assert all(a < b for a, b in pairwise(instants))
    if count == 365:
        assert len({fire.date() for fire in fires}) == 365


# An independent model of cronie: wake at every real minute; run a fixed-time job once
# for each local minute the wall clock has newly reached (so skipped minutes run at the
# jump and minutes the clock goes back over do not run again), and a periodic job when
# the current local minute matches.
Predicate = Callable[[datetime], bool]
CLOCK_WALK: list[tuple[str, bool, Predicate]] = [
    ("0 * * * *", False, lambda w: w.minute == 0),
    ("*/15 * * * *", False, lambda w: w.minute % 15 == 0),
    ("*/10 1,2 * * *", False, lambda w: w.minute % 10 == 0 and w.hour in (1, 2)),
    ("30 1 * * *", True, lambda w: (w.hour, w.minute) == (1, 30)),
    ("30 2 * * *", True, lambda w: (w.hour, w.minute) == (2, 30)),
    ("45 1 * * *", True, lambda w: (w.hour, w.minute) == (1, 45)),
    ("15 2 * * *", True, lambda w: (w.hour, w.minute) == (2, 15)),
    ("0,30 1-3 * * *", True, lambda w: w.minute in (0, 30) and 1 <= w.hour <= 3),
]
TRANSITIONS = [
    ("America/New_York", "2027-03-14T07:00"),
    ("America/New_York", "2027-11-07T06:00"),
    ("Europe/London", "2027-03-28T01:00"),
    ("Europe/London", "2027-10-31T01:00"),
    ("Europe/Berlin", "2027-10-31T01:00"),
    ("Australia/Sydney", "2027-04-03T16:00"),
    ("Australia/Sydney", "2027-10-02T16:00"),
    ("Australia/Lord_Howe", "2027-04-03T15:00"),
    ("Australia/Lord_Howe", "2026-10-03T15:30"),
]
_MINUTE = timedelta(minutes=1)


def _walk_the_clock(
    zone: ZoneInfo, fixed_time: bool, matches: Predicate, start: datetime, end: datetime
) -> list[datetime]:
    fires = []
    reached = start.astimezone(zone).replace(tzinfo=None)
    moment = start + _MINUTE
    while moment <= end:
        wall = moment.astimezone(zone).replace(tzinfo=None, fold=0)
        if not fixed_time:
            if matches(wall):
                fires.append(moment)
        elif wall > reached:
            passed = int((wall - reached) / _MINUTE)
            if any(matches(wall - k * _MINUTE) for k in range(passed)):
                fires.append(moment)
            reached = wall
        moment += _MINUTE
    return fires


@pytest.mark.parametrize(("zone_name", "change"), TRANSITIONS)
@pytest.mark.parametrize(("expression", "fixed_time", "matches"), CLOCK_WALK)
def test_every_minute_around_a_dst_change_agrees_with_a_walk_of_the_clock(
    zone_name: str, change: str, expression: str, fixed_time: bool, matches: Predicate
) -> None:
    zone = ZoneInfo(zone_name)
    middle = datetime.fromisoformat(change).replace(tzinfo=UTC)
    start, end = middle - timedelta(days=1), middle + timedelta(days=2)
    expected = _walk_the_clock(zone, fixed_time, matches, start, end)
    trigger = CronTrigger(expression, zone_name)

    probe = middle - timedelta(hours=3)
    while probe < middle + timedelta(hours=3):
        for after in (probe, probe + timedelta(seconds=29, microseconds=7)):
            fire = trigger.next_fire(after)
            assert fire is not None
            wanted = next(moment for moment in expected if moment > after)
            assert fire.astimezone(UTC) == wanted, f"after {after.astimezone(zone)}"
        probe += _MINUTE


EXPRESSIONS = ["30 1 * * *", "0 * * * *", "*/7 * * * *", "0,30 1-3 * * *", "15 2 * * SUN"]
ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Australia/Sydney"]


@settings(max_examples=300, deadline=None)
@given(
    expression=st.sampled_from(EXPRESSIONS),
    zone=st.sampled_from(ZONES),
    after=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
    fraction=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_nothing_fires_between_an_instant_and_its_next_fire(
    expression: str, zone: str, after: datetime, fraction: float
) -> None:
    trigger = CronTrigger(expression, zone)
    fire = trigger.next_fire(after)
    assert fire is not None
    assert fire.astimezone(UTC) > after

    span = (fire.astimezone(UTC) - after) // timedelta(microseconds=1)
    between = after + timedelta(microseconds=min(int(span * fraction), span - 1))
    assert _instant(trigger.next_fire(between)) == _instant(fire)
    # In UTC: arithmetic on an aware datetime is wall-clock arithmetic in its own zone.
    just_before = fire.astimezone(UTC) - timedelta(microseconds=1)
    assert _instant(trigger.next_fire(just_before)) == _instant(fire)


def _instant(moment: datetime | None) -> str | None:
    """The offset-bearing form: datetimes sharing a zone compare equal across a fold."""
    return None if moment is None else moment.isoformat()


# (expression, the message naming the field and value)
INVALID = [
    ("61 * * * *", "minute 61 is outside 0-59"),
    ("* 24 * * *", "hour 24 is outside 0-23"),
    ("* * 0 * *", "day-of-month 0 is outside 1-31"),
    ("* * 32 * *", "day-of-month 32 is outside 1-31"),
    ("* * * 13 *", "month 13 is outside 1-12"),
    ("* * * * 8", "day-of-week 8 is outside 0-7"),
    ("* * * * * 60", "second 60 is outside 0-59"),
    ("* * * JANUARY *", "month 'JANUARY' is not a number or a month name (JAN-DEC)"),
    ("* * * * FUN", "day-of-week 'FUN' is not a number or a day name (SUN-SAT)"),
    ("MON * * * *", "minute 'MON' is not a number"),
    ("0 0 L * *", "day-of-month 'L' is not a number"),
    ("0 0 * * 1#2", "day-of-week '1#2' is not a number or a day name (SUN-SAT)"),
    ("* * *", "expected 5 fields (or 6 with seconds), got 3"),
    ("* * * * * * *", "expected 5 fields (or 6 with seconds), got 7"),
    ("", "expected 5 fields (or 6 with seconds), got 0"),
    ("*/0 * * * *", "minute step 0 is outside 1-59"),
    ("*/90 * * * *", "minute step 90 is outside 1-59"),
    ("0 */24 * * *", "hour step 24 is outside 1-23"),
    ("*/x * * * *", "minute '*/x' has a step that is not a number"),
    ("5/15 * * * *", "minute '5/15': a step needs * or a range before it (e.g. 5-59/15)"),
    ("5-3 * * * *", "minute range '5-3' is backwards"),
    ("0 0 * * FRI-SUN", "day-of-week range 'FRI-SUN' is backwards (Sunday is also 7: FRI-7)"),
    ("1,,2 * * * *", "minute '1,,2' has an empty list item"),
    ("-5 * * * *", "minute '-5' is not a number or a range"),
    ("@fortnightly", "unknown cron alias '@fortnightly' (known: @yearly, @annually, "
     "@monthly, @weekly, @daily, @midnight, @hourly)"),
    ("0 0 30 2 *", "never fires: day-of-month 30 does not exist in month 2"),
    ("0 0 31 4 *", "never fires: day-of-month 31 does not exist in month 4"),
    ("0 0 31 4,6,9,11 *", "never fires: day-of-month 31 does not exist in month 4,6,9,11"),
    ("0 0 30 2 */2", "never fires: day-of-month 30 does not exist in month 2"),
]  # fmt: skip


@pytest.mark.parametrize(("expression", "message"), INVALID)
def test_an_invalid_expression_is_refused_naming_the_field(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        CronTrigger(expression)

    assert str(caught.value) == message


@pytest.mark.parametrize("zone", ["Mars/Base", "", "America", "../etc/passwd", "utc"])
def test_an_unknown_timezone_is_refused(zone: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        CronTrigger("0 0 * * *", zone)

    assert str(caught.value) == f"unknown timezone {zone!r}"


def test_schedule_error_is_a_gnomon_error_and_a_value_error() -> None:
    with pytest.raises(ScheduleError) as caught:
        CronTrigger("61 * * * *")

    assert isinstance(caught.value, GnomonError)
    assert isinstance(caught.value, ValueError)


def test_describe_names_the_expression_and_zone() -> None:
    trigger = CronTrigger("30 1 * * *", "America/New_York")

    assert trigger.describe() == "cron '30 1 * * *' in America/New_York"
    assert CronTrigger("@daily").describe() == "cron '@daily' in UTC"


def test_cron_triggers_are_frozen_values() -> None:
    trigger = CronTrigger("30 1 * * *", "America/New_York")

    assert trigger == CronTrigger("30 1 * * *", "America/New_York")
    assert trigger != CronTrigger("30 1 * * *", "Europe/London")
    assert len({trigger, CronTrigger("30 1 * * *", "America/New_York")}) == 1
    assert isinstance(trigger, Trigger)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trigger.expression = "0 0 * * *"  # type: ignore[misc]


def test_fires_are_in_the_trigger_zone_whatever_zone_after_is_in() -> None:
    trigger = CronTrigger("0 9 * * *", "Europe/Berlin")

    fire = trigger.next_fire(datetime(2027, 6, 1, 3, 0, tzinfo=ZoneInfo("America/New_York")))

    assert fire is not None
    assert fire.isoformat() == "2027-06-02T09:00:00+02:00"


def test_a_naive_instant_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="naive"):
        CronTrigger("0 0 * * *").next_fire(datetime(2027, 1, 1))


def test_the_search_ends_at_the_end_of_the_calendar() -> None:
    trigger = CronTrigger("0 0 * * *", "America/New_York")
    last = datetime(9999, 12, 31, 0, 0, tzinfo=ZoneInfo("America/New_York"))

    assert trigger.next_fire(last - timedelta(days=1)) == last
    assert trigger.next_fire(last) is None
    assert CronTrigger("0 0 29 2 *").next_fire(datetime(9996, 3, 1, tzinfo=UTC)) is None


def test_triggers_sharing_an_expression_share_searches_but_never_across_zones() -> None:
    # Next fires are remembered per (expression, zone, moment): a fleet asks thousands of
    # identical triggers for the same answer at start-up.
    after = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    utc, utc_again = CronTrigger("0 3 * * *"), CronTrigger("0 3 * * *")
    tokyo = CronTrigger("0 3 * * *", timezone="Asia/Tokyo")

    assert utc.next_fire(after) == utc_again.next_fire(after) == datetime(2027, 3, 2, 3, tzinfo=UTC)
    assert tokyo.next_fire(after) == datetime(2027, 3, 1, 18, tzinfo=UTC)  # 03:00 JST
    # The same instant given in another zone is the same question.
    assert utc.next_fire(after.astimezone(ZoneInfo("America/New_York"))) == utc.next_fire(after)
