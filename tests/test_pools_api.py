"""Run pools and a deployment's env over the HTTP API (a real uvicorn server on loopback,
real stores): ``GET /api/v1/pools`` reads the slots taken and the runs waiting from the
store, ``deployments apply`` (no daemon) declares the pools, and a deployment's env is
masked in ``GET /api/v1/deployments/NAME``."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import create_run
from gnomon.control import Operations
from gnomon.http._http import create_app
from gnomon.http._server import ApiServer, ensure_admin_token
from gnomon.states import StateName, StateType
from gnomon.store import Actor, Store
from test_api import METRICS, Api
from test_dashboard import browser, log_in, page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.backends

CONFIG = """
[[pools]]
name = "warehouse"
slots = 2

[[pools]]
name = "lake"
slots = 1

[[deployments]]
name = "load-a"
flow = "flows.py:job"
cron = "0 * * * *"
pool = "warehouse"

[deployments.env]
API_URL = "https://erp.example.com/secret-path"
TOKEN = { from_env = "ERP_TOKEN" }

[[deployments]]
name = "load-b"
flow = "flows.py:job"
cron = "0 * * * *"
pool = "warehouse"
"""


@pytest.fixture
def api(store: Store, tmp_path: Path, gnomon_home: Path) -> Iterator[Api]:
    (tmp_path / "flows.py").write_text(
        "from gnomon import flow\n\n@flow\ndef job() -> None:\n    pass\n"
    )
    config = tmp_path / "gnomon.toml"
    config.write_text(textwrap.dedent(CONFIG))
    Operations(store, Actor("test", "cli")).apply(config)
    token = ensure_admin_token(store, gnomon_home / "api-token")
    assert token is not None
    app = create_app(
        store, nudge=lambda _: None, metrics_render=lambda: METRICS, config_path=config
    )
    server = ApiServer(app, "127.0.0.1", 0)
    server.start()
    try:
        yield Api(server.url, store, token, app)
    finally:
        server.stop()


def test_pools_list_their_slots_the_slots_taken_and_the_runs_waiting(api: Api) -> None:
    store = api.store
    # What a daemon does: a run of load-a holds a slot, one of load-b waits for another.
    assert store.try_acquire_slots(["pool:warehouse"], 1, f"elsewhere:1:{uuid.uuid4().hex}")
    waiting = uuid.uuid4().hex
    create_run(store, {"id": waiting, "name": "w", "flow_name": "job", "deployment_name": "load-b"})
    store.set_run_state(
        waiting,
        StateType.PENDING,
        StateName.AWAITING_POOL,
        "waiting for pool warehouse (2/2 slots taken)",
    )

    with api.client(api.token) as client:
        listed = client.get("/api/v1/pools")

    assert listed.status_code == 200
    assert listed.json() == [
        {"name": "lake", "slots": 1, "taken": 0, "waiting": 0, "deployments": []},
        {
            "name": "warehouse",
            "slots": 2,
            "taken": 1,
            "waiting": 1,
            "deployments": ["load-a", "load-b"],
        },
    ]


def test_explain_tells_that_the_next_fire_waits_while_its_pool_is_full(api: Api) -> None:
    store = api.store
    with api.client(api.token) as client:

        def blockers() -> list[dict[str, Any]]:
            response = client.get("/api/v1/deployments/load-a/explain")
            assert response.status_code == 200, response.text
            return response.json()["next"][0]["blockers"]

        assert blockers() == []
        for _ in range(2):
            assert store.try_acquire_slots(["pool:warehouse"], 1, f"elsewhere:1:{uuid.uuid4().hex}")
        [full] = blockers()

    assert (full["kind"], full["by"]) == ("pool", "warehouse")
    assert full["reason"].startswith("pool warehouse has 2/2 slots taken")


def test_a_deployments_env_is_masked_in_the_api(api: Api) -> None:
    with api.client(api.token) as client:
        shown = client.get("/api/v1/deployments/load-a")

    assert shown.status_code == 200
    assert "erp.example.com" not in shown.text
    assert shown.json()["policies"]["env"] == {
        "API_URL": "********",
        "TOKEN": {"from_env": "ERP_TOKEN"},
    }
    assert shown.json()["policies"]["pool"] == "warehouse"


def test_apply_without_a_daemon_declares_the_pools_and_removes_those_left_out(
    api: Api, tmp_path: Path
) -> None:
    config = tmp_path / "gnomon.toml"
    config.write_text(config.read_text().replace('[[pools]]\nname = "lake"\nslots = 1\n', ""))

    Operations(api.store, Actor("test", "cli")).apply(config)

    assert api.store.read_concurrency_limits() == {"pool:warehouse": 2}


@pytest.mark.slow
def test_the_dashboard_shows_a_deployments_env_masked_and_a_runs_wait_for_its_pool(
    api: Api,
    page: Any,  # noqa: F811
) -> None:
    waiting = uuid.uuid4().hex
    create_run(
        api.store, {"id": waiting, "name": "w", "flow_name": "job", "deployment_name": "load-b"}
    )
    message = "waiting for pool warehouse (2/2 slots taken)"
    api.store.set_run_state(waiting, StateType.PENDING, StateName.AWAITING_POOL, message)

    log_in(page, api, api.token, "/deployments/load-a")
    policies = page.inner_text("table.policies")
    assert "********" in policies
    assert "ERP_TOKEN" in policies
    assert "erp.example.com" not in page.content()

    page.goto(f"{api.url}/runs/{waiting}")
    assert "AwaitingPool" in page.inner_text("main")
    assert message in page.inner_text("main")
