"""The run page in a real browser against a real HTTP server on a real store: a failed run's
traceback, task attempts and logs; a running run's state and log lines arriving without a
reload; cancel and retry; what a read token may do; a notification link through the login;
user text that must stay text; times in the zone asked for.

The runs are written to the store as a daemon's worker writes them (claim, task runs with
their states, logs, the final state), so the page reads what it would read in production.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gnomon.control import Operations
from gnomon.states import StateType
from gnomon.store import Actor, Store, TokenAccess
from test_api import Api, api  # noqa: F401 (the fixture)
from test_dashboard import HOSTILE, browser, log_in, page, token  # noqa: F401 (fixtures)

# In Chromium on SQLite only: the pages' queries run on both backends in test_dashboard_pages.
pytestmark = pytest.mark.slow

TRACEBACK = 'Traceback (most recent call last):\n  File "report.py", line 9\nValueError: bad day'


def started_run(api: Api, parameters: dict[str, Any] | None = None) -> str:  # noqa: F811
    """A manual run of nightly-report, claimed by a worker: Running."""
    ops = Operations(api.store, Actor("test", "cli"))
    run = ops.trigger("nightly-report", parameters or {"day": "2026-12-01"})
    assert api.store.claim_flow_run(run["id"], worker_pid=4242) is not None
    return str(run["id"])


def add_task(store: Store, run_id: str, name: str, outcomes: list[StateType]) -> str:
    """A task run of ``run_id`` with one attempt per outcome, each a second long."""
    task_id = uuid.uuid4().hex
    at = datetime.now(UTC) - timedelta(seconds=10)
    store.insert_task_run(
        {"id": task_id, "flow_run_id": run_id, "task_key": name, "name": name, "created": at}
    )
    for attempt, outcome in enumerate(outcomes, start=1):
        for offset, state in ((0, StateType.RUNNING), (1, outcome)):
            store.add_state(
                {
                    "flow_run_id": run_id,
                    "task_run_id": task_id,
                    "type": state,
                    "name": state.value.title().replace("_", ""),
                    "timestamp": at + timedelta(seconds=2 * attempt + offset),
                    "attempt": attempt,
                }
            )
    last = outcomes[-1]
    store.update_task_run(
        task_id,
        state_type=last,
        state_name=last.value.title(),
        run_count=len(outcomes),
        start_time=at + timedelta(seconds=2),
        end_time=at + timedelta(seconds=2 * len(outcomes) + 1),
    )
    return task_id


def add_log(store: Store, run_id: str, message: str, level: int = 20) -> None:
    store.add_log(
        {
            "flow_run_id": run_id,
            "deployment_name": "nightly-report",
            "timestamp": datetime.now(UTC),
            "level": level,
            "logger": "gnomon.flow_runs",
            "message": message,
        }
    )
    store.flush()


def fail(store: Store, run_id: str, message: str = "bad day") -> None:
    assert store.set_run_state(
        run_id,
        StateType.FAILED,
        "Failed",
        message,
        end_time=datetime.now(UTC),
        error_type="ValueError",
        error_message=message,
        error_traceback=TRACEBACK,
    )


def test_a_failed_run_shows_its_traceback_each_task_attempt_and_its_logs(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    run_id = started_run(api, {"day": "2026-12-01", "api_token": "t0p-s3cret"})
    retried = add_task(api.store, run_id, "fetch", [StateType.FAILED, StateType.COMPLETED])
    failed = add_task(api.store, run_id, "load", [StateType.FAILED])
    api.store.update_task_run(failed, error_message="login failed for t0p-s3cret")
    add_log(api.store, run_id, "fetching 2026-12-01")
    add_log(api.store, run_id, "load failed: bad day", level=40)
    fail(api.store, run_id)

    log_in(page, api, api.token, f"/runs/{run_id}")
    assert "Failed" in page.inner_text("h1")
    assert "ValueError: bad day" in page.inner_text("pre.traceback")
    attempts = page.locator(f"tr[data-task='{retried}'] rect title")
    assert [attempts.nth(i).text_content() for i in range(2)] == [
        "attempt 1: Failed after 1.000 s",
        "attempt 2: Completed after 1.000 s",
    ]
    assert "2 Failed" not in page.inner_text("#tasks-title")  # one failed, one completed
    assert "1 Failed" in page.inner_text("#tasks-title")
    logs = page.inner_text(".logs")
    assert "fetching 2026-12-01" in logs
    assert "load failed: bad day" in logs
    # A secret parameter is masked wherever it shows, a task run's error included.
    assert page.inner_text(f"tr[data-task='{failed}'] .task-error") == "login failed for ********"
    parameters = page.inner_text("pre.parameters")
    assert "t0p-s3cret" not in parameters
    assert "********" in parameters
    # A final run is not followed: no stream, no refreshing.
    assert page.locator("[data-log-stream], [data-live]").count() == 0


def test_a_running_run_changes_state_and_shows_new_log_lines_without_reloading(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    run_id = started_run(api)
    log_in(page, api, api.token, f"/runs/{run_id[:8]}")  # a prefix, as on the command line
    assert "Running" in page.inner_text("h1")
    page.wait_for_function("() => document.querySelector('[data-log-stream]') !== null")
    page.evaluate("window.marker = 'same page'")

    add_log(api.store, run_id, "step 1 of 3 done")
    page.locator(".logs li", has_text="step 1 of 3 done").wait_for()
    assert page.locator(".logs li", has_text="step 1 of 3 done").count() == 1

    assert api.store.set_run_state(
        run_id, StateType.COMPLETED, "Completed", end_time=datetime.now(UTC)
    )
    page.locator("h1 .badge", has_text="Completed").wait_for()
    assert page.evaluate("window.marker") == "same page"  # not reloaded


def test_cancel_from_the_run_page_is_audited_and_retry_opens_the_new_run(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    ops = Operations(api.store, Actor("test", "cli"))
    run_id = ops.trigger("nightly-report", {"day": "2026-12-02"})["id"]
    log_in(page, api, token(api, "on-call", TokenAccess.OPERATE), f"/runs/{run_id}")
    page.confirm.add("Cancel this run?")
    page.fill("#cancel-reason", "wrong day")
    page.click("form.cancel button")
    page.wait_for_url(f"**/runs/{run_id}?said=*")
    assert "Cancelled" in page.inner_text("[role=status]")
    stored = api.store.read_flow_run(run_id)
    assert stored is not None
    assert stored.state_type == StateType.CANCELLED
    [entry] = [e for e in api.store.read_audit(None, 10) if e.action == "cancel"]
    assert (entry.actor, entry.origin, entry.reason) == ("on-call", "dashboard", "wrong day")

    page.click("form.retry button")
    page.wait_for_url("**/runs/*?said=Retrying*")
    new_id = page.url.split("/runs/")[1].split("?")[0]
    assert new_id != run_id
    retry = api.store.read_flow_run(new_id)
    assert retry is not None
    assert retry.retry_of == run_id
    assert retry.parameters == {"day": "2026-12-02"}
    assert "Retry of" in page.inner_text("dl.facts")
    assert page.dialogs == ["Cancel this run?"]


def test_a_read_token_sees_no_run_buttons_and_its_forged_cancel_is_refused(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    run_id = started_run(api)
    log_in(page, api, token(api, "grafana", TokenAccess.READ), f"/runs/{run_id}")
    assert page.locator("form.cancel, form.retry").count() == 0
    csrf = page.locator("form.logout input[name=csrf]").get_attribute("value")
    response = page.request.post(
        api.url + f"/actions/runs/{run_id}/cancel", form={"csrf": csrf, "reason": "x"}
    )
    assert response.status == 403
    stored = api.store.read_flow_run(run_id)
    assert stored is not None
    assert stored.state_type == StateType.RUNNING


def test_a_notification_link_leads_through_the_login_to_the_run(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    run_id = started_run(api)
    log_in(page, api, api.token, f"/runs/{run_id}")  # asserts the login came first
    assert run_id in page.inner_text("dl.facts")
    for missing, says in (("0123abcd", "no run"), ("not-hex", "invalid run id")):
        response = page.goto(f"{api.url}/runs/{missing}")
        assert response is not None
        assert response.status == 404
        assert says in page.inner_text("main").lower()


def test_hostile_text_in_a_run_shows_literally_and_nothing_runs(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    run_id = started_run(api, {"day": HOSTILE})
    add_task(api.store, run_id, HOSTILE, [StateType.FAILED])
    add_log(api.store, run_id, HOSTILE, level=40)
    fail(api.store, run_id, HOSTILE)
    log_in(page, api, api.token, f"/runs/{run_id}")
    assert HOSTILE in page.inner_text("p.error")
    assert HOSTILE in page.inner_text(".logs")
    assert json.dumps(HOSTILE) in page.inner_text("pre.parameters")  # as JSON text
    assert HOSTILE in page.inner_text("table.gantt tbody th")
    assert page.evaluate("document.querySelectorAll('script:not([src]), img').length") == 0
    assert page.dialogs == []


def test_times_show_in_utc_the_browsers_zone_or_the_deployments_zone(
    api: Api,  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    context = browser.new_context(timezone_id="America/New_York")
    try:
        tab = context.new_page()
        log_in(tab, api, api.token, "/deployments")
        cell = "tr[data-deployment=nightly-report] time"  # Europe/Paris, in the fixture
        assert tab.inner_text(cell).startswith("in ")
        assert tab.get_attribute(cell, "title").endswith(" UTC")
        tab.select_option("#zone-mode", "deployment")
        assert "Europe/Paris" in tab.get_attribute(cell, "title")
        tab.select_option("#zone-mode", "local")
        assert tab.get_attribute(cell, "title").endswith(("EST", "EDT", "GMT-5", "GMT-4"))
        tab.reload()  # the choice is remembered
        assert tab.get_attribute(cell, "title").endswith(("EST", "EDT", "GMT-5", "GMT-4"))
    finally:
        context.close()


def test_a_run_with_many_task_runs_shows_them_a_page_at_a_time_with_every_count(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    run_id = started_run(api)
    at = datetime.now(UTC)
    for n in range(250):
        api.store.insert_task_run(
            {
                "id": uuid.uuid4().hex,
                "flow_run_id": run_id,
                "task_key": "step",
                "name": f"step-{n:03d}",
                "created": at + timedelta(milliseconds=n),
                "state_type": StateType.FAILED if n % 50 == 0 else StateType.COMPLETED,
                "state_name": "Failed" if n % 50 == 0 else "Completed",
            }
        )
    api.store.flush()
    log_in(page, api, api.token, f"/runs/{run_id}")
    assert "(250 · 245 Completed · 5 Failed)" in page.inner_text("#tasks-title")
    assert page.locator("table.gantt tbody tr").count() == 200
    assert "Task runs 1\u2013200 of 250" in page.inner_text("nav.pager")
    page.click("text=Later tasks")
    assert page.locator("table.gantt tbody tr").count() == 50
    assert page.inner_text("table.gantt tbody tr:first-child th") == "step-200"


def test_a_task_page_past_the_last_task_run_says_so_and_leads_to_the_first(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    run_id = started_run(api)
    for name in ("fetch", "transform", "load"):
        add_task(api.store, run_id, name, [StateType.COMPLETED])
    fail(api.store, run_id)
    log_in(page, api, api.token, f"/runs/{run_id}?tasks=400")
    tasks = page.inner_text("#run-tasks")
    assert "Task runs (3" in tasks
    assert "No task runs on this page" in tasks
    page.click("text=The first page of task runs")
    page.wait_for_url(f"**/runs/{run_id}")
    assert page.locator("table.gantt tbody tr").count() == 3
