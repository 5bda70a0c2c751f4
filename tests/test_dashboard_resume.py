"""Resuming a paused run from its page in a real browser: the form is built from the input
schema the run's pause stored (a choice for a boolean, a line for text and numbers, the
model's defaults filled in), input that does not fit is refused naming the field and the
value, and the resume is audited as the dashboard's. The pause is written to the store as a
worker's ``pause_flow_run`` writes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gnomon.control import Operations
from gnomon.input import RunInput
from gnomon.states import StateName
from gnomon.store import Actor, TokenAccess
from test_api import Api, api  # noqa: F401 (the fixture)
from test_dashboard import browser, log_in, page, token  # noqa: F401 (fixtures)

# In Chromium on SQLite only: the pages' queries run on both backends in test_dashboard_pages.
pytestmark = pytest.mark.slow


class Approval(RunInput):
    approved: bool
    count: int
    note: str = "looks fine"


def paused_run(api: Api) -> str:  # noqa: F811
    """A manual run of nightly-report, claimed by a worker, then paused for Approval."""
    ops = Operations(api.store, Actor("test", "cli"))
    run_id = str(ops.trigger("nightly-report", {"day": "2026-12-01"})["id"])
    assert api.store.claim_flow_run(run_id, worker_pid=4242) is not None
    fired = api.store.open_pause(
        run_id,
        "1",
        suspend=False,
        timeout_at=datetime.now(UTC) + timedelta(hours=1),
        input_schema=Approval.model_json_schema(),
        description=None,
        message="Pausing flow, execution will continue when this flow run is resumed.",
    )
    assert fired is None
    return run_id


def test_the_resume_form_is_built_from_the_input_schema_and_refuses_bad_input(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    run_id = paused_run(api)
    log_in(page, api, token(api, "on-call", TokenAccess.OPERATE), f"/runs/{run_id}")
    assert "Waiting for input" in page.inner_text("#run-pause")
    assert page.locator("select[name='input.approved'] option").all_text_contents() == [
        "true",
        "false",
    ]
    assert page.input_value("[name='input.note']") == "looks fine"

    page.select_option("[name='input.approved']", "true")
    page.fill("[name='input.count']", "many")
    page.click("form.resume button")
    page.wait_for_url(f"**/runs/{run_id}?said=*")
    refusal = page.inner_text("[role=status]")
    assert "field 'count'" in refusal
    assert "'many' is not of type 'integer'" in refusal
    row = api.store.read_flow_run(run_id)
    assert row is not None
    assert row.state_name == StateName.PAUSED

    page.select_option("[name='input.approved']", "false")
    page.fill("[name='input.count']", "3")
    page.click("form.resume button")
    page.wait_for_url(f"**/runs/{run_id}?said=Resumed*")
    assert "the run goes on" in page.inner_text("[role=status]")
    pause = api.store.read_pause(run_id, "1")
    assert pause is not None
    assert pause.input == {"approved": False, "count": 3, "note": "looks fine"}
    assert pause.resumed_by == "on-call"
    row = api.store.read_flow_run(run_id)
    assert row is not None
    assert row.state_name == StateName.RUNNING
    [entry] = api.store.read_audit(action="run-resume")
    assert (entry.actor, entry.origin, entry.target) == ("on-call", "dashboard", run_id)
