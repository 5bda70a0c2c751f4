"""The daemon as the control plane's server: its HTTP API with the first admin token, pauses
made over HTTP, Prometheus metrics of real runs, webhook notifications of a failing and
recovering deployment, and its own decisions in `gnomon logs`. Real daemon subprocess, real
HTTP, real webhook receiver on loopback."""

from __future__ import annotations

import json
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import logs_of
from gnomon.store import Store
from test_cli_daemon import gnomon
from test_daemon import completed, runs, start_daemon, wait_for, write_config
from test_notify import Receiver

pytestmark = pytest.mark.backends

FLOWS = """
import os
from gnomon import flow


@flow
def tick() -> None:
    pass


@flow
def flaky(marker: str) -> None:
    # Fails until the marker file exists.
    if not os.path.exists(marker):
        raise RuntimeError("the CRM is down")
"""


def _api_url(process, timeout: float = 30) -> str:
    """The API's URL, from the daemon's "api listening" log line."""
    for line in process.output_lines(timeout):
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("api_url"):
            return str(event["api_url"])
    raise AssertionError("the daemon never said where its API listens")


def test_the_daemon_serves_the_api_with_a_first_admin_token_and_pauses_over_http(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    (tmp_path / "ctl_flows.py").write_text(FLOWS)
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "ticker"
        flow = "ctl_flows.py:tick"
        interval = "1s"
        """,
        daemon='workers = 2\napi = "127.0.0.1:0"',
    )
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    url = _api_url(daemon)
    token_file = gnomon_home / "api-token"
    token = token_file.read_text().strip()
    wait_for(completed(store, "ticker", 2), what="two completed runs")

    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        health = anonymous.get("/healthz").json()
        # The status and the age of the loop's last tick, nothing else.
        assert set(health) == {"status", "last_tick_age_seconds"}
        assert health["status"] == "ok"
        assert 0 <= health["last_tick_age_seconds"] < 5
        assert anonymous.get("/api/v1/deployments").status_code == 401
        assert anonymous.get("/metrics").status_code == 401
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as admin:
        [listed] = admin.get("/api/v1/deployments").json()
        paused = admin.post("/api/v1/deployments/ticker/pause", json={"reason": "over http"})
        returned = datetime.now(UTC)
        metrics = admin.get("/metrics")

    assert listed["name"] == "ticker"
    assert paused.status_code == 200, paused.text
    entry = store.read_audit()[0]
    assert (entry.actor, entry.origin, entry.action, entry.reason) == (
        "admin",
        "api",
        "pause",
        "over http",
    )
    families = {family.name: family for family in text_string_to_metric_families(metrics.text)}
    completed_runs = [
        sample.value
        for sample in families["gnomon_runs"].samples
        if sample.name == "gnomon_runs_total"
        and sample.labels == {"deployment": "ticker", "state": "Completed"}
    ]
    assert completed_runs
    assert completed_runs[0] >= 2
    assert "gnomon_schedule_lateness_seconds" in families
    assert "gnomon_workers_idle" in families
    # Proving an absence takes waiting: three fire times of a 1 s interval.
    time.sleep(3)
    assert not [row for row in runs(store, "ticker") if row.created > returned]


def test_a_failing_deployment_notifies_failed_then_recovered(
    tmp_path: Path,
    gnomon_home: Path,
    store: Store,
    daemons: list,
    receiver: Receiver,
) -> None:
    (tmp_path / "ctl_flows.py").write_text(FLOWS)
    marker = tmp_path / "crm-is-back"
    config = write_config(
        tmp_path,
        f"""
        [[deployments]]
        name = "sync-crm"
        flow = "ctl_flows.py:flaky"
        interval = "1s"
        parameters = {{ marker = "{marker}" }}

        [[notify]]
        name = "ops"
        url_env = "OPS_WEBHOOK"
        events = ["failed", "recovered"]
        """,
        # The API is off in these tests: links need public_url then.
        daemon='workers = 2\npublic_url = "https://gnomon.example.com"',
    )
    daemons.append(start_daemon(config, gnomon_home, OPS_WEBHOOK=receiver.url("hook")))

    [first] = receiver.wait_for(1)
    marker.touch()
    wait_for(
        lambda: any(post["event"] == "recovered" for post in receiver.posts("hook")),
        what="a recovered notification",
    )

    failed = first["json"]
    assert (failed["event"], failed["deployment"], failed["state"]) == (
        "failed",
        "sync-crm",
        "Failed",
    )
    assert "the CRM is down" in failed["text"]
    assert failed["url"] == f"https://gnomon.example.com/runs/{failed['run_id']}"
    assert store.read_flow_run(failed["run_id"]).state_name == "Failed"
    # The engine's line for a failed run stays in its logs, traceback included.
    stored = [log.message for log in logs_of(store, flow_run_id=failed["run_id"])]
    assert any(
        line.startswith("Finished in state Failed") and "the CRM is down" in line for line in stored
    ), stored


def test_the_daemons_decisions_are_in_gnomon_logs_for_the_deployment(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "ticker"
        flow = "flows.py:tick"
        interval = "1s"
        """,
    )
    daemons.append(start_daemon(config, gnomon_home))
    wait_for(completed(store, "ticker", 2), what="two completed runs")

    def logged() -> list[dict]:
        result = gnomon(gnomon_home, "logs", "--deployment", "ticker", "--json", "-n", "200")
        return [json.loads(line) for line in result.stdout.splitlines()]

    lines = wait_for(
        lambda: [line for line in logged() if line["message"].startswith("run finished")],
        what="a run summary in the store's logs",
    )
    messages = [line["message"] for line in logged()]
    assert any(message.startswith("schedule decision: ticker fired") for message in messages)
    assert any("tick x from pid" in message for message in messages)  # the run's own line
    assert lines[0]["run_id"] is not None
    assert lines[0]["logger"] == "gnomon.daemon"


def test_the_timed_poll_waits_one_interval_more_while_runs_wait_for_a_worker() -> None:
    from gnomon.daemon._cadence import POLL_INTERVAL, poll_due

    assert not poll_due(99.9, 100.0, backlog=False)
    assert poll_due(100.0, 100.0, backlog=False)
    assert not poll_due(100.0, 100.0, backlog=True)  # the runs' start comes first
    assert not poll_due(100.0 + POLL_INTERVAL - 0.01, 100.0, backlog=True)
    assert poll_due(100.0 + POLL_INTERVAL, 100.0, backlog=True)  # but no longer than that
