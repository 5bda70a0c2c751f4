"""The overview page: the timeline of runs by deployment and time bin with the next fires,
the runs of the last day by state, what is failing, late or missed, and the daemon's health;
in a real browser against a real HTTP server on a real store. And the contract of the
store's run bins (``run_bins``, kept by triggers), which the timeline reads, on each backend.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import create_run
from gnomon.control import Operations, iso
from gnomon.states import StateName, StateType
from gnomon.store import Actor, Store
from test_api import Api, api  # noqa: F401 (the fixture)
from test_dashboard import HOSTILE, browser, log_in, page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.backends

TEN = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def scheduled(store: Store, deployment: str, at: datetime, **values: Any) -> str:
    """A run of ``deployment`` for the nominal time ``at`` (Scheduled unless ``values`` say)."""
    run_id = new_id()
    row = {"id": run_id, "name": f"run-{run_id[:6]}", "flow_name": "report"}
    create_run(store, {**row, "deployment_name": deployment, "scheduled_for": at, **values})
    return run_id


def settle(store: Store, run_id: str, state_type: StateType, state_name: str) -> None:
    """The run's final state as a worker records it (the batched writer), committed."""
    moment = datetime.now(UTC)
    values = {"state_type": state_type, "state_name": state_name, "end_time": moment}
    state = {"flow_run_id": run_id, "timestamp": moment, "type": state_type, "name": state_name}
    store.settle_flow_run(run_id, values, state)  # type: ignore[arg-type]
    store.flush()


def counts(store: Store, start: datetime, minutes: int, width: int) -> dict[tuple, int]:
    rows = store.read_run_bins(["d", "e"], start, start + timedelta(minutes=minutes), width)
    return {
        (row.deployment_name, row.bin_start - int(start.timestamp()), row.state_name): row.runs
        for row in rows
        if row.runs
    }


def test_a_run_is_counted_once_in_the_bin_of_its_nominal_time_when_it_finishes(
    store: Store,
) -> None:
    run_id = scheduled(store, "d", TEN + timedelta(minutes=4, seconds=59))
    assert counts(store, TEN, 10, 300) == {}
    assert store.set_run_state(run_id, StateType.RUNNING, StateName.RUNNING)
    assert counts(store, TEN, 10, 300) == {}  # not finished: not counted
    settle(store, run_id, StateType.COMPLETED, StateName.COMPLETED)
    assert counts(store, TEN, 10, 300) == {("d", 0, "Completed"): 1}
    # A second final state is refused, and counted nowhere.
    assert not store.set_run_state(run_id, StateType.CRASHED, StateName.CRASHED)
    assert counts(store, TEN, 10, 300) == {("d", 0, "Completed"): 1}


def test_a_retried_run_leaves_its_failed_bin_and_counts_where_it_ends(store: Store) -> None:
    run_id = scheduled(store, "d", TEN + timedelta(minutes=5))  # the second 5-minute bin
    settle(store, run_id, StateType.FAILED, StateName.FAILED)
    assert counts(store, TEN, 10, 300) == {("d", 300, "Failed"): 1}
    # The deployment's retries reopen the run: Failed -> AwaitingRetry -> Running -> done.
    assert store.set_run_state(run_id, StateType.SCHEDULED, StateName.AWAITING_RETRY)
    assert counts(store, TEN, 10, 300) == {}
    assert store.set_run_state(run_id, StateType.RUNNING, StateName.RETRYING)
    settle(store, run_id, StateType.COMPLETED, StateName.COMPLETED)
    assert counts(store, TEN, 10, 300) == {("d", 300, "Completed"): 1}


def test_bins_split_at_their_boundaries_and_sum_into_wider_bins(store: Store) -> None:
    for minute, deployment in ((0, "d"), (4, "d"), (5, "d"), (14, "d"), (15, "d"), (3, "e")):
        run_id = scheduled(store, deployment, TEN + timedelta(minutes=minute))
        settle(store, run_id, StateType.COMPLETED, StateName.COMPLETED)
    missed = TEN + timedelta(minutes=9, seconds=59, microseconds=999_999)
    scheduled(store, "d", missed, state_type=StateType.CANCELLED, state_name=StateName.MISSED)

    assert counts(store, TEN, 20, 300) == {
        ("d", 0, "Completed"): 2,
        ("d", 300, "Completed"): 1,
        ("d", 300, "Missed"): 1,
        ("d", 600, "Completed"): 1,
        ("d", 900, "Completed"): 1,
        ("e", 0, "Completed"): 1,
    }
    assert counts(store, TEN, 20, 900) == {
        ("d", 0, "Completed"): 4,
        ("d", 0, "Missed"): 1,
        ("d", 900, "Completed"): 1,
        ("e", 0, "Completed"): 1,
    }
    # [start, end): the bin at the end is not in the window.
    assert counts(store, TEN, 15, 900) == {
        ("d", 0, "Completed"): 4,
        ("d", 0, "Missed"): 1,
        ("e", 0, "Completed"): 1,
    }
    # Wider than any stored span: the hourly bins summed (5-minute ones would be 24 rows).
    assert counts(store, TEN, 20, 7200) == {
        ("d", 0, "Completed"): 5,
        ("d", 0, "Missed"): 1,
        ("e", 0, "Completed"): 1,
    }
    end = TEN + timedelta(minutes=20)
    totals = {(row.state_name, row.runs) for row in store.read_run_totals(TEN, end)}
    assert totals == {("Completed", 6), ("Missed", 1)}
    missed = {(row.deployment_name, row.runs) for row in store.read_state_runs("Missed", TEN, end)}
    assert missed == {("d", 1)}


def test_the_migration_counts_the_runs_stored_before_it(store: Store) -> None:
    from alembic import command

    from gnomon.store._migrate import alembic_config  # the migration itself is under test

    for minute, state in ((1, StateName.COMPLETED), (7, StateName.FAILED)):
        run_id = scheduled(store, "d", TEN + timedelta(minutes=minute))
        settle(store, run_id, StateType(state.upper()), state)
    before = counts(store, TEN, 10, 300)
    config = alembic_config(store.url)
    command.downgrade(config, "0011")
    command.upgrade(config, "head")
    assert (
        counts(store, TEN, 10, 300) == before == {("d", 0, "Completed"): 1, ("d", 300, "Failed"): 1}
    )
    assert counts(store, TEN, 60, 3600) == {("d", 0, "Completed"): 1, ("d", 0, "Failed"): 1}


# The page, in a browser.


def bin_start(moment: datetime, minutes: int) -> str:
    """The ISO start of the ``minutes``-wide bin ``moment`` falls in (bins are aligned to
    their width since the epoch)."""
    width = minutes * 60
    return iso(datetime.fromtimestamp(int(moment.timestamp()) // width * width, UTC)) or ""


def row(view: Any, deployment: str) -> Any:
    return view.locator(f"li.tl-row[data-deployment={deployment}]")


@pytest.mark.slow
@pytest.mark.sqlite_only  # in Chromium; the page's queries: test_dashboard_pages
def test_past_runs_show_in_their_row_and_bin_and_a_failing_deployment_is_listed(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    now = datetime.now(UTC)
    done_at, failed_at = now - timedelta(hours=3), now - timedelta(hours=2)
    settle(api.store, scheduled(api.store, "sync-crm", done_at), StateType.COMPLETED, "Completed")
    settle(api.store, scheduled(api.store, "sync-crm", failed_at), StateType.FAILED, "TimedOut")
    log_in(page, api, api.token, "/")

    done = row(page, "sync-crm").locator(f"li.m[data-bin='{bin_start(done_at, 15)}']")
    assert done.get_attribute("class") == "m completed"
    assert "1 Completed" in (done.get_attribute("title") or "")
    failed = row(page, "sync-crm").locator(f"li.m[data-bin='{bin_start(failed_at, 15)}']")
    assert failed.inner_text() == "✕"  # not by colour alone
    assert "1 TimedOut" in (failed.get_attribute("title") or "")
    assert row(page, "nightly-report").locator("li.m.completed, li.m.failed").count() == 0
    assert "sync-crm" in page.inner_text("#failing")
    assert "TimedOut" in page.inner_text("#failing")
    assert "nightly-report" not in page.inner_text("#failing")
    by_state = page.inner_text("#by-state")
    assert "Completed: 1" in by_state
    assert "TimedOut: 1" in by_state
    assert "No daemon attached" in page.inner_text("#daemon")

    # The deployment's next run succeeds: it is no longer failing, without a reload.
    settle(api.store, scheduled(api.store, "sync-crm", now), StateType.COMPLETED, "Completed")
    from playwright.sync_api import expect  # here: without playwright, the store tests run

    expect(page.locator("#failing")).not_to_contain_text("sync-crm")


@pytest.mark.slow
@pytest.mark.sqlite_only  # in Chromium; the page's queries: test_dashboard_pages
def test_next_fires_show_hollow_for_an_active_deployment_and_not_for_a_paused_one(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    Operations(api.store, Actor("test", "cli")).pause(["sync-crm"], "maintenance")
    log_in(page, api, api.token, "/?window=7d")
    # A daily cron fires within the 42 h ahead of a 7 d window's "now".
    ahead = row(page, "nightly-report").locator("li.m.next")
    assert ahead.count() >= 1
    assert ahead.first.inner_text() == "○"
    assert "next fire" in (ahead.first.get_attribute("title") or "")
    assert row(page, "sync-crm").locator("li[title*='next fire']").count() == 0
    assert "paused" in row(page, "sync-crm").inner_text()

    Operations(api.store, Actor("test", "cli")).resume(["sync-crm"])
    page.goto(api.url + "/?window=6h")
    # Every 15 minutes: a hollow mark in each 15 minutes ahead (5-minute bins).
    assert row(page, "sync-crm").locator("li[title*='next fire']").count() >= 5


@pytest.mark.slow
@pytest.mark.sqlite_only  # in Chromium; the page's queries: test_dashboard_pages
def test_the_window_switches_and_scrolls_and_bad_values_say_so(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    log_in(page, api, api.token, "/")
    assert "Each column is 15 min" in page.inner_text("#legend")
    assert row(page, "sync-crm").locator(".bins > li").count() == 96
    page.click("nav.window a:text-is('6h')")
    page.wait_for_url("**/?window=6h")
    assert "Each column is 5 min" in page.inner_text("#legend")
    assert row(page, "sync-crm").locator(".bins > li").count() == 72
    assert page.locator("nav.window a[aria-current]").inner_text() == "6h"
    first_tick = page.locator(".tl-axis time").first.get_attribute("datetime")

    page.click("text=← earlier")
    page.wait_for_url("**/?window=6h&back=1")
    earlier = page.locator(".tl-axis time").first.get_attribute("datetime")
    assert earlier is not None
    assert first_tick is not None
    assert datetime.fromisoformat(first_tick) - datetime.fromisoformat(earlier) == timedelta(
        hours=6
    )
    page.click("text=later →")
    page.wait_for_url("**/?window=6h")

    response = page.goto(api.url + "/?window=1y&back=-3&page=0")
    assert response.status == 400
    alerts = page.inner_text("main")
    assert "window must be one of 6h, 24h, 7d" in alerts
    assert "back must be a whole number" in alerts
    assert "page must be a whole number" in alerts
    assert row(page, "sync-crm").count() == 1  # the default window, shown anyway


@pytest.mark.slow
@pytest.mark.sqlite_only  # in Chromium; the page's queries: test_dashboard_pages
def test_hostile_state_names_and_filters_show_literally(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    at = datetime.now(UTC) - timedelta(hours=1)
    settle(api.store, scheduled(api.store, "sync-crm", at), StateType.FAILED, HOSTILE)
    log_in(page, api, api.token, "/?q=" + "%3Cscript%3Ealert(4)%3C%2Fscript%3E")
    assert page.locator("#q").input_value() == "<script>alert(4)</script>"
    assert "No deployments match" in page.inner_text("#timeline")
    page.goto(api.url + "/")
    assert HOSTILE in page.inner_text("#failing")
    assert HOSTILE in page.inner_text("#by-state")
    mark = row(page, "sync-crm").locator(f"li.m[data-bin='{bin_start(at, 15)}']")
    assert HOSTILE in (mark.get_attribute("title") or "")
    assert page.evaluate("document.querySelectorAll('script:not([src]), img').length") == 0
    assert page.dialogs == []


def test_the_daemons_health_and_workers_show_as_its_health_reports_them(store: Store) -> None:
    import httpx

    from gnomon.daemon._health import Health  # the daemon's own value, as it hands it over
    from gnomon.http import create_app
    from gnomon.http._server import ApiServer

    clock = [100.0]
    health = Health(30.0, monotonic=lambda: clock[0])
    app = create_app(store, nudge=lambda _what: None, auth=False, health=health.status)
    server = ApiServer(app, "127.0.0.1", 0)  # api_auth = false: loopback only
    server.start()
    try:
        assert "not yet" in httpx.get(server.url + "/").text  # before the loop's first tick
        health.ticked()
        health.watch_workers(lambda: (2, 1))
        health.report("store", "the store cannot be written", "database is locked")
        clock[0] += 1.5
        text = httpx.get(server.url + "/").text
    finally:
        server.stop()
    assert "2 busy, 1 idle" in text
    assert "1.5 s ago" in text
    assert "degraded" in text
    assert "database is locked" in text


SLEEPER = """
import time
from gnomon import flow


@flow
def sleep_long() -> None:
    time.sleep(120)
"""


@pytest.mark.slow
@pytest.mark.sqlite_only  # in Chromium; the page's queries: test_dashboard_pages
def test_a_real_daemons_health_busy_worker_and_running_run_show_on_the_overview(
    tmp_path: Any,
    gnomon_home: Any,
    store: Store,
    daemons: list,
    page: Any,  # noqa: F811
) -> None:
    import re

    from playwright.sync_api import expect

    from test_daemon import start_daemon, wait_for, write_config
    from test_daemon_control import _api_url

    (tmp_path / "sleepers.py").write_text(SLEEPER)
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "sleeper"
        flow = "sleepers.py:sleep_long"
        interval = "1s"
        """,
        daemon='workers = 2\napi = "127.0.0.1:0"',
    )
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    url = _api_url(daemon)
    token = (gnomon_home / "api-token").read_text().strip()
    running = [StateType.RUNNING]
    wait_for(
        lambda: [r for r in store.read_unfinished_runs(["sleeper"], 10) if r.state_type in running],
        what="a running run",
    )
    page.goto(url + "/")
    page.fill("#token", token)
    page.click("form.login button")
    page.wait_for_url(url + "/")
    daemon_part = page.locator("#daemon")
    expect(daemon_part).to_contain_text("ok")
    expect(daemon_part).to_contain_text(re.compile(r"[12] busy, [01] idle"))
    assert row(page, "sleeper").locator("li.m.running").count() >= 1
