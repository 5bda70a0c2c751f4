"""Calendars and maintenance windows as schedules see them: literal-date tables of the fires
a calendar leaves out (DST zones, a country's and a subdivision's holidays, ranges, include
and exclude combined), the reasons given, and the config's problems (unknown names,
countries, subdivisions, bad dates, cycles) named by file, entry, field and value."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnomon.deployments import load_config, stored_schedule
from gnomon.scheduling import (
    Blocked,
    BlockKind,
    Calendar,
    Exclusions,
    MaintenanceWindow,
    Schedule,
    ScheduleError,
)

US = Calendar("us-holidays", country="US")
US_CA = Calendar("ca-holidays", country="US", subdiv="CA")
BAVARIA = Calendar("by-holidays", country="DE", subdiv="BY")
WEEKDAYS = Calendar("weekdays", weekdays=frozenset(range(5)))
BUSINESS = Calendar("business-days", weekdays=frozenset(range(5)), exclude=(US,))
FREEZE = Calendar(
    "freeze", ranges=((date(2026, 12, 21), date(2027, 1, 3)),), dates=frozenset({date(2027, 1, 8)})
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def daily(at: str, zone: str, **exclusions: tuple[Calendar, ...]) -> Schedule:
    minute, hour = at.split(":")[1], at.split(":", maxsplit=1)[0]
    schedule = Schedule.single("d", "cron", f"{int(minute)} {int(hour)} * * *", zone)
    return dataclasses.replace(schedule, exclusions=Exclusions(zone, **exclusions))


def firing_days(schedule: Schedule, after: str, count: int) -> list[str]:
    """The next fires as the local dates and times in the schedule's zone."""
    zone = schedule.exclusions.zone
    fires = schedule.next_fires(utc(after), count)
    from zoneinfo import ZoneInfo

    return [fire.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") for fire in fires]


@pytest.mark.parametrize(
    ("calendar", "day", "inside"),
    [
        # The United States' federal holidays of 2026, and days that are none.
        (US, date(2026, 1, 1), True),
        (US, date(2026, 7, 3), True),  # Independence Day observed (the 4th is a Saturday)
        (US, date(2026, 11, 26), True),  # Thanksgiving
        (US, date(2026, 11, 27), False),  # the day after is not federal
        (US, date(2026, 3, 31), False),  # Cesar Chavez Day is California's
        (US_CA, date(2026, 3, 31), True),
        (US_CA, date(2026, 11, 27), True),  # and the day after Thanksgiving is too
        # Bavaria's own: Epiphany and Corpus Christi; Reformation Day is not Bavaria's.
        (BAVARIA, date(2026, 1, 6), True),
        (BAVARIA, date(2026, 6, 4), True),
        (BAVARIA, date(2026, 10, 31), False),
        # Weekdays, and weekdays but the holidays.
        (WEEKDAYS, date(2026, 12, 25), True),
        (BUSINESS, date(2026, 12, 25), False),  # Christmas, a Friday
        (BUSINESS, date(2026, 12, 24), True),
        (BUSINESS, date(2026, 12, 26), False),  # a Saturday
        # A range holds both ends; an extra date; the day after the range is out.
        (FREEZE, date(2026, 12, 21), True),
        (FREEZE, date(2027, 1, 3), True),
        (FREEZE, date(2027, 1, 4), False),
        (FREEZE, date(2027, 1, 8), True),
        # Only `exclude`: every day but those.
        (Calendar("not-us", exclude=(US,)), date(2026, 12, 25), False),
        (Calendar("not-us", exclude=(US,)), date(2026, 12, 26), True),
        # Include and exclude combined: the freeze and the holidays, less weekends.
        (
            Calendar(
                "quiet", include=(FREEZE, US), exclude=(Calendar("we", weekdays=frozenset({5, 6})),)
            ),
            date(2026, 12, 27),  # a Sunday inside the freeze
            False,
        ),
        (
            Calendar(
                "quiet", include=(FREEZE, US), exclude=(Calendar("we", weekdays=frozenset({5, 6})),)
            ),
            date(2026, 11, 26),
            True,
        ),
    ],
)
def test_a_calendar_holds_its_dates_ranges_weekdays_and_holidays(
    calendar: Calendar, day: date, inside: bool
) -> None:
    assert calendar.contains(day) is inside


def test_only_business_days_in_new_york_skip_weekends_and_christmas() -> None:
    schedule = daily("09:00", "America/New_York", only=(BUSINESS,))
    assert firing_days(schedule, "2026-12-23T00:00:00+00:00", 5) == [
        "2026-12-23 09:00",
        "2026-12-24 09:00",
        # 25 Christmas, 26-27 a weekend
        "2026-12-28 09:00",
        "2026-12-29 09:00",
        "2026-12-30 09:00",
    ]


def test_a_calendar_s_days_are_days_in_the_deployment_s_zone() -> None:
    """00:30 in Tokyo on 2026-12-25 is 15:30 UTC on the 24th: the Tokyo day counts."""
    christmas = Calendar("xmas", dates=frozenset({date(2026, 12, 25)}))
    tokyo = daily("00:30", "Asia/Tokyo", exclude=(christmas,))
    assert firing_days(tokyo, "2026-12-23T00:00:00+00:00", 3) == [
        "2026-12-24 00:30",
        "2026-12-26 00:30",
        "2026-12-27 00:30",
    ]
    in_utc = dataclasses.replace(tokyo, exclusions=Exclusions("UTC", exclude=(christmas,)))
    # Read in UTC, the fire of 15:30 UTC on the 24th would run, the 25th's not.
    assert [f.isoformat() for f in in_utc.next_fires(utc("2026-12-23T16:00:00+00:00"), 2)] == [
        "2026-12-24T15:30:00+00:00",
        "2026-12-26T15:30:00+00:00",
    ]


@pytest.mark.parametrize(
    ("zone", "excluded", "after", "expected"),
    [
        # Spring forward in Berlin (2026-03-29, 02:00 -> 03:00): excluding the 28th, the
        # hourly fires resume at the 29th's first hour; the 02:00 hour does not exist.
        (
            "Europe/Berlin",
            date(2026, 3, 28),
            "2026-03-27T22:30:00+00:00",
            ["2026-03-29 00:00", "2026-03-29 01:00", "2026-03-29 03:00"],
        ),
        # Fall back in New York (2026-11-01, 02:00 -> 01:00): the excluded day is 25 hours
        # long, and none of its hours fire, the repeated one neither.
        (
            "America/New_York",
            date(2026, 11, 1),
            "2026-11-01T03:00:00+00:00",
            ["2026-11-02 00:00", "2026-11-02 01:00", "2026-11-02 02:00"],
        ),
        # Santiago springs forward at midnight (2026-09-06 00:00 -> 01:00): the day after
        # an excluded 5th starts at 01:00.
        (
            "America/Santiago",
            date(2026, 9, 5),
            "2026-09-05T03:30:00+00:00",
            ["2026-09-06 01:00", "2026-09-06 02:00", "2026-09-06 03:00"],
        ),
    ],
)
def test_an_excluded_day_in_a_dst_zone_is_the_local_day(
    zone: str, excluded: date, after: str, expected: list[str]
) -> None:
    hourly = Schedule.single("d", "cron", "0 * * * *", zone)
    day = Calendar("day", dates=frozenset({excluded}))
    schedule = dataclasses.replace(hourly, exclusions=Exclusions(zone, exclude=(day,)))
    assert firing_days(schedule, after, 3) == expected


def test_an_every_second_schedule_skips_an_excluded_day_at_once() -> None:
    every = Schedule.single("d", "interval", "1s", None, datetime(2026, 1, 1, tzinfo=UTC))
    today = Calendar("today", dates=frozenset({date(2026, 12, 7)}))
    schedule = dataclasses.replace(every, exclusions=Exclusions("UTC", exclude=(today,)))
    assert schedule.next_fire(utc("2026-12-06T23:59:58+00:00")) == utc("2026-12-06T23:59:59Z")
    assert schedule.next_fire(utc("2026-12-06T23:59:59+00:00")) == utc("2026-12-08T00:00:00Z")


def test_a_calendar_that_excludes_every_day_for_years_ends_the_schedule() -> None:
    long_ago = Calendar("long-ago", dates=frozenset({date(2001, 1, 1)}))
    schedule = daily("09:00", "UTC", only=(long_ago,))
    assert schedule.next_fire(utc("2026-01-01T00:00:00+00:00")) is None


def test_a_day_an_only_calendar_leaves_out_by_its_exclude_names_that_calendar() -> None:
    """business-days = weekdays but us-holidays: its Christmas is told as the holiday."""
    holidays = Calendar("us-holidays", country="US")
    weekdays = frozenset(range(5))
    business = Calendar("business-days", weekdays=weekdays, exclude=(holidays,))
    schedule = daily("06:00", "UTC", only=(business,))
    upcoming = list(itertools.islice(schedule.upcoming(utc("2026-12-24T07:00:00+00:00")), 2))

    assert [(f.isoformat(), b.reason if b else None) for f, _, b in upcoming] == [
        (
            "2026-12-25T06:00:00+00:00",
            "2026-12-25 is not in calendar 'business-days'"
            " (its exclude 'us-holidays' has it: Christmas Day)",
        ),
        ("2026-12-26T06:00:00+00:00", "2026-12-26 is not in calendar 'business-days'"),
    ]


def test_maintenance_windows_skip_fires_inside_and_fire_at_their_end() -> None:
    every = Schedule.single("d", "cron", "*/15 * * * *", "UTC")
    window = MaintenanceWindow(
        utc("2026-12-08T01:00:00+00:00"), utc("2026-12-08T02:00:00+00:00"), "upgrade", key="7"
    )
    schedule = every.with_windows([window])
    assert [f.isoformat() for f in schedule.next_fires(utc("2026-12-08T00:40:00+00:00"), 3)] == [
        "2026-12-08T00:45:00+00:00",
        "2026-12-08T02:00:00+00:00",  # [start, end): the end's fire runs
        "2026-12-08T02:15:00+00:00",
    ]
    upcoming = list(itertools.islice(schedule.upcoming(utc("2026-12-08T00:50:00+00:00")), 2))
    assert upcoming[0][2] == Blocked(
        BlockKind.MAINTENANCE,
        "7",
        "maintenance 2026-12-08T01:00:00+00:00 to 2026-12-08T02:00:00+00:00 (upgrade)",
    )
    assert upcoming[1][2] is not None  # 01:15, inside too


def test_a_window_ending_on_an_excluded_day_moves_on_past_both() -> None:
    sunday = Calendar("sunday", weekdays=frozenset({6}))
    schedule = daily("06:00", "UTC", exclude=(sunday,)).with_windows(
        [MaintenanceWindow(utc("2026-12-11T12:00:00+00:00"), utc("2026-12-13T03:00:00+00:00"))]
    )
    # Sat 12th inside the window, Sun 13th excluded: Monday.
    assert schedule.next_fire(utc("2026-12-11T07:00:00+00:00")) == utc("2026-12-14T06:00:00Z")


def test_windows_apply_to_their_deployments_or_tags_or_everyone() -> None:
    start, end = utc("2026-12-08T01:00:00+00:00"), utc("2026-12-08T02:00:00+00:00")
    assert MaintenanceWindow(start, end).applies_to("any", ())
    assert MaintenanceWindow(start, end, deployments=("a",)).applies_to("a", ())
    assert not MaintenanceWindow(start, end, deployments=("a",)).applies_to("b", ("x",))
    assert MaintenanceWindow(start, end, tags=("x",)).applies_to("b", ("x", "y"))
    with pytest.raises(ScheduleError, match="is not after start"):
        MaintenanceWindow(end, start)


@settings(max_examples=60, deadline=None)
@given(
    days=st.sets(st.integers(0, 60), max_size=40),
    start=st.integers(0, 30),
)
def test_no_fire_falls_on_an_excluded_day_and_none_allowed_is_skipped(
    days: set[int], start: int
) -> None:
    base = date(2026, 10, 1)
    excluded = frozenset(base + timedelta(days=n) for n in days)
    hourly = Schedule.single("d", "cron", "0 */5 * * *", "Europe/London")
    schedule = dataclasses.replace(
        hourly,
        exclusions=Exclusions("Europe/London", exclude=(Calendar("c", dates=excluded),)),
    )
    after = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(days=start)
    until = datetime(2026, 12, 15, tzinfo=UTC)
    plain = [f for f in hourly.next_fires(after, 400) if f < until]
    kept = [f for f in schedule.next_fires(after, 400) if f < until]
    london = Exclusions("Europe/London").zone
    from zoneinfo import ZoneInfo

    assert kept == [f for f in plain if f.astimezone(ZoneInfo(london)).date() not in excluded]


# The config.


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "flows.py").write_text("from gnomon import flow\n@flow\ndef f():\n    pass\n")
    path = tmp_path / "gnomon.toml"
    path.write_text(text)
    return path


DEPLOYMENT = """
[[deployments]]
name = "{name}"
flow = "flows.py:f"
cron = "0 9 * * *"
timezone = "America/New_York"
{extra}
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    result = load_config(write(tmp_path, text), check_flows=False)
    return [str(problem) for problem in result.problems]


@pytest.mark.parametrize(
    ("calendar", "expected"),
    [
        (
            'country = "XX"',
            "gnomon.toml: calendar \"c\": country 'XX': no public holidays known for it",
        ),
        (
            'country = "US"\nsubdiv = "ZZ"',
            "gnomon.toml: calendar \"c\": subdiv 'ZZ': US has no such subdivision",
        ),
        (
            'dates = ["2026-12-24"]',
            'gnomon.toml: calendar "c": dates.0 "2026-12-24": must be a TOML date',
        ),
        (
            "ranges = [{start = 2026-12-24, end = 2026-12-20}]",
            'gnomon.toml: calendar "c": ranges.0 {"start": "2026-12-24", "end": "2026-12-20"}:'
            " the range 2026-12-24 to 2026-12-20 ends before it starts",
        ),
        (
            'weekdays = ["mon", "funday"]',
            'gnomon.toml: calendar "c": weekdays.1 "funday": is not one of mon, tue',
        ),
        (
            'include = ["nope"]',
            'gnomon.toml: calendar "c": include "nope": no [[calendars]] entry has this name',
        ),
    ],
)
def test_a_bad_calendar_is_named_and_only_its_deployment_is_left_out(
    tmp_path: Path, calendar: str, expected: str
) -> None:
    text = f'[[calendars]]\nname = "c"\n{calendar}\n'
    text += DEPLOYMENT.format(name="uses", extra='exclude = ["c"]')
    text += DEPLOYMENT.format(name="other", extra="")
    result = load_config(write(tmp_path, text), check_flows=False)
    shown = [str(problem) for problem in result.problems]
    assert shown[0].startswith(expected), shown
    assert shown[-1] == (
        'gnomon.toml: deployment "uses": exclude.0 "c": this calendar has problems'
        " (see its [[calendars]] entry)"
    )
    assert all(problem.confined for problem in result.problems)
    assert [d.name for d in result.config.deployments] == ["other"]
    assert result.failed == {"uses"}


def test_calendar_names_not_in_a_list_are_told_to_be_one(tmp_path: Path) -> None:
    text = '[[calendars]]\nname = "c"\nweekdays = "mon"\n'
    text += DEPLOYMENT.format(name="uses", extra='exclude = "c"')

    assert problems(tmp_path, text) == [
        'gnomon.toml: calendar "c": weekdays "mon": must be a list, like ["a", "b"]',
        'gnomon.toml: deployment "uses": exclude "c": must be a list, like ["a", "b"]',
    ]


def test_a_cycle_of_calendars_is_named(tmp_path: Path) -> None:
    text = """
[[calendars]]
name = "a"
include = ["b"]
[[calendars]]
name = "b"
exclude = ["c"]
[[calendars]]
name = "c"
include = ["a"]
[[calendars]]
name = "fine"
dates = [2026-12-24]
"""
    text += DEPLOYMENT.format(name="d", extra='only = ["fine"]')
    assert problems(tmp_path, text) == [
        'gnomon.toml: calendar "c": include "a": cycle: a -> b -> c -> a',
        'gnomon.toml: calendar "b": exclude "c": calendar \'c\' has problems (see its entry)',
        'gnomon.toml: calendar "a": include "b": calendar \'b\' has problems (see its entry)',
    ]


def test_a_calendar_needs_a_name_and_one_name_is_one_calendar(tmp_path: Path) -> None:
    text = "[[calendars]]\ndates = [2026-12-24]\n"
    text += '[[calendars]]\nname = "a"\n[[calendars]]\nname = "a"\n'
    assert problems(tmp_path, text) == [
        'gnomon.toml: calendar "a": another [[calendars]] entry has this name',
        'gnomon.toml: calendar "calendars[0]": name: required key is missing',
    ]


def test_an_unknown_calendar_name_on_a_deployment_lists_the_known(tmp_path: Path) -> None:
    text = '[[calendars]]\nname = "us"\ncountry = "US"\n'
    text += DEPLOYMENT.format(name="d", extra='exclude = ["us", "uk"]')
    assert problems(tmp_path, text) == [
        'gnomon.toml: deployment "d": exclude.1 "uk": no [[calendars]] entry has this name'
        " (known: 'us')"
    ]


def test_the_stored_schedule_keeps_the_calendars_in_full(tmp_path: Path) -> None:
    """`deployments next` reads the store: the calendars travel in the schedule's document."""
    text = """
[[calendars]]
name = "us"
country = "US"
[[calendars]]
name = "business-days"
weekdays = ["monday", "tue", "wed", "thu", "fri"]
exclude = ["us"]
"""
    text += DEPLOYMENT.format(name="d", extra='only = ["business-days"]')
    result = load_config(write(tmp_path, text), check_flows=False)
    (deployment,) = result.config.deployments
    timing = deployment.timing()
    assert timing.describe() == "At 09:00 (only on business-days)"
    document = deployment.schedule_document()
    assert document is not None
    assert document["only"] == [
        {
            "name": "business-days",
            "weekdays": ["mon", "tue", "wed", "thu", "fri"],
            "exclude": [{"name": "us", "country": "US"}],
        }
    ]
    rebuilt = Schedule.from_document("d", document, "America/New_York")
    after = utc("2026-12-20T00:00:00+00:00")
    assert rebuilt.next_fires(after, 6) == timing.next_fires(after, 6)
    assert stored_schedule  # the store's path is exercised by test_calendars_daemon


def test_maintenance_entries_read_their_zone_and_name_their_problems(tmp_path: Path) -> None:
    text = """
[daemon]
timezone = "Europe/Berlin"
[[maintenance]]
start = 2026-12-08T01:00:00
end = 2026-12-08T03:00:00
tags = ["warehouse"]
reason = "database upgrade"
[[maintenance]]
name = "ny"
start = 2026-12-08T01:00:00
end = 2026-12-08T03:00:00
timezone = "America/New_York"
[[maintenance]]
name = "backwards"
start = 2026-12-08T03:00:00Z
end = 2026-12-08T01:00:00Z
[[maintenance]]
name = "typo"
start = 2026-12-08T01:00:00Z
end = 2026-12-08T03:00:00Z
deployments = ["nope"]
"""
    text += DEPLOYMENT.format(name="d", extra="")
    result = load_config(write(tmp_path, text), check_flows=False)
    assert [str(p) for p in result.problems] == [
        'gnomon.toml: maintenance "backwards": end "2026-12-08 01:00:00+00:00": end'
        " 2026-12-08T01:00:00+00:00 is not after start 2026-12-08T03:00:00+00:00",
        'gnomon.toml: maintenance "typo": deployments "nope": no deployment has this name',
    ]
    assert not any(problem.confined for problem in result.problems)
    first, ny = result.config.maintenance
    assert (first.key, first.start, first.end) == (
        "maintenance-1",
        utc("2026-12-08T00:00:00+00:00"),
        utc("2026-12-08T02:00:00+00:00"),
    )
    assert (ny.start, ny.tags, ny.reason) == (utc("2026-12-08T06:00:00+00:00"), (), None)
