"""The rules that read what operators type and what runs carry, as pure functions: `since`
times, log levels, a run's parameters, state filters and the failed family, the shortest
interval, lone surrogates, and secret values masked in text. The real CLI, API and daemon
facing the same inputs are in test_faults_input.py."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gnomon._secrets import (
    MASK,
    MaskingWriter,
    mask_known,
    mask_known_fields,
    mask_text,
    remember_secrets,
    secret_values,
)
from gnomon._text import loads, quoted, shortened, valid_text
from gnomon.control import (
    MAX_PARAMETERS_BYTES,
    check_parameters,
    parse_level,
    parse_since,
)
from gnomon.daemon._metrics import DaemonMetrics
from gnomon.daemon._notify import events_for_summary
from gnomon.deployments import NotifyEvent
from gnomon.exceptions import InvalidInput, ParameterTypeError
from gnomon.scheduling import IntervalTrigger, ScheduleError, parse_every
from gnomon.states import FAILED_NAMES, StateFilter, is_failed, parse_state_filter

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


# since


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - timedelta(hours=2)),
        ("P1D", NOW - timedelta(days=1)),
        ("2027-02-01T08:00", datetime(2027, 2, 1, 8, tzinfo=UTC)),
        ("2027-02-01T08:00+02:00", datetime(2027, 2, 1, 6, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_since_is_a_duration_back_from_now_or_an_iso_time_in_utc(
    text: str, expected: datetime
) -> None:
    moment = parse_since(text, NOW)

    assert moment == expected
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("9999-12-31T23:59:59-23:59", "is outside the years 1 to 9999 in UTC"),
        ("0001-01-01T00:00+05:00", "is outside the years 1 to 9999 in UTC"),
        ("1000000d", "reaches back before the year 1"),
        ("99999999999d", "is too long"),
        ("-1d", "must be positive"),
        ("yesterday", "is neither a duration (2h, 30m, 1d) nor an ISO 8601 time"),
    ],
)
def test_a_since_that_is_no_usable_moment_is_refused_naming_it(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_since(text, NOW)

    assert str(refused.value) == f"{text!r} {problem}"


# levels


def test_a_value_an_error_quotes_is_cut_short_saying_how_long_it_was() -> None:
    assert quoted("short") == "'short'"
    assert quoted("a" * 80) == repr("a" * 80)
    assert quoted("a" * 3000) == repr("a" * 79 + "…") + " (3000 characters)"
    assert quoted("a" * 3000, mark='"') == '"' + "a" * 79 + '…" (3000 characters)'
    listed = quoted(list(range(1000)))
    assert (listed[:9], listed[-1], len(listed)) == ("[0, 1, 2,", "…", 80)


def test_a_long_since_or_expiry_is_refused_without_echoing_it_in_full() -> None:
    from gnomon.control import parse_expiry

    for text in ("1" * 3000 + "h", "x" * 3000, "1" + "h" * 3000):
        with pytest.raises(InvalidInput) as since:
            parse_since(text, NOW)
        with pytest.raises(InvalidInput) as expiry:
            parse_expiry(text)
        for refused in (since, expiry):
            assert f"({len(text)} characters)" in str(refused.value)
            assert len(str(refused.value)) < 400


def test_shortened_text_keeps_its_limit() -> None:
    assert shortened("abc", 3) == "abc"
    assert shortened("abcd", 3) == "ab…"


@pytest.mark.parametrize(
    ("text", "level"), [("warning", 30), ("ERROR", 40), ("0", 0), ("25", 25), ("1000", 1000)]
)
def test_a_level_is_a_name_in_any_case_or_a_number_up_to_1000(text: str, level: int) -> None:
    assert parse_level(text) == level


@pytest.mark.parametrize("text", ["1001", "99999999999999999999", "-1", "LOUD", "\uff11", ""])
def test_other_levels_are_refused_listing_the_choices(text: str) -> None:
    with pytest.raises(InvalidInput, match="use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        parse_level(text)


# parameters


def test_parameters_of_standard_json_pass() -> None:
    parameters = {"day": "2027-03-01", "ids": [1, 2.5, None, True], "opts": {"x": {"y": "é"}}}

    assert check_parameters(parameters) is parameters


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        ({"x": "\ud800"}, "parameter x: text must be valid Unicode"),
        ({"x": ["ok", {"y": "a\udcffb"}]}, "parameter x[1].y: text must be valid Unicode"),
        ({"x": {"\ud800": 1}}, "parameter x: keys must be valid Unicode text"),
        ({"x": float("nan")}, "parameter x: numbers must be finite"),
        ({"x": [float("-inf")]}, "parameter x[0]: numbers must be finite"),
        ({"x": {1, 2}}, "parameter x: set is not a JSON value"),
        ({"not a name": 1}, "'not a name' is not a parameter name"),
        ({"\ud800": 1}, "is not a parameter name"),
    ],
)
def test_parameters_that_are_not_standard_json_are_refused_naming_the_parameter(
    parameters: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_parameters(parameters)

    assert problem in str(refused.value)


def test_parameters_nested_too_deep_or_too_large_are_refused() -> None:
    deep: Any = "bottom"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nested deeper than 32 levels"):
        check_parameters({"x": deep})
    with pytest.raises(InvalidInput, match="at most 262,144"):
        check_parameters({"x": "a" * MAX_PARAMETERS_BYTES})
    assert check_parameters({"x": "a" * (MAX_PARAMETERS_BYTES - 100)})


# states


@pytest.mark.parametrize("text", ["failed", "Failed", "FAILED", " failed "])
def test_failed_in_any_case_is_the_failed_family(text: str) -> None:
    chosen = parse_state_filter(text)

    assert chosen == StateFilter(types=frozenset({"FAILED", "CRASHED"}))
    for name in ("Failed", "TimedOut", "Crashed"):
        assert chosen.matches("CRASHED" if name == "Crashed" else "FAILED", name)
    for state_type, name in [("CANCELLED", "Cancelled"), ("CANCELLED", "Missed")]:
        assert not chosen.matches(state_type, name)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("only:Failed", "Failed"),
        ("ONLY:failed", "Failed"),
        ("timedout", "TimedOut"),
        ("only:TimedOut", "TimedOut"),
        ("completed", "Completed"),
        ("Skipped", "Skipped"),
        ("CRASHED", "Crashed"),
    ],
)
def test_a_state_name_or_only_name_is_exactly_that_state(text: str, name: str) -> None:
    assert parse_state_filter(text) == StateFilter(names=frozenset({name}))


@pytest.mark.parametrize("text", ["Bogus", "only:", "only:failedd", "fail", "FAILED,CRASHED"])
def test_an_unknown_state_is_refused_listing_the_choices(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_state_filter(text)

    message = str(refused.value)
    assert message.startswith(f"{text!r} is not a state")
    assert "failed (Failed, TimedOut, Crashed)" in message
    assert "only:NAME" in message
    assert "Skipped" in message


def test_failed_runs_are_failed_timed_out_and_crashed_by_type_or_name() -> None:
    assert FAILED_NAMES == ("Failed", "TimedOut", "Crashed")
    for state_type, name in [
        ("FAILED", None),
        ("CRASHED", None),
        (None, "TimedOut"),
        (None, "Crashed"),
        ("FAILED", "Rejected"),  # a flow's own name for a FAILED state
    ]:
        assert is_failed(state_type, name)
    for state_type, name in [("CANCELLED", "Missed"), ("COMPLETED", "Completed"), (None, None)]:
        assert not is_failed(state_type, name)


@pytest.mark.parametrize(
    ("state", "state_type", "event"),
    [
        ("Failed", "FAILED", NotifyEvent.FAILED),
        ("TimedOut", None, NotifyEvent.TIMED_OUT),
        ("Crashed", None, NotifyEvent.CRASHED),
        ("Rejected", "FAILED", NotifyEvent.FAILED),
        ("Cancelled", "CANCELLED", None),
        ("Missed", None, None),
    ],
)
def test_notifications_go_out_for_the_failed_family(
    state: str, state_type: str | None, event: NotifyEvent | None
) -> None:
    summary = {"deployment": "etl", "state": state, "state_type": state_type}

    events = [notification.event for notification in events_for_summary(summary, None)]

    assert events == ([event] if event else [])


def test_metrics_count_failed_runs_of_the_family_only() -> None:
    metrics = DaemonMetrics(pending=lambda: 0, busy=lambda: 0, idle=lambda: 0)
    for state, state_type in [
        ("Failed", "FAILED"),
        ("TimedOut", "FAILED"),
        ("Crashed", None),
        ("Cancelled", "CANCELLED"),
        ("Completed", "COMPLETED"),
    ]:
        metrics.run_finished({"deployment": "etl", "state": state, "state_type": state_type})

    text = metrics.render().decode()

    assert 'gnomon_failed_runs_total{deployment="etl"} 3.0' in text


# intervals


@pytest.mark.parametrize("text", ["1ms", "500ms", "999ms", "PT0.5S", "900000us"])
def test_an_interval_below_a_second_is_refused_naming_the_minimum(text: str) -> None:
    with pytest.raises(ScheduleError) as refused:
        parse_every(text)

    assert str(refused.value) == f"interval {text!r} must be at least 1s"


def test_intervals_of_a_second_or_more_are_read() -> None:
    assert parse_every("1s") == timedelta(seconds=1)
    assert parse_every("1.5s") == timedelta(milliseconds=1500)
    with pytest.raises(ScheduleError, match="interval 500ms must be at least 1s"):
        IntervalTrigger(timedelta(milliseconds=500), NOW)


# lone surrogates


def test_lone_surrogates_become_replacement_characters_and_pairs_their_character() -> None:
    assert valid_text("a\ud800b") == "a\ufffdb"
    assert valid_text("\ud83d\ude00") == "\U0001f600"
    assert valid_text("plain café") == "plain café"
    assert loads('{"x": "\\ud800", "\\udcff": ["ok"]}') == {"x": "\ufffd", "\ufffd": ["ok"]}
    assert loads('{"x": "\\u00e9"}') == {"x": "é"}


# secret values


def test_secret_values_are_every_scalar_under_a_secret_key_at_any_depth() -> None:
    parameters = {
        "password": 987654321,
        "db": {"host": "db1", "db_password": 'hunter"22'},
        "credentials": {"user": "svc-user", "keys": ["key-one", "abc"]},
        "token": "***",
        "api_key": None,
        "region": "emea-west",
    }

    assert secret_values(parameters) == {
        "987654321",
        'hunter"22',
        'hunter\\"22',  # as JSON and repr() escape it
        "svc-user",
        "key-one",
    }


def test_mask_text_replaces_each_secret_even_inside_a_longer_one() -> None:
    text = "bad password 987654321 for postgres://u:hunter22@db (hunter2)"

    assert mask_text(text, {"hunter2", "hunter22", "987654321"}) == (
        f"bad password {MASK} for postgres://u:{MASK}@db ({MASK})"
    )
    assert mask_text(text, set()) == text


def test_remembered_secrets_are_masked_in_text_fields_and_written_output() -> None:
    remember_secrets({"api_token": "tok-5150-remembered", "limit": 5150})
    buffer = io.StringIO()

    MaskingWriter(buffer).write("using tok-5150-remembered now\n")

    assert mask_known("Error: tok-5150-remembered refused") == f"Error: {MASK} refused"
    assert buffer.getvalue() == f"using {MASK} now\n"
    fields = mask_known_fields(
        {"event": "x tok-5150-remembered", "flow_run_id": "tok-5150-remembered", "n": [".."]}
    )
    assert fields == {"event": f"x {MASK}", "flow_run_id": "tok-5150-remembered", "n": [".."]}


def test_a_parameter_validation_error_masks_a_secret_named_parameters_value() -> None:
    error = ParameterTypeError("login", [("password", "notanint987", "not an int")])

    assert "notanint987" not in str(error)
    assert f"parameter 'password' = '{MASK}': not an int" in str(error)
    assert json.dumps(str(error))  # still one plain line
