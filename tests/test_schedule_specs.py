"""Several schedule specs per deployment: their union of fire times (a time two specs give
fires once, as the first listed's), rrules, active_from / active_until, as literal-date
tables and hypothesis properties; the same schedule from the config and from the store."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO
from gnomon.deployments import deployments_toml, load_config, stored_schedule, sync_deployments
from gnomon.deployments._specs import check_rrule
from gnomon.scheduling import (
    Dst,
    RRuleTrigger,
    Schedule,
    ScheduleError,
    ScheduleKind,
    ScheduleSpec,
    Window,
)

NEW_YORK = ZoneInfo("America/New_York")
ANCHOR = datetime(2026, 1, 1, 15, tzinfo=UTC)  # 10:00 in New York: rrules start at 00:00
BUSINESS_DAY_4 = "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=4"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def cron(expression: str, zone: str = "UTC", **options: object) -> ScheduleSpec:
    return ScheduleSpec(ScheduleKind.CRON, expression, zone, **options)  # type: ignore[arg-type]


def interval(every: str, anchor: datetime = ANCHOR, **options: object) -> ScheduleSpec:
    return ScheduleSpec(ScheduleKind.INTERVAL, every, "UTC", anchor, **options)  # type: ignore[arg-type]


def rrule(text: str, zone: str = "UTC", **options: object) -> ScheduleSpec:
    return ScheduleSpec(ScheduleKind.RRULE, text, zone, ANCHOR, **options)  # type: ignore[arg-type]


def fires(schedule: Schedule, after: str, count: int) -> list[tuple[str, int]]:
    """The next fires as (UTC ISO text, the index of the spec each is of)."""
    return [
        (due.isoformat().replace("+00:00", "Z"), index)
        for due, index in schedule.next_fires_by_spec(utc(after), count)
    ]


# The 4th business day (Mon-Fri; holidays are calendars' business) of each month of 2026
# and 2027, counted by hand from each month's first weekday.
FOURTH_BUSINESS_DAYS = [
    "2026-01-06", "2026-02-05", "2026-03-05", "2026-04-06", "2026-05-06", "2026-06-04",
    "2026-07-06", "2026-08-06", "2026-09-04", "2026-10-06", "2026-11-05", "2026-12-04",
    "2027-01-06", "2027-02-04", "2027-03-04", "2027-04-06", "2027-05-06", "2027-06-04",
    "2027-07-06", "2027-08-05", "2027-09-06", "2027-10-06", "2027-11-04", "2027-12-06",
]  # fmt: skip


def test_the_4th_business_day_rrule_fires_on_these_days_of_2026_and_2027_at_midnight() -> None:
    schedule = Schedule("close", (rrule(BUSINESS_DAY_4, "America/New_York"),))
    found = schedule.next_fires(utc("2025-12-31T00:00:00Z"), 24)

    assert [fire.astimezone(NEW_YORK).date().isoformat() for fire in found] == FOURTH_BUSINESS_DAYS
    # Midnight in New York: no DTSTART, so the rule starts at midnight of the anchor's day.
    assert {fire.astimezone(NEW_YORK).time().isoformat() for fire in found} == {"00:00:00"}
    assert schedule.describe() == "Every month on the 4th of Mon-Fri at 00:00"
    assert schedule.written == f"rrule {BUSINESS_DAY_4}"


# (rrule, zone, after, the next fires in UTC, whether the rule ends after them)
RRULES = [
    # A DTSTART is honoured: a wall time in the deployment's zone...
    ("DTSTART:20260105T093000\nRRULE:FREQ=WEEKLY;BYDAY=MO,TH", "America/New_York",
     "2026-01-01T00:00:00Z",
     ["2026-01-05T14:30:00Z", "2026-01-08T14:30:00Z", "2026-01-12T14:30:00Z"], False),
    # ... or an instant (Z, TZID), read on the deployment's wall clock: 09:00 UTC is 04:00.
    ("DTSTART:20260105T090000Z RRULE:FREQ=DAILY;COUNT=2", "America/New_York",
     "2026-01-01T00:00:00Z", ["2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z"], True),
    ("DTSTART;TZID=Europe/Paris:20260105T100000 RRULE:FREQ=DAILY;COUNT=1", "UTC",
     "2026-01-01T00:00:00Z", ["2026-01-05T09:00:00Z"], True),
    # Without DTSTART, times of day default to midnight; UNTIL (in UTC) ends the rule.
    ("FREQ=DAILY;UNTIL=20260103T120000Z", "America/New_York", "2026-01-01T00:00:00Z",
     ["2026-01-01T05:00:00Z", "2026-01-02T05:00:00Z", "2026-01-03T05:00:00Z"], True),
    # An hourly rule counts its INTERVAL from that midnight (in UTC here).
    ("FREQ=HOURLY;INTERVAL=5;BYMINUTE=15", "UTC", "2026-03-02T06:00:00Z",
     ["2026-03-02T10:15:00Z", "2026-03-02T15:15:00Z", "2026-03-02T20:15:00Z"], False),
    # The last Friday of the month, and the 1st and 15th.
    ("FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17", "UTC", "2026-01-01T00:00:00Z",
     ["2026-01-30T17:00:00Z", "2026-02-27T17:00:00Z", "2026-03-27T17:00:00Z"], False),
    ("FREQ=MONTHLY;BYMONTHDAY=1,15;BYHOUR=6", "Europe/London", "2026-03-10T00:00:00Z",
     ["2026-03-15T06:00:00Z", "2026-04-01T05:00:00Z", "2026-04-15T05:00:00Z"], False),
    # Leap days only: 2028 and 2032.
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "UTC", "2026-01-01T00:00:00Z",
     ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"], False),
]  # fmt: skip


@pytest.mark.parametrize(("text", "zone", "after", "expected", "ends"), RRULES)
def test_rrules_fire_at_these_times(
    text: str, zone: str, after: str, expected: list[str], ends: bool
) -> None:
    schedule = Schedule("r", (rrule(text, zone),))
    found = schedule.next_fires(utc(after), len(expected))
    assert [fire.isoformat().replace("+00:00", "Z") for fire in found] == expected
    assert (schedule.next_fire(found[-1]) is None) == ends  # an ended rule ends its spec


def test_a_secondly_rrule_registered_long_ago_finds_its_next_fire_near_the_asked_time() -> None:
    """The search starts near ``after``, not at the rule's start (a year of seconds)."""
    trigger = RRuleTrigger("FREQ=SECONDLY;INTERVAL=7", "UTC", ANCHOR)
    after = utc("2027-06-01T12:00:00Z")
    fire = trigger.next_fire(after)
    assert fire is not None
    assert (fire - datetime(2026, 1, 1, tzinfo=UTC)).total_seconds() % 7 == 0
    assert timedelta(0) < fire - after <= timedelta(seconds=7)


# (rrule, what the error says)
BAD_RRULES = [
    ("FREQ=SOMETIMES", "FREQ='SOMETIMES': FREQ must be one of YEARLY, MONTHLY, WEEKLY"),
    ("BYDAY=MO", "no FREQ: FREQ must be one of"),
    ("FREQ=DAILY;BYHOUR=25", "hour must be in 0..23"),
    ("FREQ=DAILY;FOO=1", "unknown parameter 'FOO'"),
    ("FREQ=DAILY;INTERVAL=0", "INTERVAL=0 must be a whole number at least 1"),
    ("FREQ=DAILY;COUNT=2;UNTIL=20270101T000000Z", "has both COUNT and UNTIL"),
    ("FREQ=DAILY;COUNT=100000", "COUNT=100000 must be a whole number from 1 to 10,000"),
    ("RRULE:FREQ=DAILY\nEXDATE:20260105T000000", "EXDATE is not supported"),
    ("RRULE:FREQ=DAILY\nRRULE:FREQ=WEEKLY", "must have exactly one RRULE"),
    ("DTSTART;TZID=Mars/Base:20260101T090000 RRULE:FREQ=DAILY", "unknown timezone 'Mars/Base'"),
    ("FREQ=DAILY;BYEASTER=0", "BYEASTER is dateutil's"),
    ("FREQ=MONTHLY", "FREQ=MONTHLY without DTSTART must name its days"),
    ("FREQ=YEARLY;BYMONTH=3", "FREQ=YEARLY without DTSTART must name its days"),
    ("hello", "'hello' is not a DTSTART or an RRULE"),
]


@pytest.mark.parametrize(("text", "message"), BAD_RRULES)
def test_a_bad_rrule_is_refused_saying_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match="rrule .*" + re.escape(message)):
        rrule(text)


NEVER = [
    "FREQ=MONTHLY;BYMONTH=4;BYMONTHDAY=31",
    "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
    "FREQ=DAILY;BYHOUR=1;BYSETPOS=2",
]


@pytest.mark.parametrize("text", NEVER)
def test_an_rrule_that_never_fires_is_refused_by_the_config_and_built_as_over(text: str) -> None:
    """The config's check refuses it; a spec built from it (a store row's) has no fires."""
    with pytest.raises(ValueError, match="never fires: no date matches the rule"):
        check_rrule(text)
    assert rrule(text).next_fire(ANCHOR) is None


# Union tables: (the specs, after, [(fire, index of the spec it is the fire of)]).
ANCHOR_0900 = datetime(2027, 1, 1, 9, tzinfo=UTC)
UNIONS = [
    # 09:00 is both specs' fire: once, as the first listed's.
    ([cron("0 9 * * *"), interval("12h", ANCHOR_0900)], "2027-01-01T08:00:00Z", [
        ("2027-01-01T09:00:00Z", 0), ("2027-01-01T21:00:00Z", 1),
        ("2027-01-02T09:00:00Z", 0), ("2027-01-02T21:00:00Z", 1),
    ]),
    # Listed the other way round, the interval gives 09:00.
    ([interval("12h", ANCHOR_0900), cron("0 9 * * *")], "2027-01-01T08:00:00Z", [
        ("2027-01-01T09:00:00Z", 0), ("2027-01-01T21:00:00Z", 0), ("2027-01-02T09:00:00Z", 0),
    ]),
    # A cron, an rrule and an interval: 4 January 2027 is both a Monday 06:00 and the
    # rrule's 2nd business day at 06:00 (listed first).
    ([rrule("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=2;BYHOUR=6"), cron("0 6 * * MON"),
      interval("3d", ANCHOR_0900)], "2027-01-01T00:00:00Z", [
        ("2027-01-01T09:00:00Z", 2), ("2027-01-04T06:00:00Z", 0),
        ("2027-01-04T09:00:00Z", 2), ("2027-01-07T09:00:00Z", 2),
        ("2027-01-10T09:00:00Z", 2), ("2027-01-11T06:00:00Z", 1),
    ]),
    # Two crons in different hours of one day.
    ([cron("0 6 * * *"), cron("30 18 * * 1-5")], "2027-01-08T12:00:00Z", [
        ("2027-01-08T18:30:00Z", 1), ("2027-01-09T06:00:00Z", 0),
        ("2027-01-10T06:00:00Z", 0), ("2027-01-11T06:00:00Z", 0),
        ("2027-01-11T18:30:00Z", 1),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("specs", "after", "expected"), UNIONS)
def test_specs_fire_at_the_union_of_their_times_a_shared_time_once_as_the_first_listeds(
    specs: list[ScheduleSpec], after: str, expected: list[tuple[str, int]]
) -> None:
    schedule = Schedule("u", tuple(specs))
    assert fires(schedule, after, len(expected)) == expected
    for text, index in expected:
        assert schedule.spec_at(utc(text)) == index


def test_a_fire_gets_the_parameters_of_the_spec_it_is_the_fire_of() -> None:
    schedule = Schedule(
        "report",
        (
            cron("0 6 * * *", parameters={"mode": "full"}),
            interval("6h", datetime(2027, 1, 1, tzinfo=UTC), parameters={"mode": "quick"}),
            cron("0 12 * * *"),
        ),
    )
    assert dict(schedule.parameters_at(utc("2027-01-02T06:00:00Z"))) == {"mode": "full"}
    assert dict(schedule.parameters_at(utc("2027-01-02T00:00:00Z"))) == {"mode": "quick"}
    assert dict(schedule.parameters_at(utc("2027-01-02T12:00:00Z"))) == {"mode": "quick"}
    assert dict(schedule.parameters_at(utc("2027-01-02T07:00:00Z"))) == {}  # no fire
    assert schedule.spec_at(utc("2027-01-02T07:00:00Z")) is None


def test_specs_differing_only_in_their_parameters_make_different_schedules() -> None:
    one = Schedule("a", (cron("0 6 * * *", parameters={"mode": "full"}),))
    assert one == Schedule("a", (cron("0 6 * * *", parameters={"mode": "full"}),))
    assert one != Schedule("a", (cron("0 6 * * *", parameters={"mode": "quick"}),))
    assert hash(one) == hash(Schedule("a", (cron("0 6 * * *", parameters={"mode": "full"}),)))


# Bounds: (the deployment's window, the spec's, the zone, after, the fires in UTC).
BOUNDS = [
    # A date bound is a whole day in the zone: from its midnight, until its end.
    (("2027-03-02", "2027-03-04"), (None, None), "America/New_York", "2027-03-01T00:00:00Z",
     ["2027-03-02T11:00:00Z", "2027-03-03T11:00:00Z", "2027-03-04T11:00:00Z"]),
    # A date and time bound is included: 06:00 fires, nothing after it.
    ((None, "2027-03-03T06:00:00"), (None, None), "America/New_York", "2027-03-01T00:00:00Z",
     ["2027-03-01T11:00:00Z", "2027-03-02T11:00:00Z", "2027-03-03T11:00:00Z"]),
    ((None, "2027-03-03T05:59:59"), (None, None), "America/New_York", "2027-03-01T00:00:00Z",
     ["2027-03-01T11:00:00Z", "2027-03-02T11:00:00Z"]),
    # With an offset, an instant; a spec's own window narrows the deployment's.
    (("2027-03-01T11:00:01+00:00", None), (None, "2027-03-04"), "America/New_York",
     "2027-02-01T00:00:00Z",
     ["2027-03-02T11:00:00Z", "2027-03-03T11:00:00Z", "2027-03-04T11:00:00Z"]),
]  # fmt: skip


@pytest.mark.parametrize(("window", "own", "zone", "after", "expected"), BOUNDS)
def test_no_fire_falls_outside_active_from_and_active_until(
    window: tuple[str | None, str | None],
    own: tuple[str | None, str | None],
    zone: str,
    after: str,
    expected: list[str],
) -> None:
    spec = cron("0 6 * * *", zone, window=Window.of(*own, zone))
    schedule = Schedule("bounded", (spec,), window=Window.of(*window, zone))
    found = [fire.isoformat().replace("+00:00", "Z") for fire in schedule.next_fires(utc(after), 9)]
    assert found == expected
    assert schedule.next_fire(utc(expected[-1])) is None  # past the end: it never fires again


def test_each_spec_keeps_its_own_window_in_a_union() -> None:
    zone = "UTC"
    schedule = Schedule(
        "seasons",
        (
            cron("0 6 * * *", zone, window=Window.of(None, "2027-03-02", zone)),
            cron("0 18 * * *", zone, window=Window.of("2027-03-02", None, zone)),
        ),
    )
    assert fires(schedule, "2027-03-01T00:00:00Z", 4) == [
        ("2027-03-01T06:00:00Z", 0),
        ("2027-03-02T06:00:00Z", 0),
        ("2027-03-02T18:00:00Z", 1),
        ("2027-03-03T18:00:00Z", 1),
    ]
    assert schedule.describe() == "At 06:00, until 2027-03-02; At 18:00, from 2027-03-02"


def test_bounds_out_of_order_are_refused_naming_both() -> None:
    with pytest.raises(
        ScheduleError, match="active_until 2027-01-01 is before active_from 2027-02-01"
    ):
        Window.of(date(2027, 2, 1), date(2027, 1, 1), "UTC")
    with pytest.raises(ScheduleError, match="active_from 'soon' is not a date"):
        Window.of("soon", None, "UTC")


POOL = [
    cron("*/7 * * * *", "America/New_York"),
    cron("0 * * * *", "Europe/London", dst=Dst.of({"repeated": "once"})),
    cron("30 1 * * *", "America/New_York", dst=Dst.of({"repeated": "both", "skipped": "skip"})),
    interval("13m", datetime(2026, 11, 1, 0, 3, tzinfo=UTC)),
    interval("1h", datetime(2026, 11, 1, tzinfo=UTC)),
    rrule("FREQ=HOURLY;BYMINUTE=0,30", "America/New_York"),
    rrule("FREQ=DAILY;BYHOUR=1;BYMINUTE=30", "America/New_York"),
    rrule(BUSINESS_DAY_4, "Europe/London"),
]


@settings(max_examples=150, deadline=None)
@given(
    chosen=st.lists(st.sampled_from(range(len(POOL))), min_size=1, max_size=4),
    after=st.datetimes(
        min_value=datetime(2026, 12, 1), max_value=datetime(2027, 12, 1), timezones=st.just(UTC)
    ),
)
def test_the_union_is_strictly_increasing_never_repeats_a_time_and_misses_none(
    chosen: list[int], after: datetime
) -> None:
    """Whatever the specs (repeated ones too), each fire is the earliest of any spec's, is
    the fire of the first listed that produces it, and comes once."""
    specs = tuple(POOL[index] for index in chosen)
    schedule = Schedule("prop", specs)
    found = schedule.next_fires_by_spec(after, 40)
    times = [fire for fire, _ in found]
    assert all(a < b for a, b in pairwise(times))
    previous = after
    for fire, index in found:
        ahead = [spec.next_fire(previous) for spec in specs]
        assert fire == min(moment for moment in ahead if moment is not None)
        assert index == ahead.index(fire)  # the first listed that produces it
        assert schedule.spec_at(fire) == index
        previous = fire


def test_the_config_and_the_store_row_give_the_same_multi_spec_schedule(
    tmp_path: Path, store
) -> None:
    config = tmp_path / "gnomon.toml"
    config.write_text(
        """
[[deployments]]
name = "multi"
flow = "flows.py:f"
timezone = "America/New_York"
parameters = { n = 2 }
active_until = 2027-12-31
dst = { repeated = "both" }
schedules = [
  { cron = "0 6 * * *", parameters = { mode = "full" } },
  { interval = "15m" },
  { rrule = "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=4", dst = { skipped = "skip" } },
  { interval = "1h", anchor = 2027-01-01T00:30:00, active_from = 2027-02-01 },
]
"""
    )
    (tmp_path / "flows.py").write_text(
        "from gnomon import flow\n\n@flow\ndef f(mode: str = 'x', n: int = 1): pass\n"
    )
    [deployment] = load_config(config, check_flows=False).config.deployments
    sync_deployments(store, [deployment], datetime(2027, 1, 10, tzinfo=UTC))
    again = sync_deployments(store, [deployment], datetime(2027, 1, 11, tzinfo=UTC))
    assert again.unchanged == ["multi"]  # the stored document reads back equal
    edited = deployment.model_copy(update={"parameters": {"n": 3}})
    edited_specs = load_config(config, check_flows=False).config.deployments[0].schedules
    assert edited_specs is not None
    full = edited_specs[0].model_copy(update={"parameters": {"mode": "all"}})
    edited = edited.model_copy(update={"schedules": (full, *edited_specs[1:])})
    changed = sync_deployments(store, [edited], datetime(2027, 1, 12, tzinfo=UTC))
    assert changed.fields == {"multi": ["parameters", "schedule_specs"]}
    sync_deployments(store, [deployment], datetime(2027, 1, 13, tzinfo=UTC))
    row = store.read_deployment("multi")
    assert row is not None
    schedule = stored_schedule(row)

    assert schedule == deployment.timing(row.anchor)
    # Old readers see the first spec in the legacy columns.
    assert (row.schedule_kind, row.schedule) == ("cron", "0 6 * * *")
    assert [str(spec.kind) for spec in schedule.specs] == ["cron", "interval", "rrule", "interval"]
    assert schedule.specs[0].dst == Dst.of({"repeated": "both"})  # the deployment's
    assert schedule.specs[2].dst == Dst.of({"skipped": "skip"})  # its own
    assert schedule.specs[3].anchor == datetime(2027, 1, 1, 5, 30, tzinfo=UTC)  # New York's
    assert schedule.specs[1].anchor == row.anchor  # the registration's
    after = datetime(2027, 1, 10, 11, 50, tzinfo=UTC)
    assert schedule.next_fires_by_spec(after, 3) == [
        (datetime(2027, 1, 10, 12, tzinfo=UTC), 1),
        (datetime(2027, 1, 10, 12, 15, tzinfo=UTC), 1),
        (datetime(2027, 1, 10, 12, 30, tzinfo=UTC), 1),
    ]
    assert schedule.next_fire(datetime(2028, 1, 1, 5, tzinfo=UTC)) is None  # active_until


FLOWS = """
from gnomon import flow


@flow
def sync(n: int = 1, label: str = "x") -> int:
    return n
"""
D = 'gnomon.toml: deployment "d": '
# (the deployment's lines, the exact problems)
CONFIG_PROBLEMS = [
    ('cron = "* * * * *"\nschedules = [{interval = "5m"}]',
     [D + "set either schedules or cron, not both (schedules = [{cron = ...}, ...] holds every"
      " spec)"]),
    ("schedules = []",
     [D + "schedules is empty: list at least one {cron = ...}, {interval = ...} or {rrule = ...}"]),
    ('schedules = "0 6 * * *"',
     [D + 'schedules "0 6 * * *": must be a list of tables, like [{cron = "0 6 * * *"},'
      ' {interval = "15m"}, {rrule = "FREQ=MONTHLY;BYMONTHDAY=1"}]']),
    ('schedules = [{cron = "0 6 * * *", interval = "5m"}]',
     [D + 'schedules.0 {"cron": "0 6 * * *", "interval": "5m"}: set exactly one of cron,'
      " interval or rrule (found cron and interval)"]),
    ('schedules = [{cron = "0 6 * * *"}, {rrule = "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=4"}]',
     [D + 'schedules.1.rrule "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=4": never fires: no date'
      " matches the rule"]),
    ('schedules = [{rrule = "FREQ=SOMETIMES"}]',
     [D + "schedules.0.rrule \"FREQ=SOMETIMES\": invalid rrule: FREQ='SOMETIMES': FREQ must be"
      " one of YEARLY, MONTHLY, WEEKLY, DAILY, HOURLY, MINUTELY, SECONDLY"]),
    ('schedules = [{rrule = "FREQ=WEEKLY"}]',
     [D + 'schedules.0.rrule "FREQ=WEEKLY": invalid rrule: FREQ=WEEKLY without DTSTART must'
      " name its days (BYDAY, BYMONTHDAY, BYYEARDAY, BYWEEKNO): they would otherwise be taken"
      " from the day the deployment was registered"]),
    ('schedules = [{cron = "61 * * * *"}]',
     [D + 'schedules.0.cron "61 * * * *": minute 61 is outside 0-59']),
    ('schedules = [{interval = "0.5s"}]', [D + 'schedules.0.interval "0.5s": must be at least 1s']),
    ('schedules = [{cron = "0 6 * * *", dst = {skipped = "later"}}]',
     [D + "schedules.0.dst {\"skipped\": \"later\"}: skipped 'later' must be 'shift' or 'skip'"]),
    ('schedules = [{cron = "0 6 * * *", crn = "x"}]',
     [D + 'schedules.0.crn: unknown key (did you mean "cron"?)']),
    ('schedules = [{cron = "0 6 * * *", parameters = {m = 3}}]',
     [D + "schedules.0.parameters.m 3: flow 'sync' has no parameter 'm' (it takes: n, label)"]),
    # The deployment's own parameters are reported once, not again for each spec.
    ('parameters = {m = 3}\nschedules = [{cron = "0 6 * * *", parameters = {n = "many"}}]',
     [D + "parameters.m 3: flow 'sync' has no parameter 'm' (it takes: n, label)",
      D + 'schedules.0.parameters.n "many": Input should be a valid integer, unable to parse'
      " string as an integer"]),
    ('schedules = [{cron = "0 6 * * *", active_from = 2027-02-01, active_until = 2027-01-01}]',
     [D + 'schedules.0.active_until "2027-01-01": is before active_from 2027-02-01']),
    ('schedules = [{cron = "0 6 * * *"}]\nactive_from = 2027-02-01\nactive_until = 2027-01-01',
     [D + 'active_until "2027-01-01": is before active_from 2027-02-01']),
    ('cron = "0 6 * * *"\nactive_until = "soon"',
     [D + 'active_until "soon": must be a TOML date (2027-01-31) or date and time'
      " (2027-01-31T06:00:00, in the deployment's zone without an offset), not quoted"]),
    ('interval = "5m"\ndst = {repeated = "both"}',
     [D + "dst applies to cron and rrule schedules only: an interval is real time"]),
    ('schedules = [{cron = "0 6 * * *"}]\nanchor = 2027-01-01T00:00:00Z',
     [D + "anchor: with schedules, give it in the interval's entry"]),
]  # fmt: skip


@pytest.mark.parametrize(("lines", "expected"), CONFIG_PROBLEMS)
def test_each_schedules_problem_names_the_file_deployment_field_and_value(
    tmp_path: Path, lines: str, expected: list[str]
) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    config = tmp_path / "gnomon.toml"
    config.write_text(f'[[deployments]]\nname = "d"\nflow = "flows.py:sync"\n{lines}\n')
    result = load_config(config)
    assert [str(problem) for problem in result.problems] == expected
    assert not result.config.deployments


def test_a_deployment_with_schedules_loads_and_fires_each_specs_parameters(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    config = tmp_path / "gnomon.toml"
    config.write_text(
        '[[deployments]]\nname = "d"\nflow = "flows.py:sync"\nparameters = {label = "base"}\n'
        'schedules = [{cron = "0 6 * * *", parameters = {n = 5}}, {interval = "12h",'
        ' anchor = 2027-01-01T06:00:00Z, parameters = {n = 7, label = "half"}}]\n'
    )
    result = load_config(config)
    assert result.ok, [str(problem) for problem in result.problems]
    [deployment] = result.config.deployments
    schedule = deployment.timing()
    assert (deployment.schedule_kind, deployment.schedule) == ("cron", "0 6 * * *")
    six, eighteen = utc("2027-01-02T06:00:00Z"), utc("2027-01-02T18:00:00Z")
    assert dict(schedule.parameters_at(six)) == {"n": 5}  # both give 06:00: the first's
    assert dict(schedule.parameters_at(eighteen)) == {"n": 7, "label": "half"}


def test_the_commented_schedules_example_in_config_example_toml_loads_once_uncommented(
    tmp_path: Path,
) -> None:
    """Its flow imported and the parameters of each spec checked against it."""
    example = (REPO / "config.example.toml").read_text()
    block = example[example.index('# [[deployments]]\n# name = "weekday-reports"') :]
    block = block.split("\n\n")[0]
    text = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    (tmp_path / "gnomon.toml").write_text(text.replace("examples/", f"{REPO}/examples/"))
    result = load_config(tmp_path / "gnomon.toml")
    assert [str(problem) for problem in result.problems] == []
    [deployment] = result.config.deployments
    schedule = deployment.timing(datetime(2027, 1, 1, tzinfo=UTC))
    assert [str(spec.kind) for spec in schedule.specs] == ["cron", "rrule"]


def test_a_deployment_with_schedules_is_written_back_as_toml_that_loads_the_same(
    tmp_path: Path,
) -> None:
    """What ``serve`` and ``deploy()`` print for the config file."""
    (tmp_path / "flows.py").write_text(FLOWS)
    config = tmp_path / "gnomon.toml"
    config.write_text(
        '[[deployments]]\nname = "d"\nflow = "flows.py:sync"\ntimezone = "Europe/Paris"\n'
        'active_from = 2027-01-01\ndst = { repeated = "both" }\nschedules = [\n'
        '  { cron = "30 1 * * *", parameters = { n = 2 }, active_until = 2027-06-30 },\n'
        '  { interval = "90m", anchor = 2027-01-01T00:00:00Z },\n'
        '  { rrule = "FREQ=WEEKLY;BYDAY=MO", dst = { skipped = "skip" } },\n]\n'
    )
    [deployment] = load_config(config).config.deployments
    written = tmp_path / "written.toml"
    written.write_text(deployments_toml([deployment]))
    [again] = load_config(written).config.deployments
    anchor = datetime(2027, 1, 1, tzinfo=UTC)
    assert again.timing(anchor) == deployment.timing(anchor)
    assert again.schedule_document() == deployment.schedule_document()


def test_a_stored_rrule_that_has_ended_has_no_fires_and_builds() -> None:
    """Checked from 2000 it fired until 2024; built from a registration after that (a store
    row's anchor), it has no fires left: no more fires, not an error."""
    document = {"specs": [{"kind": "rrule", "expression": "FREQ=DAILY;UNTIL=20240101"}]}
    schedule = Schedule.from_document("ended", document, "UTC", datetime(2026, 12, 7, tzinfo=UTC))
    assert schedule.next_fire(datetime(2026, 12, 7, tzinfo=UTC)) is None
    assert schedule.next_fires(datetime(2026, 12, 7, tzinfo=UTC), 3) == []


LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
# (a spec near datetime's end, its anchor): each fires at 9999-12-31T23:59:59 or so, whose
# due time a jitter offset would take past datetime.max.
NEAR_9999 = [
    (ScheduleKind.RRULE, "DTSTART:99991231T235959\nRRULE:FREQ=SECONDLY", None),
    (ScheduleKind.CRON, "59 23 31 12 *", None),
    (ScheduleKind.INTERVAL, "1h", datetime(9999, 12, 31, 23, 50, tzinfo=UTC)),
]


@pytest.mark.parametrize(("kind", "expression", "anchor"), NEAR_9999)
def test_a_fire_whose_jitter_passes_datetimes_end_is_no_more_fires(
    kind: ScheduleKind, expression: str, anchor: datetime | None
) -> None:
    plain = Schedule.single("far", kind, expression, "UTC", anchor)
    after = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    last = plain.next_fires(after, 5)
    assert last
    assert last[-1] <= LAST
    jittered = Schedule.single("far", kind, expression, "UTC", anchor, timedelta(hours=1))
    assert jittered.offset > LAST - last[-1]  # this owner's offset passes the end
    assert jittered.next_fire(after) is None
    assert jittered.next_fires(after, 5) == []
    assert jittered.next_fires_by_spec(after, 5) == []
