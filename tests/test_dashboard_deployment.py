"""A deployment's page and the audit page in a real browser (Chromium, driven by playwright)
against a real HTTP server on a real store: the schedule, its next fires and why it did or
did not fire; run now, and what a read token may not do; the audit log, filtered and paged;
user text that must stay text; an unknown deployment."""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import create_run
from gnomon.control import Operations
from gnomon.states import StateName, StateType
from gnomon.store import Actor, AuditAction, TokenAccess
from test_api import CONFIG, Api, api  # noqa: F401 (the fixture)
from test_dashboard import HOSTILE, browser, log_in, page, token  # noqa: F401 (fixtures)

# In Chromium on SQLite only: the pages' queries run on both backends in test_dashboard_pages.
pytestmark = pytest.mark.slow

SKIP_REASON = "the previous run 0a1b2c3d is still running (overlap = skip)"


def a_run(name: str, minutes_ago: int, state: StateName, kind: StateType, **values: Any) -> dict:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {
        "id": uuid.uuid4().hex,
        "name": f"{name}@{at.isoformat()}",
        "flow_name": "report",
        "deployment_name": name,
        "scheduled_for": at,
        "created": at,
        "trigger": "schedule",
        "state_type": kind,
        "state_name": state,
        **values,
    }


def finished(name: str, minutes_ago: int, seconds: float, state: StateName, kind: StateType):
    row = a_run(name, minutes_ago, state, kind)
    row.update(start_time=row["created"], end_time=row["created"] + timedelta(seconds=seconds))
    return row


def test_a_deployments_page_shows_its_schedule_next_fires_durations_and_decisions(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    name = "nightly-report"
    create_run(api.store, finished(name, 50, 5, StateName.COMPLETED, StateType.COMPLETED))
    create_run(api.store, finished(name, 40, 65, StateName.TIMED_OUT, StateType.FAILED))
    skipped = a_run(name, 30, StateName.SKIPPED, StateType.CANCELLED, state_message=SKIP_REASON)
    create_run(api.store, skipped)
    alice = Operations(api.store, Actor("alice", "cli"))
    alice.pause([name], "INC-7 vendor outage")
    alice.resume([name])

    log_in(page, api, api.token)
    page.click(f"tr[data-deployment={name}] th a")
    page.wait_for_url(api.url + f"/deployments/{name}")
    assert page.inner_text("h1") == name
    schedule = page.inner_text(".schedule")
    assert "At 02:30" in schedule
    assert "cron 30 2 * * *" in schedule
    assert "Europe/Paris" in schedule
    assert page.locator("ol.upcoming li time").count() == 10

    skip = page.locator("tr[data-decision=skipped]")
    assert "Skipped" in skip.inner_text()
    assert SKIP_REASON in skip.inner_text()
    assert skip.locator("a").get_attribute("href") == f"/runs/{skipped['id']}"
    pause = page.locator("tr[data-decision=paused]")
    assert "Paused by alice" in pause.inner_text()
    assert "INC-7 vendor outage" in pause.inner_text()
    assert page.locator("tr[data-decision=resumed]").count() == 1
    kinds = page.locator("tr[data-decision]").evaluate_all(
        "rows => rows.map(r => r.dataset.decision)"
    )
    assert kinds == ["resumed", "paused", "skipped", "fired", "fired"]  # newest first

    titles = page.locator("svg.chart rect.bar title").all_text_contents()
    assert [title.rsplit(",", 1)[0] for title in titles] == [
        "Completed, 5.0 s",
        "TimedOut, 1 min 5 s",
    ]
    assert page.locator("svg.chart rect.kind-failed").count() == 1
    summary = page.inner_text("#chart-summary")
    assert "median 5.0 s" in summary
    assert "last 1 min 5 s (TimedOut)" in summary

    entries = page.locator("table.audit tr[data-audit]")
    assert entries.count() == 2
    assert "INC-7 vendor outage" in entries.last.inner_text()

    # The decisions stay current without reloading: a fire skipped now appears.
    later = a_run(name, 1, StateName.SKIPPED, StateType.CANCELLED, state_message="no slot free")
    create_run(api.store, later)
    page.locator("tr[data-decision=skipped]", has_text="no slot free").wait_for()

    alice.pause([name], "again")
    page.reload()
    assert "None while paused" in page.inner_text("p.upcoming")
    assert "again" in page.inner_text(".pause-state")


def test_a_deployment_paused_until_a_time_shows_when_and_its_fires_after_that(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    name = "nightly-report"
    until = datetime(2030, 12, 8, 8, 0, tzinfo=UTC)
    Operations(api.store, Actor("alice", "cli")).pause([name], "freeze", until)

    log_in(page, api, api.token, f"/deployments/{name}")

    state = page.locator(".pause-state .paused-until time")
    assert state.get_attribute("datetime") == "2030-12-08T08:00:00.000Z"
    assert "After its pause ends" in page.inner_text("p.upcoming")
    first = page.locator("ol.upcoming li time").first.get_attribute("datetime")
    assert first == "2030-12-09T01:30:00.000Z"  # 02:30 in Paris, after the pause
    decision = page.locator("tr[data-decision=paused]")
    assert "Paused by alice until" in decision.inner_text()
    ends = decision.locator("td:nth-child(2) time").get_attribute("datetime")
    assert datetime.fromisoformat(ends) == until


def test_run_now_creates_a_run_audited_as_made_from_the_dashboard(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    log_in(page, api, token(api, "on-call", TokenAccess.OPERATE))
    assert page.locator("tr[data-deployment=sync-crm] form.run-now button").count() == 1
    page.goto(api.url + "/deployments/sync-crm")
    page.click("form.run-now button")
    page.wait_for_url("**/deployments/sync-crm?said=*")
    [run] = api.store.read_runs(deployment="sync-crm")
    assert (run.trigger, run.requested_by) == ("manual", "on-call")
    assert run.id in page.inner_text("[role=status]")
    [entry] = api.store.read_audit(action=AuditAction.RUN)
    assert (entry.actor, entry.origin, entry.target) == ("on-call", "dashboard", run.id)
    assert page.locator(f"tr[data-decision=requested] a[href='/runs/{run.id}']").count() == 1


def test_a_read_token_sees_no_buttons_on_a_deployment_and_cannot_run_it(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    log_in(page, api, token(api, "grafana", TokenAccess.READ), "/deployments/sync-crm")
    assert "Active" in page.inner_text(".pause-state")
    assert page.locator("main form").count() == 0
    assert page.locator("main button").count() == 0
    csrf = page.locator("form.logout input[name=csrf]").get_attribute("value")
    response = page.request.post(
        api.url + "/actions/deployments/sync-crm/run", form={"csrf": csrf}, max_redirects=0
    )
    assert response.status == 403
    assert "needs operate" in response.text()
    assert api.store.read_runs(deployment="sync-crm") == []


def test_the_audit_page_shows_who_what_when_why_and_from_where_filtered_and_paged(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    Operations(api.store, Actor("alice", "cli")).pause(["sync-crm"], "INC-9 disk full")
    log_in(page, api, api.token, "/audit")
    row = page.locator("tr[data-audit=pause]")
    assert row.locator(".actor").inner_text() == "alice"
    assert row.locator(".reason").inner_text() == "INC-9 disk full"
    assert row.locator(".origin").inner_text() == "cli"
    assert row.locator(".what a").get_attribute("href") == "/deployments/sync-crm"
    assert row.locator("time").count() == 1

    page.fill("#actor", "alice")
    page.click("form.filter button")
    page.wait_for_url("**/audit?actor=alice*")
    assert page.locator("tr[data-audit]").count() == 1
    page.goto(api.url + "/audit?action=resume")
    assert "No audit entries match" in page.inner_text("main")
    page.goto(api.url + "/audit?target=sync-crm&action=pause")
    assert page.locator("tr[data-audit]").count() == 1
    page.goto(api.url + "/audit?action=explode")
    assert "There is no action 'explode'" in page.inner_text("[role=alert]")
    for bad in ("actor=%00", "target=" + "x" * 300):
        response = page.goto(api.url + "/audit?" + bad)
        assert response.status == 200
        assert "at most 200 printable characters" in page.inner_text("[role=alert]")
    page.goto(api.url + "/audit?before=yesterday")
    assert "page link is not valid" in page.inner_text("[role=alert]")

    robot = Actor("robot", "api")
    for number in range(150):
        api.store.record_audit(robot, AuditAction.RELOAD, None, f"reload {number}")
    page.goto(api.url + "/audit?actor=robot")
    first = page.locator("tr[data-audit] .reason").all_inner_texts()
    assert first == [f"reload {number}" for number in range(149, 49, -1)]
    page.click("a[rel=next]")
    page.wait_for_url("**/audit?actor=robot&before=*")
    second = page.locator("tr[data-audit] .reason").all_inner_texts()
    assert second == [f"reload {number}" for number in range(49, -1, -1)]
    assert page.locator("a[rel=next]").count() == 0
    page.click("text=Newest")
    assert page.locator("tr[data-audit] .reason").first.inner_text() == "reload 149"


def test_hostile_text_in_a_reason_a_parameter_and_a_tag_shows_literally_and_never_runs(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = tmp_path / "hostile.toml"
    config.write_text(
        textwrap.dedent(CONFIG)
        + textwrap.dedent(
            f"""
            [[deployments]]
            name = "hostile"
            flow = "flows.py:report"
            interval = "1h"
            tags = ['{HOSTILE}']
            description = '{HOSTILE}'
            parameters = {{ day = '{HOSTILE}', api_token = "s3cret-value" }}
            """
        )
    )
    outcome = Operations(api.store, Actor("test", "cli")).apply(config)
    assert outcome.problems == []
    Operations(api.store, Actor("test", "cli")).pause(["hostile"], HOSTILE)
    log_in(page, api, api.token, "/deployments/hostile")
    assert HOSTILE in page.inner_text(".pause-state .reason")
    assert HOSTILE in page.inner_text("p.flow .tag")
    assert HOSTILE in page.inner_text("p.description")
    parameters = page.inner_text("table.parameters")
    assert HOSTILE in parameters
    assert "s3cret-value" not in page.content()
    assert HOSTILE in page.inner_text("tr[data-decision=paused] .reason")
    page.goto(api.url + "/audit?target=hostile")
    assert HOSTILE in page.inner_text("tr[data-audit=pause] .reason")
    page.goto(api.url + "/audit?actor=" + HOSTILE.replace("#", ""))
    assert page.locator("#actor").input_value() == HOSTILE
    page.goto(api.url + "/deployments")
    assert HOSTILE in page.inner_text("tr[data-deployment=hostile] .tag")
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.dialogs == []


def test_an_unknown_deployment_has_a_not_found_page_saying_so(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    log_in(page, api, api.token)
    response = page.goto(api.url + "/deployments/nightly-reprot")
    assert response.status == 404
    message = page.inner_text("main")
    assert 'no deployment named "nightly-reprot"' in message
    assert 'did you mean "nightly-report"' in message
    assert page.goto(api.url + "/deployments/a..b").status == 404
