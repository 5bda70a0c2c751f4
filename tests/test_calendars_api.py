"""Maintenance windows and explain over the HTTP API: an operate token adds and removes a
window (audited with the token), a read token lists them, bad input is a 422 naming the
field, a config file's window is a 409 to remove; /deployments/NAME/explain gives the next
fires with what stops them and /next only the fires that run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from conftest import create_run
from gnomon.control import Operations
from gnomon.states import StateName, StateType
from gnomon.store import Actor, MaintenanceSource, TokenAccess
from test_api import Api, api  # noqa: F401 (the fixture)

pytestmark = pytest.mark.backends


def test_an_operate_token_adds_lists_and_removes_a_window_audited(api: Api) -> None:  # noqa: F811
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    body = {
        "start": start.isoformat(),
        "for": "2h",
        "deployments": ["nightly-report"],
        "reason": "CRM upgrade",
    }
    with api.client(api.token_for("on-call", TokenAccess.OPERATE)) as client:
        added = client.post("/api/v1/maintenance", json=body)
        assert added.status_code == 201, added.text
        window = added.json()
        listed = client.get("/api/v1/maintenance").json()
        explained = client.get("/api/v1/deployments/nightly-report/explain?count=3").json()
        removed = client.delete(f"/api/v1/maintenance/{window['id']}")
        again = client.delete(f"/api/v1/maintenance/{window['id']}")
    assert (window["start"], window["end"]) == (
        start.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        (start + timedelta(hours=2)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )
    assert (window["state"], window["source"], window["created_by"]) == (
        "upcoming",
        "operator",
        "on-call",
    )
    assert [each["id"] for each in listed] == [window["id"]]
    assert api.nudges.count("poll") >= 2  # the daemon is told at once, each time
    assert explained["deployment"] == "nightly-report"
    assert len(explained["next"]) == 3
    assert removed.status_code == 204
    assert again.status_code == 404
    entries = api.store.read_audit(target=str(window["id"]))
    assert [(e.action, e.actor, e.origin) for e in entries] == [
        ("maintenance-rm", "on-call", "api"),
        ("maintenance-add", "on-call", "api"),
    ]


def test_a_read_token_lists_but_cannot_add(api: Api) -> None:  # noqa: F811
    with api.client(api.token_for("viewer", TokenAccess.READ)) as client:
        assert client.get("/api/v1/maintenance?all=true").status_code == 200
        refused = client.post("/api/v1/maintenance", json={"for": "1h"})
    assert refused.status_code == 403


def test_bad_windows_are_422_naming_the_value_and_a_config_window_is_409(api: Api) -> None:  # noqa: F811
    with api.admin as client:
        both = client.post("/api/v1/maintenance", json={"for": "1h", "end": "2030-01-01T00:00Z"})
        odd = client.post("/api/v1/maintenance", json={"for": "1h", "tags": ["no spaces"]})
        unknown = client.post("/api/v1/maintenance", json={"for": "1h", "deployments": ["nope"]})
        api.store.sync_config_maintenance(
            [
                {
                    "starts_at": datetime.now(UTC),
                    "ends_at": datetime.now(UTC) + timedelta(hours=1),
                    "source": MaintenanceSource.CONFIG,
                    "name": "freeze",
                }
            ]
        )
        [config] = api.store.read_maintenance()
        conflict = client.delete(f"/api/v1/maintenance/{config.id}")
    assert both.status_code == 422
    assert "give the window's end (--end) or its length (--for)" in both.json()["error"]
    assert odd.status_code == 422
    assert unknown.status_code == 404
    assert 'no deployment named "nope"' in unknown.json()["error"]
    assert conflict.status_code == 409
    assert "config file's [[maintenance]] entry 'freeze'" in conflict.json()["error"]


def test_next_gives_the_fires_that_run_and_explain_why_the_others_do_not(api: Api) -> None:  # noqa: F811
    """sync-crm fires every 15 minutes: a window over the next hour takes four fires out."""
    with api.admin as client:
        before = client.get("/api/v1/deployments/sync-crm/next?count=8").json()
        start = datetime.fromisoformat(before[0].replace("Z", "+00:00"))
        window = {"start": start.isoformat(), "for": "1h", "tags": ["crm"], "reason": "swap"}
        assert client.post("/api/v1/maintenance", json=window).status_code == 201
        after = client.get("/api/v1/deployments/sync-crm/next?count=4").json()
        shown = client.get("/api/v1/deployments/sync-crm").json()
        listed = client.get("/api/v1/deployments").json()
        explained = client.get("/api/v1/deployments/sync-crm/explain?count=6").json()
    assert after == before[4:8]
    assert shown["next_fires"][:4] == after  # `deployments show` and the pages agree
    assert [d["next_fire"] for d in listed if d["name"] == "sync-crm"] == [after[0]]
    kinds = [[b["kind"] for b in fire["blockers"]] for fire in explained["next"]]
    assert kinds == [["maintenance"]] * 4 + [[], []]
    assert explained["next"][0]["blockers"][0]["reason"].endswith("(swap)")


def test_explain_names_the_pause_a_run_still_going_and_the_decisions_with_reasons(
    api: Api,  # noqa: F811
) -> None:
    """nightly-report paused until resumed: each coming fire says by whom and why. sync-crm
    with a run still Running (overlap = skip): its next fire says it would be skipped; a
    Skipped run and a Missed run are decisions with their reasons."""
    now = datetime.now(UTC)
    ops = Operations(api.store, Actor("alice", "cli"))
    ops.pause(["nightly-report"], "INC-9")
    running = uuid.uuid4().hex
    create_run(api.store, _run(running, now, StateName.RUNNING, StateType.RUNNING))
    skipped = uuid.uuid4().hex
    why = "the previous run is still running (overlap = skip)"
    create_run(
        api.store,
        _run(skipped, now - timedelta(minutes=15), StateName.SKIPPED, StateType.CANCELLED, why),
    )
    with api.admin as client:
        paused = client.get("/api/v1/deployments/nightly-report/explain?count=2").json()
        busy = client.get("/api/v1/deployments/sync-crm/explain?count=2").json()
    assert [[b["kind"] for b in fire["blockers"]] for fire in paused["next"]] == [["paused"]] * 2
    assert paused["next"][0]["blockers"][0]["reason"] == "paused by alice until resumed (INC-9)"
    assert paused["next"][0]["blockers"][0]["by"] == "alice"
    first, second = busy["next"]
    assert [b["kind"] for b in first["blockers"]] == ["overlap"]
    assert first["blockers"][0]["reason"] == (
        f"run {running[:8]} is Running: if it still is then, this fire is skipped (overlap = skip)"
    )
    assert second["blockers"] == []  # only the next fire is told so
    decisions = {d["run_id"]: d for d in busy["decisions"] if d["run_id"]}
    assert (decisions[skipped]["decision"], decisions[skipped]["reason"]) == ("skipped", why)
    assert decisions[running]["decision"] == "fired"
    # A backfill's run is told as such, not as a fire of the schedule.
    backfilled = uuid.uuid4().hex
    row = _run(backfilled, now - timedelta(days=3), StateName.COMPLETED, StateType.COMPLETED)
    create_run(api.store, {**row, "trigger": "backfill"})
    with api.admin as client:
        told = client.get("/api/v1/deployments/sync-crm/explain?count=1").json()
    [decision] = [d for d in told["decisions"] if d["run_id"] == backfilled]
    assert (decision["decision"], decision["trigger"]) == ("backfill", "backfill")


def test_explain_tells_a_backfills_run_from_a_fire(api: Api) -> None:  # noqa: F811
    """A backfill's run was not fired by the schedule: its decision says backfill."""
    now = datetime.now(UTC)
    made = {"backfill": uuid.uuid4().hex, "schedule": uuid.uuid4().hex}
    for hours, (trigger, run_id) in enumerate(made.items(), start=1):
        at = now - timedelta(hours=hours)
        row = _run(run_id, at, StateName.COMPLETED, StateType.COMPLETED)
        create_run(api.store, {**row, "trigger": trigger})
    with api.admin as client:
        shown = client.get("/api/v1/deployments/sync-crm/explain?count=5").json()

    decisions = {d["run_id"]: d["decision"] for d in shown["decisions"] if d["run_id"]}
    assert decisions == {made["backfill"]: "backfill", made["schedule"]: "fired"}


def _run(
    run_id: str, at: datetime, state: StateName, kind: StateType, message: str | None = None
) -> dict[str, object]:
    return {
        "id": run_id,
        "name": f"sync-crm@{at.isoformat()}",
        "flow_name": "report",
        "deployment_name": "sync-crm",
        "scheduled_for": at,
        "created": at,
        "trigger": "schedule",
        "state_type": kind,
        "state_name": state,
        "state_message": message,
    }


def test_explain_derives_the_fires_a_past_pause_took_out_and_says_what_it_cannot(
    api: Api,  # noqa: F811
) -> None:
    """sync-crm registered 2 h ago, paused 1 h ago by alice and resumed since: its fires of
    the last hour are "excluded (paused)" with who and why; those of the hour before had no
    daemon ("none"). The times are moved back in the tables themselves: no operation
    registers or pauses in the past."""
    from sqlalchemy import update

    from gnomon.store._schema import audit_log, deployments

    now = datetime.now(UTC)
    ops = Operations(api.store, Actor("alice", "cli"))
    ops.pause(["sync-crm"], "INC-11")
    ops.resume(["sync-crm"])
    with api.store.engine.begin() as connection:
        connection.execute(
            update(deployments)
            .where(deployments.c.name == "sync-crm")
            .values(
                registered_at=now - timedelta(hours=2),
                anchor=now - timedelta(hours=2) + timedelta(minutes=7.5),  # off the edges
            )
        )
        for action, ago in (("pause", 60), ("resume", 0)):
            connection.execute(
                update(audit_log)
                .where(audit_log.c.action == action, audit_log.c.target == "sync-crm")
                .values(timestamp=now - timedelta(minutes=ago))
            )
    with api.admin as client:
        view = client.get("/api/v1/deployments/sync-crm/explain").json()
    kinds = [d["decision"] for d in view["decisions"]]
    assert set(kinds) == {"excluded (paused)", "none"}, view["decisions"]
    assert kinds == sorted(kinds)  # newest first: the paused hour, then the hour before
    assert kinds.count("excluded (paused)") == 4  # every 15 minutes from its anchor
    assert kinds.count("none") == 4
    paused = next(d for d in view["decisions"] if d["decision"] == "excluded (paused)")
    assert paused["reason"] == "paused by alice (INC-11)"
    none = next(d for d in view["decisions"] if d["decision"] == "none")
    assert none["reason"] == "no run recorded: no daemon scheduled the deployment then"
