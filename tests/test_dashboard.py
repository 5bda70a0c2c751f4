"""The dashboard in a real browser (Debian's Chromium, driven by playwright) against a real
HTTP server on a real store: logging in and out, pausing with a reason and resuming, what a
read token may see and do, a revoked token's session, and user text that must stay text.

Without /usr/bin/chromium these tests skip, saying so; CI installs it (.ci/run) and sets
GNOMON_TEST_REQUIRE_BROWSER, under which they fail instead.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gnomon.control import Operations
from gnomon.store import Actor, TokenAccess
from test_api import Api, api  # noqa: F401 (the fixture)
from test_cli_daemon import gnomon

# In Chromium on SQLite only: the pages' queries run on both backends in test_dashboard_pages.
pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
PAUSES = ("pause", "resume")
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>{{7*7}} javascript:alert(3)'


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("GNOMON_TEST_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: the dashboard's browser tests need Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    dialogs: list[str] = []

    def answer(dialog: Any) -> None:
        """Record every dialog (an alert is an injected script that ran); accept the
        confirmations a test expects (``page.confirm``), dismiss the rest."""
        dialogs.append(dialog.message)
        if dialog.type == "confirm" and dialog.message in page.confirm:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", answer)
    page.dialogs = dialogs
    page.confirm = set()
    yield page
    context.close()


def runs_in_every_state(server: Api, name: str = "nightly-report") -> list[str]:
    """A run of ``name`` in each state, a minute apart, oldest first: the state names."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from conftest import create_run
    from gnomon.states import STATE_NAMES

    start = datetime.now(UTC) - timedelta(hours=1)
    for minute, (state, kind) in enumerate(STATE_NAMES.items()):
        at = start + timedelta(minutes=minute)
        run = {"id": uuid.uuid4().hex, "name": f"{name}-{minute}", "flow_name": "report"}
        run |= {"deployment_name": name, "scheduled_for": at, "created": at}
        create_run(server.store, run | {"state_type": kind, "state_name": state})
    return list(STATE_NAMES)


def log_in(page: Any, server: Api, token: str, path: str = "/deployments") -> None:
    page.goto(server.url + path)
    assert page.url.startswith(server.url + "/login?next=")
    page.fill("#token", token)
    page.click("form.login button")
    page.wait_for_url(server.url + path)


def is_paused(server: Api, name: str) -> bool:
    row = server.store.read_deployment(name)
    assert row is not None
    return bool(row.paused)


def token(server: Api, name: str, access: TokenAccess) -> str:
    return Operations(server.store, Actor("test", "cli")).create_token(name, access)


def test_logging_in_returns_to_the_page_asked_for_and_logging_out_ends_the_session(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    page.goto(api.url + "/login")
    page.fill("#token", "gnm_not-a-token")
    page.click("form.login button")
    assert "not valid" in page.inner_text("[role=alert]")

    log_in(page, api, api.token, "/deployments?tag=crm")
    rows = page.locator("tr[data-deployment]")
    assert rows.count() == 2
    assert "At 02:30" in page.inner_text("tr[data-deployment=nightly-report]")
    cookie = next(c for c in page.context.cookies() if c["name"] == "gnomon_session")
    # Over plain http the cookie is not Secure (over https it is: test_tls).
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Strict", False)

    page.click("form.logout button")
    page.wait_for_url(api.url + "/login")
    page.goto(api.url + "/deployments")
    assert page.url.startswith(api.url + "/login?next=")


def test_pausing_with_a_reason_and_resuming_from_the_dashboard(
    api: Api,  # noqa: F811
    page: Any,
    gnomon_home: Any,
) -> None:
    on_call = token(api, "on-call", TokenAccess.OPERATE)
    log_in(page, api, on_call)
    row = page.locator("tr[data-deployment=nightly-report]")
    row.locator("input[name=reason]").fill("INC-42 upstream down")
    row.locator("form.pause button").click()
    page.wait_for_url("**/deployments?said=*")
    assert "Paused nightly-report" in page.inner_text("[role=status]")
    assert "INC-42 upstream down" in page.inner_text("tr[data-deployment=nightly-report]")

    stored = api.store.read_deployment("nightly-report")
    assert stored is not None
    assert (stored.paused, stored.paused_by, stored.paused_reason) == (
        True,
        "on-call",
        "INC-42 upstream down",
    )
    [entry] = [e for e in api.store.read_audit(None, 10) if e.action == "pause"]
    assert (entry.actor, entry.origin, entry.detail) == (
        "on-call",
        "dashboard",
        {"client": "127.0.0.1"},
    )
    listed = gnomon(gnomon_home, "deployments", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"paused_reason": "INC-42 upstream down"' in listed.stdout

    page.locator("tr[data-deployment=nightly-report] form button", has_text="Resume").click()
    page.wait_for_url("**/deployments?said=Resumed*")
    assert not is_paused(api, "nightly-report")


def test_a_pause_for_a_while_from_the_dashboard_ends_by_itself_and_says_until_when(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    log_in(page, api, token(api, "on-call", TokenAccess.OPERATE))
    row = page.locator("tr[data-deployment=sync-crm]")
    row.locator("input[name=reason]").fill("vendor maintenance")
    row.locator("input[name=until]").fill("2h")
    asked = datetime.now(UTC)
    row.locator("form.pause button").click()
    page.wait_for_url("**/deployments?said=*")

    stored = api.store.read_deployment("sync-crm")
    assert stored is not None
    assert stored.paused_until is not None
    two_hours = stored.paused_until - asked
    assert timedelta(hours=2) <= two_hours <= timedelta(hours=2, seconds=5)
    said = page.inner_text("[role=status]")
    assert said.startswith("Paused sync-crm until "), said
    assert said.endswith(")."), said  # the zone's offset, in parentheses
    state = page.inner_text("tr[data-deployment=sync-crm] .pause-state")
    assert state.startswith("Paused until ")
    assert "vendor maintenance" in state

    # A field that is neither a duration nor a time is refused, saying why.
    other = page.locator("tr[data-deployment=nightly-report]")
    other.locator("input[name=reason]").fill("x")
    other.locator("input[name=until]").fill("next week")
    other.locator("form.pause button").click()
    page.wait_for_url("**/deployments?*said=*")
    assert page.inner_text("[role=status]").startswith("Pause for 'next week' ")
    assert not is_paused(api, "nightly-report")


def test_pause_and_resume_say_what_they_did_not_what_was_asked(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    log_in(page, api, token(api, "on-call", TokenAccess.OPERATE))
    Operations(api.store, Actor("alice", "cli")).pause(["nightly-report"], "INC-1")
    # This tab still shows nightly-report active: its pause changes nothing.
    row = page.locator("tr[data-deployment=nightly-report]")
    row.locator("input[name=reason]").fill("INC-2")
    row.locator("form.pause button").click()
    page.wait_for_url("**/deployments?*said=*")
    said = "nightly-report was already paused (by alice: INC-1); its reason is unchanged."
    assert page.inner_text("[role=status]") == said
    stored = api.store.read_deployment("nightly-report")
    assert stored is not None
    assert (stored.paused_by, stored.paused_reason) == ("alice", "INC-1")

    def said_after(path: str) -> str:
        csrf = page.locator("form.logout input[name=csrf]").get_attribute("value")
        response = page.request.post(
            api.url + path,
            form={"csrf": csrf, "reason": "x"},
            headers={"Referer": api.url + "/deployments"},
        )
        page.goto(response.url)
        return page.inner_text("[role=status]")

    assert said_after("/actions/deployments/sync-crm/resume") == "sync-crm is not paused."
    assert said_after("/actions/deployments/nightly-reprt/pause") == (
        'No deployment named "nightly-reprt"; did you mean "nightly-report"?'
    )
    assert said_after("/actions/deployments/a%20b/pause").startswith(
        "Invalid deployment name 'a b'"
    )
    assert said_after("/actions/deployments/nightly-report/resume") == "Resumed nightly-report."
    changes = [e.action for e in api.store.read_audit(None, 10) if e.action in PAUSES]
    assert changes == ["resume", "pause"]  # alice's pause, and the one resume that did


def test_a_page_shows_only_a_message_the_server_wrote_for_this_session(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    phishing = "Your session expired, paste your token at https://evil.example"
    log_in(page, api, api.token)
    for query in (f"said={phishing}", f"said={phishing}&sig=00ff", "said=&sig="):
        page.goto(api.url + "/deployments?" + query)
        assert page.locator("[role=status]").count() == 0, query
    row = page.locator("tr[data-deployment=sync-crm]")
    row.locator("input[name=reason]").fill("maintenance")
    row.locator("form.pause button").click()
    page.wait_for_url("**/deployments?*said=*")
    assert page.inner_text("[role=status]") == "Paused sync-crm."
    signed = page.url
    page.goto(signed.replace("Paused", "Resumed"))  # its signature is not the new text's
    assert page.locator("[role=status]").count() == 0
    page.goto(api.url + "/login?next=/deployments")  # logged in again: the old session's
    # message is not shown
    page.fill("#token", api.token)
    page.click("form.login button")
    page.wait_for_url(api.url + "/deployments")
    page.goto(signed)
    assert page.locator("[role=status]").count() == 0


def test_an_action_goes_back_to_its_page_with_its_filters_and_message(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    log_in(page, api, api.token, "/deployments?tag=crm&q=sync")
    row = page.locator("tr[data-deployment=sync-crm]")
    row.locator("input[name=reason]").fill("maintenance")
    row.locator("form.pause button").click()
    page.wait_for_url("**/deployments?tag=crm&q=sync&said=*")
    assert page.inner_text("[role=status]") == "Paused sync-crm."
    assert page.locator("tr[data-deployment]").count() == 1
    csrf = page.locator("form.logout input[name=csrf]").get_attribute("value")
    # Without a Referer (a browser told not to send one): the action's own page.
    response = page.request.post(
        api.url + "/actions/deployments/sync-crm/resume", form={"csrf": csrf}, max_redirects=0
    )
    assert response.headers["location"].startswith("/deployments?said=Resumed")
    page.goto(api.url + response.headers["location"])
    assert page.inner_text("[role=status]") == "Resumed sync-crm."


def test_the_deployments_table_stays_current_and_keeps_a_reason_being_typed(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    log_in(page, api, api.token)
    page.evaluate("window.marker = 'same page'")
    row = page.locator("tr[data-deployment=nightly-report]")
    row.locator("input[name=reason]").fill("INC-7 half typed")
    page.click("h1")  # the focus leaves the field; the text stays
    alice = Operations(api.store, Actor("alice", "cli"))
    alice.pause(["nightly-report", "sync-crm"], "INC-6")
    other = page.locator("tr[data-deployment=sync-crm]")
    other.locator(".pause-state", has_text="Paused by alice").wait_for()
    other.locator("button", has_text="Resume").wait_for()
    row.locator(".pause-state", has_text="Paused by alice").wait_for()
    assert row.locator("input[name=reason]").input_value() == "INC-7 half typed"
    assert page.evaluate("window.marker") == "same page"  # not reloaded


def test_each_last_run_shows_its_own_symbol_oldest_first_named_for_screen_readers(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    states = runs_in_every_state(api)
    log_in(page, api, api.token)
    marks = page.locator("tr[data-deployment=nightly-report] .marks .mark")
    assert marks.count() == len(states)
    symbols = [marks.nth(n).locator("[aria-hidden]").inner_text() for n in range(len(states))]
    assert len(set(symbols)) == len(states)  # no two states alike without their colour
    hidden = [marks.nth(n).locator(".visually-hidden").text_content() for n in range(len(states))]
    assert [text.partition(",")[0] for text in hidden] == states  # oldest on the left
    assert all(" UTC" in text for text in hidden)
    legend = page.inner_text("ul.legend")
    for state, symbol in zip(states, symbols, strict=True):
        assert f"{symbol} {state}" in legend
    assert "oldest on the left" in page.inner_text(".marks-legend")
    assert marks.first.get_attribute("title").startswith(f"{states[0]} · ")
    page.select_option("#zone-mode", "deployment")  # the title's time follows the zone
    assert "Europe/Paris" in marks.first.get_attribute("title")
    assert "Europe/Paris" in marks.first.locator(".visually-hidden").text_content()


def test_a_read_token_sees_no_buttons_and_its_forged_post_is_refused(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    log_in(page, api, token(api, "grafana", TokenAccess.READ))
    assert page.locator("form.pause").count() == 0
    assert page.locator("text=Resume").count() == 0
    csrf = page.locator("form.logout input[name=csrf]").get_attribute("value")
    response = page.request.post(
        api.url + "/actions/deployments/nightly-report/pause",
        form={"csrf": csrf, "reason": "forged"},
        max_redirects=0,
    )
    assert response.status == 403
    assert "needs operate" in response.text()
    assert not is_paused(api, "nightly-report")


def test_a_post_without_the_sessions_csrf_token_does_nothing(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    log_in(page, api, api.token)
    for form in ({"reason": "no token"}, {"reason": "wrong", "csrf": "another-sessions"}):
        response = page.request.post(
            api.url + "/actions/deployments/nightly-report/pause", form=form, max_redirects=0
        )
        assert response.status == 403, form
    assert not is_paused(api, "nightly-report")


def test_revoking_its_token_ends_a_session(api: Api, page: Any) -> None:  # noqa: F811
    log_in(page, api, token(api, "temp", TokenAccess.ADMIN))
    Operations(api.store, Actor("test", "cli")).revoke_token("temp")
    # The open page finds out by itself: its next refresh is sent to the login page. (A
    # navigation made now could be cut short by that reload.)
    page.wait_for_url(api.url + "/login?next=*")
    page.goto(api.url + "/runs")
    assert page.url.startswith(api.url + "/login?next=")


def test_user_text_shows_literally_and_nothing_in_it_runs(api: Api, page: Any) -> None:  # noqa: F811
    Operations(api.store, Actor("test", "cli")).pause(["sync-crm"], HOSTILE)
    log_in(page, api, api.token)
    assert HOSTILE in page.inner_text("tr[data-deployment=sync-crm] .reason")
    csrf = page.locator("form.logout input[name=csrf]").get_attribute("value")
    already = page.request.post(  # its message names the reason it kept
        api.url + "/actions/deployments/sync-crm/pause",
        form={"csrf": csrf, "reason": "again"},
        headers={"Referer": api.url + "/deployments"},
    )
    page.goto(already.url)
    assert HOSTILE in page.inner_text("[role=status]")
    page.goto(api.url + "/deployments?q=" + "%3Cscript%3Ealert(4)%3C%2Fscript%3E")
    assert page.locator("#q").input_value() == "<script>alert(4)</script>"
    page.goto(api.url + "/login?next=javascript:alert(5)")  # goes to the overview instead
    assert page.locator("input[name=next]").get_attribute("value") == "/"
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
    assert page.dialogs == []
    headers = page.request.get(api.url + "/deployments").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


# From a security review: each reproduced before its fix.


def test_a_newline_in_a_path_takes_no_bearer_token_to_a_dashboard_route(api: Api) -> None:  # noqa: F811
    # A route pattern's $ matches before a final newline: /deployments%0A reached the
    # dashboard's route with a bearer token, past the dashboard's check.
    with api.admin as client:
        assert client.get("/deployments%0A").status_code == 400
        assert client.post("/actions/deployments/nightly-report/pause%0A").status_code == 400
        inside = client.post("/actions/deployments/a%0Ab/pause", data={"reason": "x"})
        assert inside.status_code == 303  # a dashboard path: to the login page
        assert inside.headers["location"].startswith("/login")


def test_logging_in_again_ends_the_browsers_previous_session(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    log_in(page, api, api.token)
    first = session_cookie(page)
    page.goto(api.url + "/login")
    page.fill("#token", api.token)
    page.click("form.login button")
    page.wait_for_url(api.url + "/")  # the overview: a login asked for no other page
    assert session_cookie(page) != first
    with api.client() as client:
        stale = client.get("/deployments", headers={"Cookie": f"gnomon_session={first}"})
    assert stale.status_code == 303


def test_a_stale_tabs_action_is_refused_with_a_page_leading_back(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    log_in(page, api, api.token, "/deployments?tag=crm")
    # Typed before the other login: a form being typed in is not refreshed, so this one
    # keeps the old session's CSRF token (a refresh would hand it the new one).
    row = page.locator("tr[data-deployment=nightly-report]")
    row.locator("input[name=reason]").fill("from the old tab")
    other = page.context.new_page()  # logging in again in another tab: a new session
    other.goto(api.url + "/login?next=/deployments")
    other.fill("#token", api.token)
    other.click("form.login button")
    other.wait_for_url(api.url + "/deployments")
    with page.expect_response("**/actions/deployments/nightly-report/pause") as answer:
        row.locator("form.pause button").click()
    assert answer.value.status == 403
    assert page.inner_text("h1") == "Forbidden"
    assert "reload it and try again" in page.inner_text("[role=alert]")
    assert not is_paused(api, "nightly-report")
    page.click("a.back")
    page.wait_for_url(api.url + "/deployments?tag=crm")
    assert page.locator("tr[data-deployment]").count() == 2
    with api.admin as client:  # the API's errors stay JSON
        assert client.get("/api/v1/deployments/nope").json()["error"].startswith("no deployment")


def test_logout_ends_the_session_it_checked_even_with_two_cookies(
    api: Api,  # noqa: F811
    page: Any,
) -> None:
    log_in(page, api, api.token)
    own = session_cookie(page)
    csrf = page.locator("form.logout input[name=csrf]").get_attribute("value")
    with api.client() as client:
        cookies = {"Cookie": f"gnomon_session={own}; gnomon_session=another"}
        out = client.post("/logout", headers=cookies, data={"csrf": csrf})
        assert out.status_code == 303
        again = client.get("/deployments", headers={"Cookie": f"gnomon_session={own}"})
    assert again.status_code == 303


def test_a_login_posted_from_another_site_is_refused(api: Api) -> None:  # noqa: F811
    with api.client() as client:
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            response = client.post("/login", data={"token": api.token}, headers=headers)
            assert response.status_code == 403, headers
            assert "set-cookie" not in response.headers


def test_any_posted_csrf_value_is_refused_without_an_error(api: Api, page: Any) -> None:  # noqa: F811
    log_in(page, api, api.token)
    for value in ("é", "\udcff", "x" * 5000):
        response = page.request.post(api.url + "/logout", form={"csrf": value}, max_redirects=0)
        assert response.status == 403, value
    assert page.request.get(api.url + "/deployments").headers["cache-control"] == "no-store"


def test_one_tokens_logins_do_not_end_other_tokens_sessions() -> None:
    from gnomon.http._session import MOST_PER_TOKEN, Sessions

    sessions = Sessions()
    other = sessions.open("alice", "a" * 64, None)
    mine = [sessions.open("loop", "b" * 64, None) for _ in range(MOST_PER_TOKEN * 3)]
    assert sessions.find(other) is not None
    assert sum(sessions.find(each) is not None for each in mine) == MOST_PER_TOKEN
    assert sessions.find(mine[-1]) is not None  # the newest stay


def session_cookie(page: Any) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "gnomon_session")


def test_deployments_show_a_page_at_a_time_keeping_the_filters(
    api: Api,  # noqa: F811
    page: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The page size (100) lowered to 1: the fixture has two deployments, not two hundred.
    from gnomon.http import _page_deployments

    monkeypatch.setattr(_page_deployments, "PAGE", 1)
    log_in(page, api, api.token, "/deployments?q=-")
    assert page.locator("tr[data-deployment]").count() == 1
    assert "Deployments 1\u20131 of 2" in page.inner_text("nav.pager")
    first = page.locator("tr[data-deployment]").get_attribute("data-deployment")
    page.click("nav.pager >> text=Later")
    assert page.url.endswith("/deployments?q=-&start=1")
    assert "Deployments 2\u20132 of 2" in page.inner_text("nav.pager")
    assert page.locator("tr[data-deployment]").get_attribute("data-deployment") != first
    page.goto(api.url + "/deployments?start=999999999999")  # past the end, or not a number
    assert page.locator("tr[data-deployment]").count() == 1


def test_a_session_ends_when_its_token_expires(api: Api, page: Any) -> None:  # noqa: F811
    expires = timedelta(seconds=6)  # time to log in on a loaded machine
    brief = api.token_for("brief", TokenAccess.READ, expires)
    log_in(page, api, brief)
    ends = datetime.now(UTC) + expires
    while datetime.now(UTC) <= ends:  # the token's own expiry, on the clock: nothing to wait on
        time.sleep(0.1)
    # The open page finds out by itself: its next refresh is sent to the login page.
    page.wait_for_url(api.url + "/login?next=*")
    page.fill("#token", brief)
    page.click("form.login button")
    assert "not valid" in page.inner_text("[role=alert]")
