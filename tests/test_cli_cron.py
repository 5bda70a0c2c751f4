"""``gnomon cron``: previewing a schedule's next fire times from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from gnomon.cli import main

SCRIPT = Path(sys.executable).with_name("gnomon")


def _gnomon(*args: str) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.is_file(), f"the gnomon script is not installed beside {sys.executable}"
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_installed_script_prints_local_time_utc_and_how_far_ahead() -> None:
    result = _gnomon(
        "cron", "30 2 * * *", "--tz", "America/New_York", "--after", "2027-03-13T12:00", "-n", "3"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Sun 2027-03-14 03:00:00 EDT  2027-03-14 07:00:00 UTC  in 14h",
        "Mon 2027-03-15 02:30:00 EDT  2027-03-15 06:30:00 UTC  in 1d 13h",
        "Tue 2027-03-16 02:30:00 EDT  2027-03-16 06:30:00 UTC  in 2d 13h",
    ]


def test_the_installed_script_prints_json_with_utc_offsets() -> None:
    result = _gnomon(
        "cron", "30 1 * * *", "--tz", "America/New_York", "--after", "2027-11-06T12:00", "--json"
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "2027-11-07T01:30:00-04:00",
        "2027-11-08T01:30:00-05:00",
        "2027-11-09T01:30:00-05:00",
        "2027-11-10T01:30:00-05:00",
        "2027-11-11T01:30:00-05:00",
    ]


def test_the_installed_script_exits_2_naming_the_bad_field() -> None:
    result = _gnomon("cron", "61 * * * *")

    assert result.returncode == 2
    assert "Error: minute 61 is outside 0-59" in result.stderr
    assert result.stdout == ""


def test_without_after_the_fire_times_start_now() -> None:
    before = datetime.now(UTC)
    result = _gnomon("cron", "* * * * *", "-n", "2", "--json")
    after = datetime.now(UTC)

    assert result.returncode == 0, result.stderr
    first, second = (datetime.fromisoformat(fire) for fire in json.loads(result.stdout))
    assert before < first <= after + timedelta(minutes=1)
    assert second - first == timedelta(minutes=1)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["cron", *args])
    return result.exit_code, result.stdout, result.stderr


HUMAN = [
    # Fall-back in New York: an hourly job fires at 01:00 EDT and again at 01:00 EST.
    (["0 * * * *", "--tz", "America/New_York", "--after", "2027-11-07T00:30", "-n", "3"], [
        "Sun 2027-11-07 01:00:00 EDT  2027-11-07 05:00:00 UTC  in 30m",
        "Sun 2027-11-07 01:00:00 EST  2027-11-07 06:00:00 UTC  in 1h 30m",
        "Sun 2027-11-07 02:00:00 EST  2027-11-07 07:00:00 UTC  in 2h 30m",
    ]),
    # Lord Howe's abbreviations differ in width; the columns stay aligned.
    (["*/30 * * * *", "--tz", "Australia/Lord_Howe", "--after", "2027-04-04T01:00", "-n", "3"], [
        "Sun 2027-04-04 01:30:00 +11    2027-04-03 14:30:00 UTC  in 30m",
        "Sun 2027-04-04 01:30:00 +1030  2027-04-03 15:00:00 UTC  in 1h",
        "Sun 2027-04-04 02:00:00 +1030  2027-04-03 15:30:00 UTC  in 1h 30m",
    ]),
    # --tz defaults to UTC; --after may carry its own offset or a Z.
    (["@daily", "--after", "2027-01-01T10:15:00+01:00", "-n", "2"], [
        "Sat 2027-01-02 00:00:00 UTC  2027-01-02 00:00:00 UTC  in 14h 45m",
        "Sun 2027-01-03 00:00:00 UTC  2027-01-03 00:00:00 UTC  in 1d 14h",
    ]),
    (["0 9 * * MON-FRI", "--tz", "Europe/Berlin", "--after", "2027-01-01T08:00:00Z", "-n", "1"], [
        "Mon 2027-01-04 09:00:00 CET  2027-01-04 08:00:00 UTC  in 3d",
    ]),
    (["30 1 * * * 15", "--after", "2027-01-01T01:30:00Z", "--iterations", "1"], [
        "Fri 2027-01-01 01:30:15 UTC  2027-01-01 01:30:15 UTC  in 15s",
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("args", "lines"), HUMAN)
def test_human_output(args: list[str], lines: list[str]) -> None:
    code, stdout, stderr = _invoke(*args)

    assert code == 0, stderr
    assert stdout.splitlines() == lines


JSON = [
    (["30 2 * * *", "--tz", "America/New_York", "--after", "2027-03-13T12:00", "-n", "2"],
     ["2027-03-14T03:00:00-04:00", "2027-03-15T02:30:00-04:00"]),
    # A naive --after is read in --tz: midnight in Sydney, not in UTC.
    (["0 * * * *", "--tz", "Australia/Sydney", "--after", "2027-10-03T01:30", "-n", "2"],
     ["2027-10-03T03:00:00+11:00", "2027-10-03T04:00:00+11:00"]),
    (["@weekly", "--after", "2027-01-01", "-n", "2"],
     ["2027-01-03T00:00:00+00:00", "2027-01-10T00:00:00+00:00"]),
]  # fmt: skip


@pytest.mark.parametrize(("args", "fires"), JSON)
def test_json_output(args: list[str], fires: list[str]) -> None:
    code, stdout, stderr = _invoke(*args, "--json")

    assert code == 0, stderr
    assert json.loads(stdout) == fires


ERRORS = [
    (["0 0 30 2 *"], "Error: never fires: day-of-month 30 does not exist in month 2"),
    (["* * *"], "Error: expected 5 fields (or 6 with seconds), got 3"),
    (["0 * * * MONDAY"], "Error: day-of-week 'MONDAY' is not a number or a day name (SUN-SAT)"),
    (["@daily", "--tz", "Mars/Base"], "Error: unknown timezone 'Mars/Base'"),
    (["@daily", "--after", "tomorrow"],
     "Error: Invalid value for '--after': 'tomorrow' is not an ISO 8601 date-time"),
    (["@daily", "-n", "0"], "Error: Invalid value for '-n' / '--iterations'"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), ERRORS)
def test_bad_input_exits_2_with_the_error_on_stderr(args: list[str], message: str) -> None:
    code, stdout, stderr = _invoke(*args)

    assert code == 2
    assert message in stderr
    assert stdout == ""


def test_a_schedule_that_stops_firing_says_so() -> None:
    code, stdout, stderr = _invoke("0 0 * * *", "--after", "9999-12-29T12:00", "--json")

    assert code == 0, stderr
    assert json.loads(stdout) == ["9999-12-30T00:00:00+00:00", "9999-12-31T00:00:00+00:00"]
    assert stderr.strip() == "cron '0 0 * * *' in UTC does not fire again"


def test_gnomon_help_lists_the_cron_command() -> None:
    result = CliRunner().invoke(main, ["--help"])

    assert result.exit_code == 0
    assert "cron" in result.stdout
