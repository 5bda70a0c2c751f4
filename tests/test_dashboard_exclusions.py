"""A deployment's page in a real browser (Chromium, driven by playwright) shows its coming
times that a maintenance window excludes, marked with the window's reason, the fires that
run around them, and the fires such a window excluded lately (no rows: derived)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gnomon.control import Operations, add_window
from gnomon.store import Actor
from gnomon.store._schema import deployments
from test_api import Api, api  # noqa: F401 (the fixture)
from test_dashboard import browser, log_in, page, token  # noqa: F401 (fixtures)

# In Chromium on SQLite only: the pages' queries run on both backends in test_dashboard_pages.
pytestmark = pytest.mark.slow


def test_the_deployment_page_marks_the_fires_a_window_excludes_with_its_reason(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    """sync-crm fires every 15 minutes: a window over the next hour and the last hour
    excludes four coming fires and those of the hour past."""
    name = "sync-crm"
    ops = Operations(api.store, Actor("alice", "cli"))
    now = datetime.now(UTC)
    # Registered two hours ago (the fixture registered it just now): the past hour's fires
    # are the deployment's. No operation moves a registration back, hence the table itself.
    with api.store.engine.begin() as connection:
        connection.execute(
            deployments.update()
            .where(deployments.c.name == name)
            .values(registered_at=now - timedelta(hours=2))
        )
    add_window(
        ops, now - timedelta(hours=1), now + timedelta(hours=1), tags=["crm"], reason="SAN swap"
    )

    log_in(page, api, api.token)
    page.goto(api.url + f"/deployments/{name}")
    section = page.locator("#exclusions")
    excluded = section.locator("tr[data-excluded=maintenance]")
    assert excluded.count() == 4
    assert "SAN swap" in excluded.first.inner_text()
    assert "Excluded (maintenance)" in excluded.first.inner_text()
    assert section.locator("tr[data-excluded='']").count() == 10  # the fires that run
    assert section.locator("tr[data-excluded=maintenance] time").count() == 4
    lately = section.locator("ul.lately li")
    assert lately.count() >= 1
    assert "SAN swap" in lately.first.inner_text()
