"""Backfills: the nominal times of a range on literal dates (DST zones, reverse order), the
rule deciding each time, the store's batches on both backends, a backfill run twice or
over the live schedule creating nothing twice (hypothesis), the daemon's runner under its
own max_concurrent, reprocessing failed and all, and real daemons running, cancelling and
resuming one after a restart, through the CLI and the API."""

from __future__ import annotations

import json
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnomon.control import BackfillOperations, Operations, parse_backfill_time
from gnomon.daemon import backfill_times
from gnomon.deployments import Deployment
from gnomon.exceptions import InvalidInput
from gnomon.states import StateName, StateType
from gnomon.store import (
    Actor,
    AuditAction,
    BackfillStatus,
    Reprocess,
    RunCause,
    Store,
    TimeRun,
    TokenAccess,
    backfill_generation,
)
from test_api import Api, api  # noqa: F401 (the fixture)
from test_cli_daemon import gnomon
from test_daemon import start_daemon, wait_for, write_config
from test_dashboard import browser, log_in, page, token  # noqa: F401 (fixtures)
from test_scheduler import T0, Workers, make_scheduler

pytestmark = pytest.mark.backends

OPERATOR = Actor("alice", "cli")
H = timedelta(hours=1)
M = timedelta(minutes=1)
WAIT = 90.0  # seconds a daemon test waits for what it expects, on a loaded machine


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def schedule(cron: str, timezone: str = "UTC") -> Any:
    return Deployment(name="job", flow="flows.py:job", cron=cron, timezone=timezone).timing(None)


# The range's nominal times, on literal dates.


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("cron", "zone", "start", "end", "reverse", "expected"),
    [
        # Both bounds included; reverse is newest first.
        ("0 6 * * *", "UTC", "2026-11-01T06:00", "2026-11-03T06:00", False,
         ["2026-11-01T06:00", "2026-11-02T06:00", "2026-11-03T06:00"]),
        ("0 6 * * *", "UTC", "2026-11-01T06:00", "2026-11-03T06:00", True,
         ["2026-11-03T06:00", "2026-11-02T06:00", "2026-11-01T06:00"]),
        # Paris springs forward on 2026-03-29: 02:30 does not exist and runs at 03:00 CEST
        # (cronie's shift), an hour after the day before's in UTC terms minus one.
        ("30 2 * * *", "Europe/Paris", "2026-03-28T00:00", "2026-03-30T23:00", False,
         ["2026-03-28T01:30", "2026-03-29T01:00", "2026-03-30T00:30"]),
        # Paris falls back on 2026-10-25: 02:30 comes twice and runs once, the first time.
        ("30 2 * * *", "Europe/Paris", "2026-10-24T00:00", "2026-10-26T23:00", True,
         ["2026-10-26T01:30", "2026-10-25T00:30", "2026-10-24T00:30"]),
        # New York's hourly schedule over its fall-back night: 01:00 EDT and 01:00 EST are
        # two instants an hour apart, each a fire of "0 * * * *".
        ("0 * * * *", "America/New_York", "2026-11-01T04:00", "2026-11-01T07:00", False,
         ["2026-11-01T04:00", "2026-11-01T05:00", "2026-11-01T06:00", "2026-11-01T07:00"]),
        # A range with no fire.
        ("0 6 * * *", "UTC", "2026-11-01T07:00", "2026-11-02T05:59", False, []),
    ],
)  # fmt: skip
def test_a_ranges_nominal_times_are_the_schedules_both_bounds_included(
    cron: str, zone: str, start: str, end: str, reverse: bool, expected: list[str]
) -> None:
    times = backfill_times(schedule(cron, zone), utc(start), utc(end), reverse)
    assert times == [utc(text) for text in expected]


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("text", "name", "zone", "whole_day", "expected"),
    [
        ("2026-03-29", "from", "Europe/Paris", False, "2026-03-28T23:00:00"),
        # The whole day to its last microsecond: Paris's 29 March has 23 hours.
        ("2026-03-29", "to", "Europe/Paris", True, "2026-03-29T21:59:59.999999"),
        ("2026-10-25T02:30", "from", "Europe/Paris", False, "2026-10-25T00:30:00"),  # earlier
        ("2026-11-01T06:00+01:00", "from", "America/New_York", False, "2026-11-01T05:00:00"),
        ("2026-11-01T06:00", "from", "UTC", False, "2026-11-01T06:00:00"),
    ],
)
def test_a_bound_without_an_offset_is_in_the_deployments_zone(
    text: str, name: str, zone: str, whole_day: bool, expected: str
) -> None:
    assert parse_backfill_time(text, name, zone, whole_day=whole_day) == utc(expected)


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2026-03-29T02:30", "from '2026-03-29T02:30' does not exist in Europe/Paris"),
        ("yesterday", "from 'yesterday' is not an ISO 8601 date or time"),
    ],
)
def test_a_bound_that_cannot_be_read_is_one_line_naming_it(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        parse_backfill_time(text, "from", "Europe/Paris")


# Which times get a run.


def newest(state: StateName, generation: int = 1) -> TimeRun:
    types = {
        StateName.SKIPPED: StateType.CANCELLED,
        StateName.MISSED: StateType.FAILED,
        StateName.AWAITING_RETRY: StateType.SCHEDULED,
    }
    kind = types[state] if state in types else StateType(state.upper())
    return TimeRun(generation, kind, state)


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("run", "reprocess", "generation"),
    [
        (None, Reprocess.NONE, 1),
        # Missed and Skipped are the gaps a backfill fills: the next generation.
        (newest(StateName.MISSED), Reprocess.NONE, 2),
        (newest(StateName.SKIPPED, 3), Reprocess.NONE, 4),
        # A run under way: never a second at once, whatever reprocess says.
        (newest(StateName.RUNNING), Reprocess.ALL, None),
        (newest(StateName.AWAITING_RETRY), Reprocess.ALL, None),
        (newest(StateName.COMPLETED), Reprocess.NONE, None),
        (newest(StateName.COMPLETED), Reprocess.FAILED, None),
        (newest(StateName.COMPLETED), Reprocess.ALL, 2),
        (newest(StateName.FAILED), Reprocess.NONE, None),
        (newest(StateName.FAILED), Reprocess.FAILED, 2),
        (newest(StateName.CRASHED, 2), Reprocess.FAILED, 3),
        (newest(StateName.CANCELLED), Reprocess.FAILED, None),
        (newest(StateName.CANCELLED), Reprocess.ALL, 2),
    ],
)
def test_each_time_gets_a_run_by_its_newest_run_and_the_reprocess_choice(
    run: TimeRun | None, reprocess: Reprocess, generation: int | None
) -> None:
    assert backfill_generation(run, reprocess)[0] == generation


# The store's batches.


def a_backfill(store: Store, name: str, start: datetime, end: datetime, **values: Any) -> Any:
    return store.create_backfill(
        {
            "deployment_name": name,
            "start": start,
            "end": end,
            "reverse": False,
            "max_concurrent": 2,
            "reprocess": Reprocess.NONE,
            "parameters": {},
            "status": BackfillStatus.RUNNING,
            "total": 0,
            **values,
        },
        OPERATOR,
    )


def maker(name: str, backfill_id: int) -> Any:
    def make(nominal: datetime, generation: int) -> dict[str, Any]:
        return {
            "id": uuid.uuid4().hex,
            "name": f"{name}@{nominal.isoformat()}#{generation}",
            "flow_name": "job",
            "entrypoint": "flows.py:job",
            "parameters": {},
            "tags": [],
            "state_type": StateType.PENDING,
            "state_name": StateName.PENDING,
            "run_count": 0,
            "deployment_name": name,
            "scheduled_for": nominal,
            "trigger": RunCause.BACKFILL,
            "generation": generation,
            "backfill_id": backfill_id,
            "force": True,
            "created": datetime.now(UTC),
        }

    return make


def live_run(store: Store, name: str, nominal: datetime, state: StateName) -> str:
    run_id = uuid.uuid4().hex
    kind = newest(state).state_type
    row = {
        **maker(name, 0)(nominal, 1),
        "id": run_id,
        "trigger": RunCause.SCHEDULE,
        "backfill_id": None,
        "state_type": kind,
        "state_name": state,
    }
    assert store.create_runs([row]) == {run_id}
    return run_id


def test_a_batch_creates_up_to_its_limit_and_moves_the_cursor_past_what_it_decided(
    store: Store,
) -> None:
    times = [T0 + k * H for k in range(5)]
    live_run(store, "job", times[0], StateName.COMPLETED)  # the live schedule's
    live_run(store, "job", times[2], StateName.MISSED)  # a gap
    backfill = a_backfill(store, "job", times[0], times[-1])

    step = store.create_backfill_runs(backfill, times, 2, maker("job", backfill.id))

    assert step is not None
    assert [(run["scheduled_for"], run["generation"]) for run in step.created] == [
        (times[1], 1),
        (times[2], 2),
    ]
    assert (step.decided, step.cursor) == (3, times[2])  # times[0] left: it has a run
    row = store.read_backfill(backfill.id)
    assert (row.decided, row.created_runs, row.cursor) == (3, 2, times[2])
    assert store.count_backfill_unfinished(backfill.id) == 2
    assert store.read_backfill_states(backfill.id) == {"Pending": 2}
    entry = store.read_audit(limit=1)[0]
    assert (entry.action, entry.target) == (AuditAction.BACKFILL, str(backfill.id))


def test_a_cancelled_backfill_creates_nothing_more(store: Store) -> None:
    backfill = a_backfill(store, "job", T0, T0 + H)
    assert store.finish_backfill(backfill.id, BackfillStatus.CANCELLED, OPERATOR, "oops")

    assert store.create_backfill_runs(backfill, [T0], 5, maker("job", backfill.id)) is None
    assert store.read_runs("job") == []
    assert store.finish_backfill(backfill.id, BackfillStatus.COMPLETED, OPERATOR) is False
    entry = store.read_audit(limit=1)[0]
    assert (entry.action, entry.reason) == (AuditAction.BACKFILL_CANCEL, "oops")


STATES = st.sampled_from(
    [None, StateName.COMPLETED, StateName.FAILED, StateName.MISSED, StateName.RUNNING]
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    live=st.lists(STATES, min_size=1, max_size=12),
    reprocess=st.sampled_from(list(Reprocess)),
    limit=st.integers(1, 5),
)
def test_a_backfill_run_twice_or_over_the_live_schedule_creates_no_second_run(
    store: Store, live: list[StateName | None], reprocess: Reprocess, limit: int
) -> None:
    """Times with the live schedule's runs (or none); a backfill over them, then the same
    backfill again, each in batches: no (time, generation) twice, no time with two
    unfinished runs, and the second creates nothing (reprocess none) or only next
    generations of times whose run had finished (its first's runs are finished by then)."""
    name = f"job-{uuid.uuid4().hex[:8]}"
    times = [T0 + k * H for k in range(len(live))]
    for nominal, state in zip(times, live, strict=True):
        if state is not None:
            live_run(store, name, nominal, state)

    def backfill_all() -> list[dict[str, Any]]:
        backfill = a_backfill(store, name, times[0], times[-1], reprocess=reprocess)
        made: list[dict[str, Any]] = []
        remaining = list(times)
        while remaining:
            step = store.create_backfill_runs(backfill, remaining, limit, maker(name, backfill.id))
            assert step is not None
            made += step.created
            remaining = remaining[step.decided :]
        return made

    first = backfill_all()
    for run in first:  # the first backfill's runs finish
        store.set_run_state(run["id"], StateType.COMPLETED, StateName.COMPLETED)
    second = backfill_all()

    runs = store.read_runs(name, limit=1000)
    keys = [(run.scheduled_for, run.generation) for run in runs]
    assert len(keys) == len(set(keys))
    unfinished = [run.scheduled_for for run in runs if run.state_type not in _FINAL]
    assert len(unfinished) == len(set(unfinished))
    if reprocess is Reprocess.NONE:
        assert second == []
    else:  # a time under way (Running) never gets a second run
        running = {t for t, state in zip(times, live, strict=True) if state == "Running"}
        assert not {run["scheduled_for"] for run in first + second} & running


_FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}


# The daemon's runner, with the scheduler and a stand-in for the worker pool.


def runner_for(tmp_path: Path, store: Store, workers: int = 4, **policies: str) -> Any:
    from gnomon.daemon._backfills import BackfillRunner  # the daemon's part under test

    extra = "".join(f'\n    {key} = "{value}"' for key, value in policies.items())
    scheduler, pool = make_scheduler(
        tmp_path,
        store,
        f"""
    [[deployments]]
    name = "job"
    flow = "flows.py:job"
    cron = "0 * * * *"{extra}
    """,
        Workers(workers),
    )
    return BackfillRunner(store, scheduler, "test-daemon"), scheduler, pool


def test_the_runner_keeps_its_max_concurrent_unfinished_whatever_the_overlap_policy(
    tmp_path: Path, store: Store
) -> None:
    runner, scheduler, pool = runner_for(tmp_path, store, overlap="skip")
    backfill = a_backfill(store, "job", T0, T0 + 5 * H, max_concurrent=2)

    assert runner.step(T0) == 2
    scheduler.dispatch(T0)
    assert len(pool.running) == 2  # both start: overlap = "skip" is the schedule's
    assert runner.step(T0) == 0  # two unfinished: no more
    first = pool.running[0]
    store.set_run_state(first, StateType.COMPLETED, StateName.COMPLETED)
    pool.finish(scheduler, first, T0)
    assert runner.step(T0) == 1
    while store.read_backfill(backfill.id).status == BackfillStatus.RUNNING:
        scheduler.dispatch(T0)
        for run_id in list(pool.running):
            store.set_run_state(run_id, StateType.COMPLETED, StateName.COMPLETED)
            pool.finish(scheduler, run_id, T0)
        runner.step(T0)

    runs = store.read_runs("job")
    assert sorted(run.scheduled_for for run in runs) == [T0 + k * H for k in range(6)]
    assert {(run.trigger, run.generation, run.backfill_id) for run in runs} == {
        ("backfill", 1, backfill.id)
    }
    assert store.read_backfill(backfill.id).status == BackfillStatus.COMPLETED


def test_the_schedules_waiting_runs_start_before_a_backfills(tmp_path: Path, store: Store) -> None:
    runner, scheduler, pool = runner_for(tmp_path, store, workers=1)
    a_backfill(store, "job", T0 - 10 * H, T0 - 5 * H, max_concurrent=3)
    runner.step(T0)
    [decision] = scheduler.fire_many([("job", T0)], T0)

    scheduler.dispatch(T0)

    assert pool.running == [decision.flow_run_id]  # the live fire, though its time is later


@pytest.mark.parametrize(
    ("reprocess", "expected"),
    [
        (Reprocess.NONE, {"missed": 2}),
        (Reprocess.FAILED, {"missed": 2, "failed": 2}),
        (Reprocess.ALL, {"missed": 2, "failed": 2, "completed": 2}),
    ],
)
def test_reprocess_makes_the_next_generation_of_failed_or_all_times(
    tmp_path: Path, store: Store, reprocess: Reprocess, expected: dict[str, int]
) -> None:
    runner, _, _ = runner_for(tmp_path, store)
    states = {"completed": StateName.COMPLETED, "failed": StateName.FAILED}
    states["missed"] = StateName.MISSED
    nominal = {"completed": T0, "failed": T0 + H, "missed": T0 + 2 * H}
    for key, state in states.items():
        live_run(store, "job", nominal[key], state)
    a_backfill(store, "job", T0, T0 + 2 * H, max_concurrent=5, reprocess=reprocess)

    runner.step(T0 + 3 * H)

    made = {
        key: run.generation
        for run in store.read_runs("job")
        if run.trigger == "backfill"
        for key, at in nominal.items()
        if run.scheduled_for == at
    }
    assert made == expected


def test_a_paused_deployments_backfill_waits_for_its_resume(tmp_path: Path, store: Store) -> None:
    runner, scheduler, _ = runner_for(tmp_path, store)
    a_backfill(store, "job", T0, T0 + H)
    scheduler.set_paused("job", True, T0)

    assert runner.step(T0) == 0
    scheduler.set_paused("job", False, T0)
    assert runner.step(T0) == 2


# Real daemons, through the CLI.

SLOW_FLOWS = """
import os, time
from gnomon import flow


@flow
def job(seconds: float = 0.3) -> None:
    time.sleep(seconds)
"""


def daemon_config(tmp_path: Path, seconds: float) -> Path:
    config = write_config(
        tmp_path,
        f"""
        [[deployments]]
        name = "job"
        flow = "jobs.py:job"
        cron = "* * * * *"
        parameters = {{ seconds = {seconds} }}
        """,
        "workers = 4",
    )
    (tmp_path / "jobs.py").write_text(SLOW_FLOWS)
    return config


def started(config: Path, home: Path, store: Store) -> Any:
    """A daemon on ``config``, once it has registered its deployment."""
    daemon = start_daemon(config, home)
    wait_for(lambda: store.read_deployment("job"), WAIT, "the daemon to register job")
    return daemon


def minutes_ago(count: int) -> str:
    moment = datetime.now(UTC).replace(second=0, microsecond=0) - count * M
    return moment.isoformat()


def cli(home: Path, config: Path, *args: str) -> Any:
    return gnomon(home, *args, GNOMON_CONFIG=str(config))


def backfill_of(store: Store) -> Any:
    [row] = store.read_backfills()
    return row


def most_at_once(runs: list[Any]) -> int:
    """The most runs whose [start, end] overlap at one instant."""
    edges = sorted(
        [(run.start_time, 1) for run in runs] + [(run.end_time, -1) for run in runs],
        key=lambda edge: (edge[0], edge[1]),
    )
    most = current = 0
    for _, change in edges:
        current += change
        most = max(most, current)
    return most


def test_a_daemon_runs_a_backfill_under_its_max_concurrent_and_again_creates_nothing(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list[Any]
) -> None:
    config = daemon_config(tmp_path, 0.5)
    start, end = minutes_ago(40), minutes_ago(31)  # ten times, all passed
    daemons.append(started(config, gnomon_home, store))
    asked = cli(gnomon_home, config, "backfill", "job", "--from", start, "--to", end,
                "--max-concurrent", "2")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert "backfill 1 of job: 10 nominal times" in asked.stdout

    followed = cli(gnomon_home, config, "backfill", "show", "1", "--follow")

    assert followed.returncode == 0, followed.stderr
    assert "[##############################] 10/10 times 10 Completed" in followed.stdout
    runs = [run for run in store.read_runs("job", limit=100) if run.trigger == "backfill"]
    assert len(runs) == 10
    assert most_at_once(runs) <= 2  # its own limit, with four workers free
    again = cli(gnomon_home, config, "backfill", "job", "--from", start, "--to", end,
                "--dry-run", "--json")  # fmt: skip
    assert {item["generation"] for item in json.loads(again.stdout)} == {None}
    cli(gnomon_home, config, "backfill", "job", "--from", start, "--to", end)
    second = wait_for(
        lambda: [b for b in store.read_backfills() if b.id == 2 and b.status == "completed"],
        WAIT,
        "the second backfill to complete",
    )
    assert (second[0].decided, second[0].created_runs) == (10, 0)
    assert (
        len([run for run in store.read_runs("job", limit=100) if run.trigger == "backfill"]) == 10
    )


def test_cancel_stops_a_backfill_its_running_runs_and_its_waiting_ones(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list[Any]
) -> None:
    config = daemon_config(tmp_path, 60)
    daemons.append(started(config, gnomon_home, store))
    cli(gnomon_home, config, "backfill", "job", "--from", minutes_ago(20), "--to",
        minutes_ago(11), "--max-concurrent", "2")  # fmt: skip
    wait_for(lambda: store.read_backfill_states(1).get("Running") == 2, WAIT, "two running")

    cancelled = cli(gnomon_home, config, "backfill", "cancel", "1", "--reason", "wrong day")

    assert cancelled.returncode == 0, cancelled.stderr
    assert "backfill 1 cancelled; 2 of its runs cancelled" in cancelled.stdout
    wait_for(lambda: store.read_backfill_states(1) == {"Cancelled": 2}, WAIT, "runs cancelled")
    row = backfill_of(store)
    assert (row.status, row.created_runs, row.reason) == ("cancelled", 2, "wrong day")
    again = cli(gnomon_home, config, "backfill", "cancel", "1")
    assert again.returncode == 1
    assert "backfill 1 has ended (cancelled)" in again.stderr


def test_a_backfill_goes_on_after_its_daemon_is_killed_and_started_again(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list[Any]
) -> None:
    config = daemon_config(tmp_path, 1.0)
    daemon = started(config, gnomon_home, store)
    daemons.append(daemon)
    cli(gnomon_home, config, "backfill", "job", "--from", minutes_ago(20), "--to",
        minutes_ago(15), "--max-concurrent", "1")  # fmt: skip
    wait_for(lambda: store.read_backfill_states(1).get("Completed", 0) >= 2, WAIT, "two done")

    daemon.send_signal(signal.SIGKILL)
    daemon.wait(timeout=30)
    daemons.append(started(config, gnomon_home, store))

    wait_for(lambda: backfill_of(store).status == "completed", WAIT, "the backfill to complete")
    runs = [run for run in store.read_runs("job", limit=100) if run.trigger == "backfill"]
    nominal = sorted(run.scheduled_for for run in runs)
    assert len(nominal) == 6
    assert len(set(nominal)) == 6  # each time once: the killed run is Crashed, not redone
    assert backfill_of(store).created_runs == 6


# The API.


ASK = "/api/v1/deployments/nightly-report/backfills"


def test_the_api_asks_for_lists_shows_and_cancels_backfills(api: Api) -> None:  # noqa: F811
    reader = api.client(api.token_for("reader", TokenAccess.READ))
    operator = api.client(api.token_for("on-call", TokenAccess.OPERATE))
    # Paris's fall-back day: 02:30 comes twice and fires once.
    body = {"from": "2026-10-24", "to": "2026-10-26", "max_concurrent": 3, "reverse": True}
    body["parameters"] = {"day": "2026-10-25", "api_token": "t0p-s3cret"}
    with api.admin as admin, reader, operator:
        dry = admin.post(ASK, json={**body, "dry_run": True})
        refused = reader.post(ASK, json=body)
        created = operator.post(ASK, json=body)
        bad = admin.post(ASK, json={**body, "to": "2026-10-01"})
        future = admin.post(ASK, json={**body, "to": "2999-01-01"})
        unknown = admin.post("/api/v1/deployments/nope/backfills", json=body)
        listed = reader.get("/api/v1/backfills").json()
        shown = reader.get("/api/v1/backfills/1").json()
        missing = reader.get("/api/v1/backfills/99")
        read_cancel = reader.delete("/api/v1/backfills/1")
        cancelled = operator.delete("/api/v1/backfills/1")
        again = operator.delete("/api/v1/backfills/1")
    assert dry.status_code == 200, dry.text
    assert dry.json() == [
        {"nominal": "2026-10-26T01:30:00.000Z", "generation": 1, "reason": "no run"},
        {"nominal": "2026-10-25T00:30:00.000Z", "generation": 1, "reason": "no run"},
        {"nominal": "2026-10-24T00:30:00.000Z", "generation": 1, "reason": "no run"},
    ]
    assert refused.status_code == 403
    assert created.status_code == 201, created.text
    view = created.json()
    assert (view["id"], view["total"], view["from"], view["requested_by"]) == (
        1,
        3,
        "2026-10-23T22:00:00.000Z",
        "on-call",
    )
    assert bad.status_code == 422
    assert "is before from" in bad.json()["error"]
    assert future.status_code == 422
    assert "has not come yet" in future.json()["error"]
    assert unknown.status_code == 404
    assert [item["id"] for item in listed] == [1]
    assert (shown["status"], shown["max_concurrent"], shown["runs"]) == ("running", 3, {})
    assert shown["parameters"] == {"day": "2026-10-25", "api_token": "********"}
    assert missing.status_code == 404
    assert read_cancel.status_code == 403
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert again.status_code == 409
    assert "t0p-s3cret" not in json.dumps([entry.detail for entry in api.store.read_audit()])
    actions = [entry.action for entry in api.store.read_audit(limit=5)]
    assert AuditAction.BACKFILL in actions
    assert AuditAction.BACKFILL_CANCEL in actions
    assert "poll" in api.nudges


def test_a_backfill_of_too_many_times_is_refused_naming_the_limit(
    store: Store, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "every-minute"
        flow = "flows.py:tick"
        cron = "* * * * *"
        """,
    )
    ops = Operations(store, OPERATOR)
    assert ops.apply(config).status == "applied"
    backfills = BackfillOperations(ops)
    now = datetime.now(UTC)

    with pytest.raises(InvalidInput, match="holds more than 100,000 nominal times"):
        backfills.plan("every-minute", "2026-06-01", "2026-09-01", now)  # 132,480 minutes


def test_a_range_without_nominal_times_says_why_when_the_deployment_does(
    store: Store, tmp_path: Path
) -> None:
    """An interval counts from its anchor (its registration here): none before it."""
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "every-hour"
        flow = "flows.py:tick"
        interval = "1h"
        """,
    )
    ops = Operations(store, OPERATOR)
    assert ops.apply(config).status == "applied"
    backfills = BackfillOperations(ops)
    now = datetime.now(UTC)
    week_ago = (now - timedelta(days=7)).date().isoformat()
    day_ago = (now - timedelta(days=6)).date().isoformat()

    plan = backfills.plan("every-hour", week_ago, day_ago, now)
    why = "its interval counts from its anchor, .*: none before it"
    with pytest.raises(InvalidInput, match=f"every-hour has no nominal time from .*; {why}"):
        backfills.start(plan)


@pytest.mark.parametrize(
    ("zone", "start"), [("UTC", "0001-01-01"), ("Asia/Tokyo", "0001-01-01T00:00")]
)
def test_a_backfill_from_the_first_year_is_refused_in_words(
    store: Store, tmp_path: Path, zone: str, start: str
) -> None:
    entry = f'[[deployments]]\nname = "daily"\nflow = "flows.py:tick"\ntimezone = "{zone}"'
    ops = Operations(store, OPERATOR)
    assert ops.apply(write_config(tmp_path, entry + '\ncron = "0 6 * * *"')).status == "applied"

    with pytest.raises(InvalidInput, match=r"from '0001-01-01.*' is too far back"):
        BackfillOperations(ops).plan("daily", start, "2026-09-01", datetime.now(UTC))


def test_a_backfill_of_a_deployment_that_only_runs_after_others_names_its_upstreams(
    store: Store, tmp_path: Path
) -> None:
    entry = '[[deployments]]\nname = "{}"\nflow = "flows.py:tick"\n'
    config = entry.format("extract") + 'cron = "0 6 * * *"\n' + entry.format("load")
    ops = Operations(store, OPERATOR)
    after = 'after = [{ deployment = "extract" }]'
    assert ops.apply(write_config(tmp_path, config + after)).status == "applied"
    backfills = BackfillOperations(ops)
    plan = backfills.plan("load", "2026-09-01", "2026-09-03", datetime.now(UTC))

    with pytest.raises(InvalidInput) as refused:
        backfills.start(plan)
    assert str(refused.value) == (
        "load has no schedule of its own (it runs after extract): backfill extract,"
        " whose runs start load's"
    )


# The dashboard, in a real browser.


def test_the_deployment_pages_form_asks_for_a_backfill_whose_page_shows_and_cancels_it(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    log_in(page, api, token(api, "on-call", TokenAccess.OPERATE), "/deployments/nightly-report")
    page.fill("#backfill-from", "2026-10-24")
    page.fill("#backfill-to", "2026-10-26")
    page.fill("#backfill-concurrent", "2")
    page.select_option("#backfill-reprocess", "failed")
    page.click("form.backfill button")
    page.wait_for_url("**/backfills/1?said=*")

    assert "Backfill 1 of nightly-report asked for." in page.inner_text("[role=status]")
    assert "0 of 3 times done" in page.inner_text(".backfill-done")
    [row] = api.store.read_backfills()
    assert (row.max_concurrent, row.reprocess, row.requested_by) == (2, "failed", "on-call")
    [entry] = api.store.read_audit(action=AuditAction.BACKFILL)
    assert (entry.actor, entry.origin, entry.target) == ("on-call", "dashboard", "1")

    page.fill("#cancel-reason", "wrong days")
    page.click("form.cancel-backfill button")
    page.wait_for_url("**/backfills/1?said=*")
    assert "cancelled: wrong days" in page.inner_text(".backfill-status")
    assert page.locator("form.cancel-backfill").count() == 0

    page.goto(api.url + "/deployments/nightly-report")
    assert page.locator("tr[data-backfill='1'] a[href='/backfills/1']").count() == 1
    page.fill("#backfill-from", "2026-10-26")
    page.fill("#backfill-to", "2026-10-24")
    page.click("form.backfill button")
    page.wait_for_url("**/deployments/nightly-report?said=*")
    assert "is before from" in page.inner_text("[role=status]")
    assert len(api.store.read_backfills()) == 1


def test_the_cli_refuses_a_bad_range_in_one_line_and_dry_runs_a_good_one(
    tmp_path: Path, gnomon_home: Path, store: Store
) -> None:
    config = daemon_config(tmp_path, 0.1)
    assert cli(gnomon_home, config, "deployments", "apply").returncode == 0

    future = cli(gnomon_home, config, "backfill", "job", "--from", minutes_ago(5), "--to",
                 "2999-01-01")  # fmt: skip
    unreadable = cli(gnomon_home, config, "backfill", "job", "--from", "last week", "--to",
                     minutes_ago(1))  # fmt: skip
    unknown = cli(gnomon_home, config, "backfill", "nope", "--from", minutes_ago(5), "--to",
                  minutes_ago(1))  # fmt: skip
    dry = cli(gnomon_home, config, "backfill", "job", "--from", minutes_ago(5), "--to",
              minutes_ago(1), "--dry-run")  # fmt: skip

    assert future.returncode == 2
    assert future.stderr.count("\n") == 1
    assert "has not come yet" in future.stderr
    assert unreadable.returncode == 2
    assert "from 'last week' is not an ISO 8601 date or time" in unreadable.stderr
    assert unknown.returncode == 2
    assert 'no deployment named "nope"' in unknown.stderr
    assert dry.returncode == 0, dry.stderr
    assert "job: 5 nominal times" in dry.stdout
    assert "5 would run" in dry.stdout
    assert store.read_backfills() == []


def test_a_backfills_waiting_runs_are_neither_late_on_the_overview_nor_watched(
    store: Store,
) -> None:
    """A backfill's runs wait long after their nominal time on purpose: the overview's late
    runs and the deadline watch leave them out, and keep the schedule's own waiting run."""
    backfill = a_backfill(store, "job", T0, T0 + H)
    step = store.create_backfill_runs(backfill, [T0], 1, maker("job", backfill.id))
    assert step is not None
    live = live_run(store, "job", T0 + H, StateName.SCHEDULED)
    later = T0 + 10 * H

    assert [run.id for run in store.read_late_runs(later, 50)] == [live]
    assert [run.id for run in store.read_watched_runs(later, ["job"])] == [live]


@pytest.mark.parametrize("reverse", [False, True])
def test_the_runner_walks_a_long_range_a_batch_at_a_time_in_its_order(
    tmp_path: Path, store: Store, reverse: bool
) -> None:
    """1,201 hourly times, more than two of the runner's batches of 500: every time once,
    the first batch the oldest (or, reversed, the newest) 500."""
    runner, _, _ = runner_for(tmp_path, store)
    end = T0 + 1200 * H
    expected = backfill_times(schedule("0 * * * *"), T0, end, reverse)
    backfill = a_backfill(store, "job", T0, end, max_concurrent=1000, reverse=reverse)
    backfill_total = len(expected)
    assert backfill_total == 1201

    def steps() -> list[int]:
        """The runner's passes while it asks for another (a batch per pass)."""
        made = [runner.step(T0)]
        while runner.due():
            made.append(runner.step(T0))
        return made

    assert steps() == [500, 500]  # two batches, then its max_concurrent
    made = [run.scheduled_for for run in store.read_backfill_runs(backfill.id, 2000)]
    assert sorted(made) == sorted(expected[:1000])
    for run in store.read_backfill_unfinished(backfill.id):
        store.set_run_state(run.id, StateType.COMPLETED, StateName.COMPLETED)
    assert steps() == [201]
    for run in store.read_backfill_unfinished(backfill.id):
        store.set_run_state(run.id, StateType.COMPLETED, StateName.COMPLETED)
    runner.step(T0)

    runs = store.read_backfill_runs(backfill.id, 2000)
    assert sorted(run.scheduled_for for run in runs) == sorted(expected)
    assert store.read_backfill(backfill.id).status == BackfillStatus.COMPLETED
