"""A run's artifacts on its dashboard page, in a real browser against a real server and
store: each kind drawn (markdown rendered, a table, a link, a progress bar with its
percentage, an image); hostile markdown, links, image URLs and cells left inert; a running
run's progress followed without reloading."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from gnomon.artifacts import (
    ImageArtifact,
    LinkArtifact,
    MarkdownArtifact,
    ProgressArtifact,
    TableArtifact,
    update_progress_artifact,
)
from test_api import Api, api  # noqa: F401 (the fixture)
from test_dashboard import HOSTILE, browser, log_in, page, token  # noqa: F401 (fixtures)
from test_dashboard_run import fail, started_run

# In Chromium on SQLite only: the pages' queries run on both backends in test_dashboard_pages.
pytestmark = pytest.mark.slow

# Playwright's synchronous API runs an event loop in the test's thread, so outside a run
# the artifact functions would return awaitables, as Prefect's do there: _sync=True.


def test_each_kind_of_artifact_is_drawn_on_its_runs_page(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    run_id = started_run(api)
    run = UUID(run_id)
    MarkdownArtifact(
        key="summary",
        markdown="# Totals\n\n**42** rows, see [docs](https://example.org/d)",
        flow_run_id=run,
    ).create(_sync=True)
    TableArtifact(
        key="rows",
        table=[{"day": "mon", "rows": 10}, {"day": "tue", "rows": None}],
        flow_run_id=run,
    ).create(_sync=True)
    LinkArtifact(
        key="report", link="https://example.org/r", link_text="report", flow_run_id=run
    ).create(_sync=True)
    ProgressArtifact(
        key="load", progress=42.5, description="loading *rows*", flow_run_id=run
    ).create(_sync=True)
    ImageArtifact(key="chart", image_url="https://example.org/chart.png", flow_run_id=run).create(
        _sync=True
    )
    fail(api.store, run_id)

    log_in(page, api, api.token, f"/runs/{run_id}")
    summary = page.locator("[data-key=summary] .markdown")
    assert summary.locator("h1").inner_text() == "Totals"
    assert summary.locator("strong").inner_text() == "42"
    assert summary.locator("a").get_attribute("href") == "https://example.org/d"
    table = page.locator("table.artifact-table")
    assert table.locator("thead th").all_inner_texts() == ["day", "rows"]
    assert table.locator("tbody tr").nth(0).locator("td").all_inner_texts() == ["mon", "10"]
    assert table.locator("tbody tr").nth(1).locator("td").all_inner_texts() == ["tue", ""]
    link = page.locator("[data-key=report] .markdown a")
    assert (link.inner_text(), link.get_attribute("href")) == ("report", "https://example.org/r")
    progress = page.locator("li.artifact-progress")
    assert progress.locator("progress").get_attribute("value") == "42.5"
    assert "42.5%" in progress.inner_text()  # the number, not the bar alone
    assert progress.locator(".artifact-description em").inner_text() == "rows"
    image = page.locator("li.artifact-image img")
    assert image.get_attribute("src") == "https://example.org/chart.png"
    assert page.locator("#artifacts-title").is_visible()


def test_hostile_markdown_links_images_and_cells_are_shown_inert(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    run_id = started_run(api)
    run = UUID(run_id)
    hostile = (
        f"{HOSTILE}\n\n<script>alert('md')</script>\n\n<img src=x onerror=alert('img')>\n\n"
        "[click me](javascript:alert('link')) [tab](java\tscript:alert('tab')) "
        "[entity](jav&#x61;script:alert('entity')) [data](data:text/html,<script>alert(5)</script>)"
        " ![pic](javascript:alert('pic')) <javascript:alert('auto')>"
        " [png](data:image/png;base64,AAAA) [app](intent://evil#Intent;end)"
    )
    MarkdownArtifact(key="evil", markdown=hostile, description=HOSTILE, flow_run_id=run).create(
        _sync=True
    )
    LinkArtifact(link="javascript:alert('linked')", link_text="innocent", flow_run_id=run).create(
        _sync=True
    )
    ImageArtifact(image_url="javascript:alert('image')", flow_run_id=run).create(_sync=True)
    TableArtifact(table=[{HOSTILE: HOSTILE}], flow_run_id=run).create(_sync=True)
    fail(api.store, run_id)

    log_in(page, api, api.token, f"/runs/{run_id}")
    artifacts = page.locator("#run-artifacts")
    assert "<script>alert('md')</script>" in artifacts.inner_text()  # shown as text
    assert "[click me](javascript:alert('link'))" in artifacts.inner_text()
    assert "Not shown: only http and https images are." in artifacts.inner_text()
    assert page.locator("table.artifact-table td").inner_text() == HOSTILE
    # Nothing the artifacts hold became markup: no script, no handler, no unsafe address.
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
    assert artifacts.locator("img, iframe, object, embed, [onerror], [onclick]").count() == 0
    hrefs = artifacts.locator("a").evaluate_all("links => links.map(a => a.protocol)")
    assert set(hrefs) <= {"http:", "https:", "mailto:"}
    for link in artifacts.locator("a").all():
        link.click(modifiers=["Control"])  # where a javascript: link would run
    assert page.dialogs == []


def test_a_running_runs_progress_moves_on_its_page_without_reloading(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    run_id = started_run(api)
    progress = ProgressArtifact(key="load", progress=10, flow_run_id=UUID(run_id)).create(
        _sync=True
    )
    log_in(page, api, api.token, f"/runs/{run_id}")
    assert "10%" in page.inner_text("li.artifact-progress")
    page.evaluate("window.marker = 'same page'")

    update_progress_artifact(progress.id, 80, _sync=True)
    page.locator("li.artifact-progress", has_text="80%").wait_for()
    assert page.locator("li.artifact-progress progress").get_attribute("value") == "80.0"
    assert page.evaluate("window.marker") == "same page"


def test_a_run_without_artifacts_says_so(api: Api, page: Any) -> None:  # noqa: F811
    run_id = started_run(api)
    fail(api.store, run_id)
    log_in(page, api, api.token, f"/runs/{run_id}")
    assert page.inner_text("#run-artifacts p") == "No artifacts."
    assert page.locator("[data-artifact]").count() == 0
