"""Every dashboard page's server side on each store backend, without a browser.

The browser tests (``test_dashboard*.py``) check what the pages do in Chromium, on SQLite
only: what a page shows does not depend on the database, and a browser per backend was a
tenth of the suite's time. What does depend on it, the queries behind each page, runs here
on SQLite and on PostgreSQL: each page, with the data the browser tests give it, and with
its filters, answers 200 with its heading.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from test_api import Api, api  # noqa: F401 (the fixture)
from test_dashboard import runs_in_every_state
from test_dashboard_basics import PAGES

pytestmark = pytest.mark.backends


@pytest.fixture
def session(api: Api) -> Iterator[httpx.Client]:  # noqa: F811
    """A client logged in as the dashboard's users are, with the session cookie."""
    with api.client() as client:
        answer = client.post("/login", data={"token": api.token})
        assert answer.status_code == 303, answer.text
        yield client


def heading_of(client: httpx.Client, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
    assert "<h1" in answer.text, path
    return answer.text


@pytest.mark.parametrize("page", sorted(PAGES))
def test_each_page_is_served_from_the_store(
    page: str,
    api: Api,  # noqa: F811
    session: httpx.Client,
) -> None:
    runs_in_every_state(api)
    heading_of(session, PAGES[page](api))


def test_the_lists_filters_and_a_backfills_page_are_served_from_the_store(
    api: Api,  # noqa: F811
    session: httpx.Client,
) -> None:
    states = runs_in_every_state(api)
    with api.admin as admin:
        asked = admin.post(
            "/api/v1/deployments/nightly-report/backfills",
            json={"from": "2026-10-24", "to": "2026-10-26"},
        )
    assert asked.status_code in (200, 201), asked.text
    backfill = asked.json()["id"]

    for state in states:
        shown = heading_of(session, f"/runs?state={state}")
        assert "nightly-report" in shown, state
    heading_of(session, "/runs?deployment=nightly-report&trigger=schedule&since=2026-01-01")
    heading_of(session, "/runs?until=2026-01-01T00:00:00Z")
    heading_of(session, "/deployments?tag=crm")
    heading_of(session, "/audit?action=apply")
    heading_of(session, f"/backfills/{backfill}")
