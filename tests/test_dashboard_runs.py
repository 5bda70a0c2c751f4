"""The runs page in a real browser against a real HTTP server on a real store: the failed
filter's family, paging through older pages, a new run appearing without reloading, user
text that stays text, and a filter value that cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from conftest import create_run
from gnomon.states import StateName, StateType
from test_api import Api, api  # noqa: F401 (the fixture)
from test_dashboard import HOSTILE, browser, log_in, page  # noqa: F401 (fixtures)

# In Chromium on SQLite only: the pages' queries run on both backends in test_dashboard_pages.
pytestmark = pytest.mark.slow

START = datetime.now(UTC) - timedelta(days=1)
TYPES = {
    StateName.COMPLETED: StateType.COMPLETED,
    StateName.FAILED: StateType.FAILED,
    StateName.TIMED_OUT: StateType.FAILED,
    StateName.CRASHED: StateType.CRASHED,
    StateName.CANCELLED: StateType.CANCELLED,
    StateName.RUNNING: StateType.RUNNING,
}


def add_run(server: Api, index: int, state: StateName = StateName.COMPLETED, **values: Any) -> str:
    """A run of sync-crm, the ``index``-th: created ``index`` minutes after START (two
    runs to a minute, so pages end between runs created in the same instant)."""
    run_id = f"{index + 1:032x}"
    started = START + timedelta(minutes=index)
    create_run(
        server.store,
        {
            "id": run_id,
            "name": f"run-{index}",
            "flow_name": "report",
            "deployment_name": "sync-crm",
            "scheduled_for": started,
            "trigger": "schedule",
            "state_type": TYPES[state],
            "state_name": state,
            "start_time": started,
            "end_time": started + timedelta(seconds=75) if state != StateName.RUNNING else None,
            "created": START + timedelta(minutes=index // 2),
            **values,
        },
    )
    return run_id


def listed(shown: Any) -> list[str]:
    """The runs the page ``shown`` shows, by name, top to bottom."""
    return shown.locator("#runs-list tr[data-run] th a").all_inner_texts()


def test_the_failed_filter_shows_timed_out_and_crashed_runs_too(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    for index, state in enumerate(TYPES):
        add_run(api, index, state)
    log_in(page, api, api.token, "/runs")
    assert len(listed(page)) == len(TYPES)
    page.select_option("#state", "failed")
    page.click("form.filter button")
    page.wait_for_url("**/runs?state=failed*")
    rows = page.locator("#runs-list tr[data-run]")
    assert listed(page) == ["run-3", "run-2", "run-1"]
    assert [rows.nth(n).locator(".badge").inner_text() for n in range(3)] == [
        "Crashed",
        "TimedOut",
        "Failed",
    ]
    assert "1 min 15 s" in rows.nth(0).inner_text()  # its duration
    assert rows.nth(0).locator("a[href='/deployments/sync-crm']").count() == 1
    page.select_option("#state", "only:Failed")
    page.click("form.filter button")
    page.wait_for_url("**/runs?state=only*")
    assert listed(page) == ["run-1"]


def test_older_pages_show_every_run_once_and_newest_goes_back(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    total = 123  # three pages of 50, 50 and 23
    for index in range(total):
        add_run(api, index, trigger="manual" if index % 2 == 0 else "schedule")
    log_in(page, api, api.token, "/runs")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        seen.extend(listed(page))
        older = page.locator("nav.pages a[rel=next]")
        if older.count() == 0:
            break
        older.click()
        page.wait_for_url("**before=*")
        assert page.locator("#runs-list[data-live]").count() == 0  # only the first page is
    assert pages == 3
    assert seen == [f"run-{index}" for index in reversed(range(total))]
    page.click("nav.pages >> text=Newest")
    page.wait_for_url(api.url + "/runs")
    assert listed(page)[0] == f"run-{total - 1}"

    # The filters go along to the older pages.
    page.goto(api.url + "/runs?trigger=manual")
    manual = listed(page)
    page.click("nav.pages a[rel=next]")
    page.wait_for_url("**trigger=manual*")
    manual += listed(page)
    assert page.locator("#trigger").input_value() == "manual"
    assert manual == [f"run-{index}" for index in reversed(range(0, total, 2))]


def test_a_new_run_appears_on_the_open_first_page_without_reloading(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    add_run(api, 0)
    log_in(page, api, api.token, "/runs")
    page.evaluate("window.notReloaded = true")
    add_run(api, 1, StateName.RUNNING, name="arrived-later", created=datetime.now(UTC))
    expect(page.locator("#runs-list tr[data-run] th a").first).to_have_text("arrived-later")
    assert page.evaluate("window.notReloaded") is True


def test_hostile_text_in_a_run_name_and_in_filters_shows_literally(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    add_run(api, 0, name=HOSTILE)
    log_in(page, api, api.token, "/runs")
    assert page.locator("#runs-list tr[data-run] th a").inner_text() == HOSTILE
    for name in ("state", "trigger", "deployment", "since"):
        page.goto(f"{api.url}/runs?{name}={quote(HOSTILE)}")
        assert "<script>alert(1)</script>" in page.inner_text("[role=alert]")
        assert page.locator(f"#{name}").input_value() == HOSTILE
        assert page.locator("#runs-list").count() == 0
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.dialogs == []


def test_a_bad_since_says_what_is_wrong_and_is_no_server_error(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    add_run(api, 0)
    log_in(page, api, api.token, "/runs")
    page.fill("#since", "yesterday-ish")
    page.click("form.filter button")
    page.wait_for_url("**since=yesterday-ish*")
    message = page.inner_text("[role=alert]")
    assert message.startswith("Cannot list runs with that filter. since: 'yesterday-ish'")
    assert page.locator("#since").input_value() == "yesterday-ish"
    response = page.request.get(api.url + "/runs?since=yesterday-ish&before=%%%")
    assert response.status == 400
    response = page.request.get(api.url + "/runs?before=bm90IGEgY3Vyc29y")
    assert response.status == 400
    assert "cursor" in response.text()
