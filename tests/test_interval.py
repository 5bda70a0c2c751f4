"""Interval triggers, interval parsing and per-deployment jitter."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gnomon.scheduling import (
    IntervalTrigger,
    ScheduleError,
    Trigger,
    format_duration,
    jitter_offset,
    parse_interval,
)

ANCHOR = datetime(2027, 1, 1, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")

# (every, anchor, after, the next fire in UTC)
NEXT_FIRES = [
    (timedelta(minutes=15), ANCHOR, "2027-01-01T00:00:00+00:00", "2027-01-01T00:15:00+00:00"),
    (timedelta(minutes=15), ANCHOR, "2027-01-01T00:14:59.999999+00:00",
     "2027-01-01T00:15:00+00:00"),
    (timedelta(minutes=15), ANCHOR, "2027-01-01T00:15:00.000001+00:00",
     "2027-01-01T00:30:00+00:00"),
    (timedelta(minutes=15), ANCHOR, "2027-03-09T17:52:00+00:00", "2027-03-09T18:00:00+00:00"),
    # Before the anchor, the anchor itself is the first fire.
    (timedelta(minutes=15), ANCHOR, "2026-12-31T23:59:00+00:00", "2027-01-01T00:00:00+00:00"),
    (timedelta(minutes=15), ANCHOR, "2020-06-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    # The anchor sets the phase, whatever zone it and ``after`` are written in.
    (timedelta(seconds=90), datetime(2027, 1, 1, 5, 30, 7, tzinfo=ZoneInfo("Asia/Kolkata")),
     "2026-12-31T19:05:00-05:00", "2027-01-01T00:06:07+00:00"),
    (timedelta(hours=1), datetime(2027, 1, 1, 0, 20, tzinfo=NEW_YORK),
     "2027-06-01T12:00:00+00:00", "2027-06-01T12:20:00+00:00"),
    (timedelta(milliseconds=1500), ANCHOR, "2027-01-01T00:00:01.2+00:00",
     "2027-01-01T00:00:01.500000+00:00"),
    (timedelta(days=7), ANCHOR, "2027-01-08T00:00:00+00:00", "2027-01-15T00:00:00+00:00"),
    # Intervals are elapsed time: a day from noon EST is 13:00 EDT after spring forward.
    (timedelta(days=1), datetime(2027, 3, 13, 12, tzinfo=NEW_YORK),
     "2027-03-13T12:00:00-05:00", "2027-03-14T17:00:00+00:00"),
]  # fmt: skip


@pytest.mark.parametrize(("every", "anchor", "after", "expected"), NEXT_FIRES)
def test_next_fire_is_the_first_anchor_multiple_after(
    every: timedelta, anchor: datetime, after: str, expected: str
) -> None:
    fire = IntervalTrigger(every, anchor).next_fire(datetime.fromisoformat(after))

    assert fire is not None
    assert fire.tzinfo is UTC
    assert fire.isoformat() == expected


def test_an_hourly_interval_fires_every_real_hour_through_a_fall_back() -> None:
    trigger = IntervalTrigger(timedelta(hours=1), datetime(2027, 11, 7, 0, tzinfo=NEW_YORK))
    fires = []
    moment = datetime(2027, 11, 7, 0, tzinfo=NEW_YORK)
    for _ in range(3):
        fire = trigger.next_fire(moment)
        assert fire is not None
        fires.append(fire.astimezone(NEW_YORK).isoformat())
        moment = fire

    assert fires == [
        "2027-11-07T01:00:00-04:00",
        "2027-11-07T01:00:00-05:00",
        "2027-11-07T02:00:00-05:00",
    ]


def test_next_fire_is_arithmetic_not_a_loop_over_intervals() -> None:
    """Seven seconds from 1970 to 9000: three times ten to the tenth intervals, at once."""
    every = timedelta(seconds=7)
    anchor = datetime(1970, 1, 1, tzinfo=UTC)
    after = datetime(9000, 1, 1, 0, 0, 0, 3, tzinfo=UTC)

    fire = IntervalTrigger(every, anchor).next_fire(after)

    assert fire is not None
    assert timedelta(0) < fire - after <= every
    assert (fire - anchor) % every == timedelta(0)


def test_next_fire_past_the_end_of_the_calendar_is_none() -> None:
    trigger = IntervalTrigger(timedelta(days=1), ANCHOR)

    assert trigger.next_fire(datetime(9999, 12, 31, 12, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("every", "message"),
    [
        (timedelta(0), "interval 0s must be positive"),
        (timedelta(minutes=-5), "interval -5m must be positive"),
    ],
)
def test_a_non_positive_interval_is_refused(every: timedelta, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        IntervalTrigger(every, ANCHOR)

    assert str(caught.value) == message


def test_a_naive_anchor_is_refused() -> None:
    with pytest.raises(ScheduleError, match="anchor 2027-01-01T00:00:00 has no time zone"):
        IntervalTrigger(timedelta(minutes=5), datetime(2027, 1, 1))


def test_a_naive_after_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="naive"):
        IntervalTrigger(timedelta(minutes=5), ANCHOR).next_fire(datetime(2027, 1, 1))


def test_interval_triggers_are_frozen_values_that_describe_themselves() -> None:
    trigger = IntervalTrigger(timedelta(hours=1, minutes=30), ANCHOR)

    assert trigger.describe() == "every 1h 30m from 2027-01-01T00:00:00+00:00"
    assert trigger == IntervalTrigger(timedelta(minutes=90), ANCHOR)
    assert isinstance(trigger, Trigger)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trigger.every = timedelta(1)  # type: ignore[misc]


GOOD_INTERVALS = [
    ("90s", timedelta(seconds=90)),
    ("15m", timedelta(minutes=15)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1h 30m", timedelta(hours=1, minutes=30)),
    ("  2d ", timedelta(days=2)),
    ("1w", timedelta(weeks=1)),
    ("500ms", timedelta(milliseconds=500)),
    ("250us", timedelta(microseconds=250)),
    ("1.5h", timedelta(hours=1, minutes=30)),
    ("2 hours 5 min", timedelta(hours=2, minutes=5)),
    ("10 seconds", timedelta(seconds=10)),
    ("15M", timedelta(minutes=15)),
    ("PT15M", timedelta(minutes=15)),
    ("P1DT2H", timedelta(days=1, hours=2)),
    ("PT0.5S", timedelta(milliseconds=500)),
    ("PT1,5S", timedelta(seconds=1, milliseconds=500)),
    ("P2W", timedelta(weeks=2)),
    ("P1D", timedelta(days=1)),
    ("pt1h", timedelta(hours=1)),
]


@pytest.mark.parametrize(("text", "expected"), GOOD_INTERVALS)
def test_parse_interval_reads_units_and_iso_8601(text: str, expected: timedelta) -> None:
    assert parse_interval(text) == expected


BAD_INTERVALS = [
    ("every 5 minutes", "interval 'every 5 minutes' is not a duration "
     "(e.g. 90s, 15m, 1h30m, 2d, 500ms, PT15M)"),
    ("", "interval '' is not a duration (e.g. 90s, 15m, 1h30m, 2d, 500ms, PT15M)"),
    ("90", "interval '90' is not a duration (e.g. 90s, 15m, 1h30m, 2d, 500ms, PT15M)"),
    ("0s", "interval '0s' must be positive"),
    ("0", "interval '0' must be positive"),  # no unit needed to say it is zero
    ("0.0", "interval '0.0' must be positive"),
    ("PT0S", "interval 'PT0S' must be positive"),
    ("-5m", "interval '-5m' must be positive"),
    ("15x", "interval '15x' has unknown unit 'x' (use us, ms, s, m, h, d, w)"),
    ("P1M", "interval 'P1M': years and months have no fixed length; use a cron schedule"),
    ("P1Y", "interval 'P1Y': years and months have no fixed length; use a cron schedule"),
    ("PT", "interval 'PT' is not an ISO 8601 duration (e.g. 90s, 15m, 1h30m, 2d, 500ms, PT15M)"),
    ("P1DT", "interval 'P1DT' is not an ISO 8601 duration "
     "(e.g. 90s, 15m, 1h30m, 2d, 500ms, PT15M)"),
    ("99999999999d", "interval '99999999999d' is too long"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_INTERVALS)
def test_parse_interval_refuses_bad_input_naming_it(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_interval(text)

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("delta", "units", "expected"),
    [
        (timedelta(hours=1, minutes=30), None, "1h 30m"),
        (timedelta(days=2), None, "2d"),
        (timedelta(minutes=1, milliseconds=500), None, "1m 500ms"),
        (timedelta(0), None, "0s"),
        (timedelta(hours=2, minutes=13, seconds=40), 2, "2h 13m"),
        (timedelta(days=1, minutes=5), 2, "1d"),
        (timedelta(seconds=59, microseconds=999999), 2, "59s 999ms"),
        (timedelta(microseconds=1500), None, "1ms 500us"),
    ],
)
def test_format_duration(delta: timedelta, units: int | None, expected: str) -> None:
    assert format_duration(delta, units) == expected


@given(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=10_000)))
def test_parse_interval_reads_back_what_format_duration_writes(delta: timedelta) -> None:
    assert parse_interval(format_duration(delta)) == delta


def test_jitter_is_pinned_per_key() -> None:
    """Changing these would move every deployment's fire time: the values are a contract."""
    ten_minutes = timedelta(minutes=10)

    assert jitter_offset("nightly-report", ten_minutes) == timedelta(
        seconds=230, microseconds=12222
    )
    assert jitter_offset("hourly-sync", ten_minutes) == timedelta(seconds=129, microseconds=13002)
    assert jitter_offset("hourly-sync", timedelta(hours=1)) == timedelta(
        seconds=2529, microseconds=13002
    )


def test_jitter_is_the_same_in_every_process() -> None:
    code = (
        "from datetime import timedelta; from gnomon.scheduling import jitter_offset; "
        "print(jitter_offset('nightly-report', timedelta(minutes=10)))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2", "random")
    }

    assert outputs == {"0:03:50.012222"}


def test_jitter_spreads_keys_evenly_across_the_window() -> None:
    window = timedelta(hours=1)
    offsets = [jitter_offset(f"deployment-{n}", window) for n in range(2000)]

    assert all(timedelta(0) <= offset < window for offset in offsets)
    per_tenth = [0] * 10
    for offset in offsets:
        per_tenth[int(offset / window * 10)] += 1
    # 200 expected per tenth; a binomial standard deviation is about 13.
    assert all(140 <= count <= 260 for count in per_tenth), per_tenth


def test_zero_jitter_is_zero_and_negative_jitter_is_refused() -> None:
    assert jitter_offset("anything", timedelta(0)) == timedelta(0)
    assert jitter_offset("anything", timedelta(microseconds=1)) == timedelta(0)
    with pytest.raises(ScheduleError, match="must not be negative"):
        jitter_offset("anything", timedelta(seconds=-1))
