"""A downstream's runs and deployment as operators see them: the run that caused a run,
and the runs a run caused, in ``runs show``, the API and the dashboard's run page (a link
each way); a deployment that runs only after others, in ``deployments show`` and ``next``,
the API and its dashboard page ("after extract" instead of fire times).

The runs are decided by the daemon's scheduler on the API's store, with a stand-in for
the workers (test_scheduler's), so the rows are what a daemon writes.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gnomon.control import Operations
from gnomon.daemon._scheduler import Scheduler
from gnomon.deployments import load_config
from gnomon.states import StateName, StateType
from gnomon.store import Actor, Origin
from test_api import Api, api  # noqa: F401 (the fixture)
from test_cli_daemon import gnomon
from test_dashboard import browser, log_in, page  # noqa: F401 (fixtures)
from test_scheduler import Workers

pytestmark = pytest.mark.backends

CONFIG = """
[daemon]
api = "off"

[[deployments]]
name = "extract"
flow = "flows.py:job"
cron = "* * * * *"

[[deployments]]
name = "load"
flow = "flows.py:job"
after = [{deployment = "extract"}]
"""


def extract_then_load(api: Api, tmp_path: Path) -> tuple[str, str]:  # noqa: F811
    """The ids of an extract run that completed and of the load run it caused."""
    folder = tmp_path / "upstreams"
    folder.mkdir()
    (folder / "flows.py").write_text(
        "from gnomon import flow\n\n@flow\ndef job() -> None:\n    pass\n"
    )
    config = folder / "gnomon.toml"
    config.write_text(textwrap.dedent(CONFIG))
    Operations(api.store, Actor("test", Origin.CLI)).apply(config)
    workers = Workers()
    scheduler = Scheduler(api.store, workers, daemon_id="test-daemon")
    deployments = load_config(config).config.deployments
    scheduler.set_deployments(deployments, api.store.read_schedule_states())
    # A second past this minute: the next fire is the next minute's, and the ticks below
    # stay before the one after (else it would fire too).
    now = datetime.now(UTC).replace(second=1, microsecond=0)
    scheduler.plan_fires(now)
    scheduler.tick(now + timedelta(minutes=1))
    [extract] = workers.running
    assert api.store.set_run_state(
        extract, StateType.COMPLETED, StateName.COMPLETED, None, end_time=now
    )
    workers.running.remove(extract)
    scheduler.run_finished(extract, StateType.COMPLETED)
    scheduler.tick(now + timedelta(minutes=1, seconds=5))
    [load] = workers.running
    return extract, load


def test_the_cli_and_the_api_show_what_caused_a_run_and_what_it_caused(
    api: Api,  # noqa: F811
    tmp_path: Path,
    gnomon_home: Path,
) -> None:
    extract, load = extract_then_load(api, tmp_path)

    shown = gnomon(gnomon_home, "runs", "show", load)
    assert shown.returncode == 0, shown.stderr
    assert f"caused by      {extract}" in shown.stdout
    assert "trigger        upstream" in shown.stdout
    upstream = gnomon(gnomon_home, "runs", "show", extract)
    assert f"caused         {load} load Pending" in upstream.stdout

    with api.admin as client:
        detail = client.get(f"/api/v1/runs/{load}").json()
        assert (detail["caused_by"], detail["trigger"]) == (extract, "upstream")
        caused = client.get(f"/api/v1/runs/{extract}").json()["caused"]
        assert [(run["id"], run["deployment"]) for run in caused] == [(load, "load")]
        deployment = client.get("/api/v1/deployments/load").json()
        assert deployment["after"] == [{"deployment": "extract", "on": "completed"}]
        assert (deployment["schedule"], deployment["next_fires"]) == ("after extract", [])

    show = gnomon(gnomon_home, "deployments", "show", "load")
    assert show.returncode == 0, show.stderr
    assert "after extract" in show.stdout
    nexts = gnomon(gnomon_home, "deployments", "next", "load")
    assert (nexts.returncode, nexts.stdout) == (0, "after extract\n")


@pytest.mark.slow
def test_the_run_page_links_a_run_to_its_cause_and_the_deployment_page_to_its_upstream(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    extract, load = extract_then_load(api, tmp_path)

    log_in(page, api, api.token, f"/runs/{load}")
    page.click("#caused-by")
    page.wait_for_url(f"{api.url}/runs/{extract}")
    assert "load" in page.inner_text("#caused")
    page.click(f"#caused a[href='/runs/{load}']")
    page.wait_for_url(f"{api.url}/runs/{load}")

    page.goto(f"{api.url}/deployments/load")
    assert "runs after its upstreams" in page.inner_text("dd.schedule")
    assert "None of its own" in page.inner_text("p.upcoming")
    page.click("dd.after a")
    page.wait_for_url(f"{api.url}/deployments/extract")


def test_explain_says_what_a_downstream_waits_for(
    api: Api,  # noqa: F811
    tmp_path: Path,
    gnomon_home: Path,
) -> None:
    extract, _ = extract_then_load(api, tmp_path)
    # The extract run under way again (as a retry would be): load waits for it.
    assert api.store.set_run_state(extract, StateType.RUNNING, StateName.RUNNING, None)

    explained = gnomon(gnomon_home, "deployments", "explain", "load")

    assert explained.returncode == 0, explained.stderr
    assert f"waiting for an upstream: extract's run {extract[:8]} at " in explained.stdout
    assert "is Running; this runs at that time when it ends" in explained.stdout
    assert "the schedule has no more fires" not in explained.stdout
