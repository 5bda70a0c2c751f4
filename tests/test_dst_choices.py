"""``dst = {repeated = "once" | "both", skipped = "shift" | "skip"}``: the other sides of
cronie's DST rules, for cron and rrule specs, as literal-date tables, checked against an
independent walk of the clock minute by minute, and rrules against crons that name the
same wall times.

Transitions (checked with zoneinfo):
  America/New_York  2027-03-14 02:00 EST -> 03:00 EDT (07:00Z);
                    2027-11-07 02:00 EDT -> 01:00 EST (06:00Z)
  Europe/London     2027-03-28 01:00 GMT -> 02:00 BST (01:00Z);
                    2027-10-31 02:00 BST -> 01:00 GMT (01:00Z)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnomon.scheduling import CronTrigger, Dst, RRuleTrigger, ScheduleError
from test_cron import CLOCK_WALK, Predicate

ONCE, BOTH = {"repeated": "once"}, {"repeated": "both"}
SHIFT, SKIP = {"skipped": "shift"}, {"skipped": "skip"}
ANCHOR = datetime(2026, 1, 1, 12, tzinfo=UTC)  # rrules without DTSTART start at its midnight

Fire = tuple[str, str]  # (local time with its offset, UTC instant)
# (zone, expression, the dst table, after, each fire). The comment says what the default
# (cronie's rule) would do instead.
CRON: list[tuple[str, str, dict[str, str], str, list[Fire]]] = [
    # A fixed time the spring-forward skips: not at all (cronie: 03:00 EDT, after the jump).
    ("America/New_York", "30 2 * * *", SKIP, "2027-03-13T12:00:00-05:00", [
        ("2027-03-15T02:30:00-04:00", "2027-03-15T06:30:00Z"),
        ("2027-03-16T02:30:00-04:00", "2027-03-16T06:30:00Z"),
    ]),
    ("Europe/London", "30 1 * * *", SKIP, "2027-03-27T12:00:00+00:00", [
        ("2027-03-29T01:30:00+01:00", "2027-03-29T00:30:00Z"),
    ]),
    # A fixed time the fall-back repeats: both times (cronie: the first only).
    ("America/New_York", "30 1 * * *", BOTH, "2027-11-06T12:00:00-04:00", [
        ("2027-11-07T01:30:00-04:00", "2027-11-07T05:30:00Z"),
        ("2027-11-07T01:30:00-05:00", "2027-11-07T06:30:00Z"),
        ("2027-11-08T01:30:00-05:00", "2027-11-08T06:30:00Z"),
    ]),
    # ... also from inside the first pass, before and after the time.
    ("America/New_York", "30 1 * * *", BOTH, "2027-11-07T01:15:00-04:00", [
        ("2027-11-07T01:30:00-04:00", "2027-11-07T05:30:00Z"),
        ("2027-11-07T01:30:00-05:00", "2027-11-07T06:30:00Z"),
    ]),
    ("America/New_York", "30 1 * * *", BOTH, "2027-11-07T01:45:00-04:00", [
        ("2027-11-07T01:30:00-05:00", "2027-11-07T06:30:00Z"),
        ("2027-11-08T01:30:00-05:00", "2027-11-08T06:30:00Z"),
    ]),
    ("Europe/London", "30 1 * * *", BOTH, "2027-10-30T12:00:00+01:00", [
        ("2027-10-31T01:30:00+01:00", "2027-10-31T00:30:00Z"),
        ("2027-10-31T01:30:00+00:00", "2027-10-31T01:30:00Z"),
        ("2027-11-01T01:30:00+00:00", "2027-11-01T01:30:00Z"),
    ]),
    # Both choices at once, hours 1-3 listed: nothing at the skipped 02:00 and 02:30
    # (cronie: 03:00 once), then every pass of the repeated 01:00 and 01:30.
    ("America/New_York", "0,30 1-3 * * *", BOTH | SKIP, "2027-03-14T00:00:00-05:00", [
        ("2027-03-14T01:00:00-05:00", "2027-03-14T06:00:00Z"),
        ("2027-03-14T01:30:00-05:00", "2027-03-14T06:30:00Z"),
        ("2027-03-14T03:00:00-04:00", "2027-03-14T07:00:00Z"),
        ("2027-03-14T03:30:00-04:00", "2027-03-14T07:30:00Z"),
        ("2027-03-15T01:00:00-04:00", "2027-03-15T05:00:00Z"),
    ]),
    ("America/New_York", "0,30 1-3 * * *", BOTH | SKIP, "2027-11-07T00:00:00-04:00", [
        ("2027-11-07T01:00:00-04:00", "2027-11-07T05:00:00Z"),
        ("2027-11-07T01:30:00-04:00", "2027-11-07T05:30:00Z"),
        ("2027-11-07T01:00:00-05:00", "2027-11-07T06:00:00Z"),
        ("2027-11-07T01:30:00-05:00", "2027-11-07T06:30:00Z"),
        ("2027-11-07T02:00:00-05:00", "2027-11-07T07:00:00Z"),
    ]),
    # A `*` hour, repeated once: the hourly job runs once per local hour, not at 01:00 EST
    # (cronie: both 01:00s, once per real hour).
    ("America/New_York", "0 * * * *", ONCE, "2027-11-07T00:30:00-04:00", [
        ("2027-11-07T01:00:00-04:00", "2027-11-07T05:00:00Z"),
        ("2027-11-07T02:00:00-05:00", "2027-11-07T07:00:00Z"),
        ("2027-11-07T03:00:00-05:00", "2027-11-07T08:00:00Z"),
    ]),
    ("Europe/London", "*/20 1 * * *", ONCE, "2027-10-31T00:30:00+01:00", [
        ("2027-10-31T01:00:00+01:00", "2027-10-31T00:00:00Z"),
        ("2027-10-31T01:20:00+01:00", "2027-10-31T00:20:00Z"),
        ("2027-10-31T01:40:00+01:00", "2027-10-31T00:40:00Z"),
        ("2027-11-01T01:00:00+00:00", "2027-11-01T01:00:00Z"),
    ]),
    # ... and from inside the second pass it goes on after it.
    ("Europe/London", "*/20 1 * * *", ONCE, "2027-10-31T01:10:00+00:00", [
        ("2027-11-01T01:00:00+00:00", "2027-11-01T01:00:00Z"),
    ]),
    # A `*` hour, skipped shifted: the skipped 02:30 fires right after the jump (cronie:
    # not at all).
    ("America/New_York", "30 * * * *", SHIFT, "2027-03-14T01:15:00-05:00", [
        ("2027-03-14T01:30:00-05:00", "2027-03-14T06:30:00Z"),
        ("2027-03-14T03:00:00-04:00", "2027-03-14T07:00:00Z"),
        ("2027-03-14T03:30:00-04:00", "2027-03-14T07:30:00Z"),
    ]),
    # Four skipped quarters and 03:00 itself: one fire at 03:00.
    ("America/New_York", "*/15 * * * *", SHIFT, "2027-03-14T01:50:00-05:00", [
        ("2027-03-14T03:00:00-04:00", "2027-03-14T07:00:00Z"),
        ("2027-03-14T03:15:00-04:00", "2027-03-14T07:15:00Z"),
    ]),
    ("Europe/London", "45 * * * *", SHIFT, "2027-03-28T00:50:00+00:00", [
        ("2027-03-28T02:00:00+01:00", "2027-03-28T01:00:00Z"),
        ("2027-03-28T02:45:00+01:00", "2027-03-28T01:45:00Z"),
    ]),
    # Stating cronie's own choices changes nothing.
    ("America/New_York", "30 2 * * *", ONCE | SHIFT, "2027-03-13T12:00:00-05:00", [
        ("2027-03-14T03:00:00-04:00", "2027-03-14T07:00:00Z"),
        ("2027-03-15T02:30:00-04:00", "2027-03-15T06:30:00Z"),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("zone", "expression", "dst", "after", "expected"), CRON)
def test_cron_dst_choices_fire_at_these_times(
    zone: str, expression: str, dst: dict[str, str], after: str, expected: list[Fire]
) -> None:
    trigger = CronTrigger(expression, zone, Dst.of(dst))
    assert _fires(trigger, after, len(expected)) == expected


# The same for rrules: a daily rule is a fixed-time job, an hourly one periodic.
RRULE: list[tuple[str, str, dict[str, str], str, list[Fire]]] = [
    ("America/New_York", "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", {}, "2027-03-13T12:00:00-05:00", [
        ("2027-03-14T03:00:00-04:00", "2027-03-14T07:00:00Z"),
        ("2027-03-15T02:30:00-04:00", "2027-03-15T06:30:00Z"),
    ]),
    ("America/New_York", "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", SKIP, "2027-03-13T12:00:00-05:00", [
        ("2027-03-15T02:30:00-04:00", "2027-03-15T06:30:00Z"),
        ("2027-03-16T02:30:00-04:00", "2027-03-16T06:30:00Z"),
    ]),
    ("America/New_York", "FREQ=DAILY;BYHOUR=1;BYMINUTE=30", {}, "2027-11-06T12:00:00-04:00", [
        ("2027-11-07T01:30:00-04:00", "2027-11-07T05:30:00Z"),
        ("2027-11-08T01:30:00-05:00", "2027-11-08T06:30:00Z"),
    ]),
    ("America/New_York", "FREQ=DAILY;BYHOUR=1;BYMINUTE=30", BOTH, "2027-11-06T12:00:00-04:00", [
        ("2027-11-07T01:30:00-04:00", "2027-11-07T05:30:00Z"),
        ("2027-11-07T01:30:00-05:00", "2027-11-07T06:30:00Z"),
        ("2027-11-08T01:30:00-05:00", "2027-11-08T06:30:00Z"),
    ]),
    ("Europe/London", "FREQ=HOURLY", {}, "2027-10-31T00:30:00+01:00", [
        ("2027-10-31T01:00:00+01:00", "2027-10-31T00:00:00Z"),
        ("2027-10-31T01:00:00+00:00", "2027-10-31T01:00:00Z"),
        ("2027-10-31T02:00:00+00:00", "2027-10-31T02:00:00Z"),
    ]),
    ("Europe/London", "FREQ=HOURLY", ONCE, "2027-10-31T00:30:00+01:00", [
        ("2027-10-31T01:00:00+01:00", "2027-10-31T00:00:00Z"),
        ("2027-10-31T02:00:00+00:00", "2027-10-31T02:00:00Z"),
    ]),
    ("Europe/London", "FREQ=HOURLY;BYMINUTE=30", {}, "2027-03-28T00:45:00+00:00", [
        ("2027-03-28T02:30:00+01:00", "2027-03-28T01:30:00Z"),
    ]),
    ("Europe/London", "FREQ=HOURLY;BYMINUTE=30", SHIFT, "2027-03-28T00:45:00+00:00", [
        ("2027-03-28T02:00:00+01:00", "2027-03-28T01:00:00Z"),
        ("2027-03-28T02:30:00+01:00", "2027-03-28T01:30:00Z"),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("zone", "text", "dst", "after", "expected"), RRULE)
def test_rrule_dst_choices_fire_at_these_times(
    zone: str, text: str, dst: dict[str, str], after: str, expected: list[Fire]
) -> None:
    trigger = RRuleTrigger(text, zone, ANCHOR, Dst.of(dst))
    assert _fires(trigger, after, len(expected)) == expected


def _fires(trigger: CronTrigger | RRuleTrigger, after: str, count: int) -> list[Fire]:
    found: list[Fire] = []
    moment: datetime | None = datetime.fromisoformat(after)
    while moment is not None and len(found) < count:
        moment = trigger.next_fire(moment)
        if moment is not None:
            instant = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
            found.append((moment.isoformat(), instant))
    return found


# The independent model of test_cron's clock walk, for any choice: wake at every real
# minute; a wall time newly reached fires if it matches (``once``: only then; ``both``:
# also when the clock comes round to it again), and after a jump the skipped minutes fire
# at once if one matches (``shift``) or not at all (``skip``).
_MINUTE = timedelta(minutes=1)


def _walk(
    zone: ZoneInfo, once: bool, shift: bool, matches: Predicate, start: datetime, end: datetime
) -> list[datetime]:
    fires = []
    reached = previous = start.astimezone(zone).replace(tzinfo=None)
    moment = start + _MINUTE
    while moment <= end:
        wall = moment.astimezone(zone).replace(tzinfo=None, fold=0)
        skipped = int((wall - previous) / _MINUTE) - 1 if wall > previous else 0
        jumped = any(matches(wall - k * _MINUTE) for k in range(1, skipped + 1))
        if ((wall > reached or not once) and matches(wall)) or (shift and jumped):
            fires.append(moment)
        reached, previous = max(reached, wall), wall
        moment += _MINUTE
    return fires


TRANSITIONS = [
    ("America/New_York", "2027-03-14T07:00"),
    ("America/New_York", "2027-11-07T06:00"),
    ("Europe/London", "2027-03-28T01:00"),
    ("Europe/London", "2027-10-31T01:00"),
    ("Australia/Lord_Howe", "2027-04-03T15:00"),  # a 30-minute fall-back
    ("Australia/Lord_Howe", "2026-10-03T15:30"),  # a 30-minute spring-forward
]
CHOICES = [(once, shift) for once in (True, False) for shift in (True, False)]


@pytest.mark.parametrize(("once", "shift"), CHOICES)
@pytest.mark.parametrize(("zone_name", "change"), TRANSITIONS)
@pytest.mark.parametrize(("expression", "fixed_time", "matches"), CLOCK_WALK)
def test_every_minute_around_a_change_agrees_with_a_walk_of_the_clock_for_each_choice(
    zone_name: str,
    change: str,
    expression: str,
    fixed_time: bool,
    matches: Predicate,
    once: bool,
    shift: bool,
) -> None:
    zone = ZoneInfo(zone_name)
    middle = datetime.fromisoformat(change).replace(tzinfo=UTC)
    start, end = middle - timedelta(days=1), middle + timedelta(days=2)
    expected = _walk(zone, once, shift, matches, start, end)
    dst = Dst.of({"repeated": "once" if once else "both", "skipped": "shift" if shift else "skip"})
    trigger = CronTrigger(expression, zone_name, dst)

    probe = middle - timedelta(hours=3)
    while probe < middle + timedelta(hours=3):
        fire = trigger.next_fire(probe)
        assert fire is not None
        wanted = next(moment for moment in expected if moment > probe)
        assert fire.astimezone(UTC) == wanted, f"after {probe.astimezone(zone)}"
        probe += 2 * _MINUTE


# Pairs naming the same wall times: one fixed-time, one periodic.
SAME = [
    ("30 1,2 * * *", "FREQ=DAILY;BYHOUR=1,2;BYMINUTE=30"),
    ("0,30 * * * *", "FREQ=HOURLY;BYMINUTE=0,30"),
    ("15 2 * * SUN", "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=15"),
]


@settings(max_examples=200, deadline=None)
@given(
    pair=st.sampled_from(SAME),
    zone=st.sampled_from([name for name, _ in TRANSITIONS]),
    change=st.sampled_from([change for _, change in TRANSITIONS]),
    minutes=st.integers(min_value=-240, max_value=240),
    dst=st.sampled_from([{}, ONCE, BOTH, SHIFT, SKIP, ONCE | SKIP, BOTH | SHIFT]),
)
def test_an_rrule_fires_as_the_cron_naming_the_same_wall_times(
    pair: tuple[str, str], zone: str, change: str, minutes: int, dst: dict[str, str]
) -> None:
    expression, text = pair
    after = datetime.fromisoformat(change).replace(tzinfo=UTC) + timedelta(minutes=minutes)
    cron = CronTrigger(expression, zone, Dst.of(dst)).next_fire(after)
    rule = RRuleTrigger(text, zone, ANCHOR, Dst.of(dst)).next_fire(after)
    assert cron is not None
    assert rule is not None
    assert rule.astimezone(UTC) == cron.astimezone(UTC)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"repeated": "twice"}, "dst repeated 'twice' must be 'once' or 'both'"),
        ({"skipped": "later"}, "dst skipped 'later' must be 'shift' or 'skip'"),
        ({"repeat": "once"}, "dst has unknown key 'repeat' (it takes repeated, skipped)"),
    ],
)
def test_a_bad_dst_choice_is_refused_naming_it(table: dict[str, str], message: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        Dst.of(table)
    assert str(raised.value) == message


def test_dst_choices_are_part_of_a_triggers_identity() -> None:
    assert CronTrigger("30 1 * * *", "UTC", Dst.of(BOTH)) != CronTrigger("30 1 * * *", "UTC")
    assert CronTrigger("30 1 * * *", "UTC", Dst.of({})) == CronTrigger("30 1 * * *", "UTC")
