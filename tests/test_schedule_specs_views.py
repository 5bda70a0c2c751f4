"""A deployment with several specs where operators see schedules: `gnomon deployments
list/show/next` (next with the spec each fire is of), the API's deployment JSON (checked
against the served OpenAPI schema), and the dashboard's deployment page (a real browser)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from gnomon.control import Operations
from gnomon.store import Actor
from test_api import Api, api, write_config  # noqa: F401 (the fixture)
from test_cli_daemon import gnomon, table
from test_dashboard import browser, log_in, page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.backends

NEW_YORK = ZoneInfo("America/New_York")
RULE = "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=4"

MULTI = """
[[deployments]]
name = "multi"
flow = "flows.py:report"
timezone = "America/New_York"
active_until = 2099-12-31
parameters = { day = "today" }
schedules = [
  { cron = "0 6 * * *", parameters = { day = "yesterday" } },
  { interval = "12h", anchor = 2026-01-01T06:00:00 },
  { rrule = "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=4", dst = { skipped = "skip" } },
]
"""


def spec_of(when: datetime) -> int:
    """Which spec a fire of ``multi`` is of, by its time in New York: 06:00 is the cron's
    (in winter the interval's 11:00Z too: the first listed's), midnight the rrule's, and
    the interval's 11:00Z and 23:00Z are never either."""
    local = when.astimezone(NEW_YORK)
    return {(6, 0): 0, (0, 0): 2}.get((local.hour, local.minute), 1)


@pytest.fixture
def multi(api: Api, tmp_path: Path) -> Api:  # noqa: F811
    """The API's deployments and ``multi``, applied to its store."""
    config = write_config(tmp_path)
    config.write_text(config.read_text() + MULTI)
    Operations(api.store, Actor("test", "cli")).apply(config)
    return api


def test_the_api_shows_each_spec_its_bounds_and_which_spec_each_next_fire_is_of(
    multi: Api,
) -> None:
    with multi.admin as client:
        detail = client.get("/api/v1/deployments/multi").json()
        openapi = client.get("/openapi.json").json()
        listed = {each["name"]: each for each in client.get("/api/v1/deployments").json()}
    jsonschema.validate(
        detail,
        {"$ref": "#/components/schemas/DeploymentDetail", "components": openapi["components"]},
    )

    assert detail["schedule"] == (
        "cron 0 6 * * *; interval 12h; rrule FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=4"
    )
    assert detail["schedule_text"] == (
        "At 06:00; every 12h; Every month on the 4th of Mon-Fri at 00:00, skipped times not at"
        " all (until 2099-12-31)"
    )
    assert detail["timezone"] == "America/New_York"
    assert (detail["active_from"], detail["active_until"]) == (None, "2099-12-31")
    assert [(spec["kind"], spec["parameters"], spec["dst"]) for spec in detail["schedules"]] == [
        ("cron", {"day": "yesterday"}, {}),
        ("interval", {}, {}),
        ("rrule", {}, {"skipped": "skip"}),
    ]
    upcoming = detail["upcoming"]
    assert [fire["due"] for fire in upcoming] == detail["next_fires"]
    assert [fire["spec"] for fire in upcoming] == [spec_of(_instant(f["due"])) for f in upcoming]
    assert {fire["spec"] for fire in upcoming} >= {0, 1}

    assert listed["multi"]["schedule"] == detail["schedule"]


def test_the_cli_shows_each_spec_and_the_spec_of_each_next_fire(
    multi: Api, gnomon_home: Path
) -> None:
    shown = gnomon(gnomon_home, "deployments", "show", "multi")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[2:6] == [
        'schedules    #1 cron 0 6 * * * (At 06:00); parameters day="yesterday"',
        "             #2 interval 12h (every 12h)",
        f"             #3 rrule {RULE} (Every month on the 4th of Mon-Fri at 00:00, skipped"
        " times not at all)",
        "active       until 2099-12-31",
    ]

    following = gnomon(gnomon_home, "deployments", "next", "multi", "-n", "20")
    assert following.returncode == 0, following.stderr
    fires = [line.split("  ") for line in following.stdout.splitlines()]
    assert len(fires) == 20
    times = [_instant(when) for when, _ in fires]
    assert times == sorted(set(times))  # increasing, none twice
    written = ["#1 cron 0 6 * * *", "#2 interval 12h", f"#3 rrule {RULE}"]
    assert [spec for _, spec in fires] == [written[spec_of(when)] for when in times]
    assert {spec for _, spec in fires} >= set(written[:2])

    as_json = gnomon(gnomon_home, "deployments", "next", "multi", "-n", "3", "--json")
    listed = json.loads(as_json.stdout)
    assert [item["time"] for item in listed] == [when for when, _ in fires[:3]]
    assert {item["excluded"] for item in listed} == {None}

    listing = table(gnomon(gnomon_home, "deployments", "list").stdout)
    [row] = [cells for cells in listing if cells[0] == "multi"]
    assert row[1].startswith("cron 0 6 * * *; interval 12h; rrule")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.slow
def test_the_dashboard_lists_each_spec_in_words_and_the_spec_of_each_next_fire(
    multi: Api,
    page: Any,  # noqa: F811
) -> None:
    log_in(page, multi, multi.token, "/deployments/multi")
    specs = page.locator(".schedule ol.specs li")
    assert specs.count() == 3
    assert specs.nth(0).inner_text() == 'At 06:00 cron 0 6 * * * with day="yesterday"'
    assert specs.nth(1).inner_text() == "every 12h interval 12h"
    assert specs.nth(2).inner_text() == (
        f"Every month on the 4th of Mon-Fri at 00:00, skipped times not at all rrule {RULE}"
    )
    assert "Active until 2099-12-31" in page.inner_text(".schedule")
    upcoming = page.locator("ol.upcoming li").all_inner_texts()
    assert len(upcoming) == 10
    by = [text.split("by ")[1][:2] for text in upcoming]
    assert set(by) <= {"#1", "#2", "#3"}
    assert {"#1", "#2"} <= set(by)
