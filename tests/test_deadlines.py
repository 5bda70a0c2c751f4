"""Deadlines and freshness: the rules on literal dates, the config's problems named, the
breaches table on each store, and real daemons telling a loopback webhook receiver of a
run past its deadline (cancelled with cancel_at_deadline), one waiting for a worker past
its late_after, one that completed too fast, a deployment gone stale and fresh again, and
a restarted daemon that tells nothing twice."""

from __future__ import annotations

import json
import re
import signal
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO, create_run
from gnomon.control import Operations
from gnomon.daemon._breach_rules import (
    Finding,
    RunFacts,
    run_cleared_at,
    run_findings,
    stale_time,
    too_fast,
)
from gnomon.daemon._freshness import Freshness
from gnomon.daemon._metrics import DaemonMetrics
from gnomon.daemon._notify import breach_event
from gnomon.deployments import Deployment, load_config, sync_deployments
from gnomon.states import StateName, StateType
from gnomon.store import Actor, AuditAction, BreachKind, Origin, Store
from gnomon.store.rows import BreachRow
from test_api import Api, api  # noqa: F401 (the fixture)
from test_cli_daemon import gnomon, table
from test_daemon import DaemonProcess, runs, start_daemon, wait_for, write_config
from test_dashboard import browser, log_in, page  # noqa: F401 (fixtures)
from test_metrics import scrape
from test_notify import Receiver

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a nominal time
S = timedelta(seconds=1)
M = timedelta(minutes=1)
WAIT = 90.0  # seconds a daemon test waits for what it expects, on a loaded machine


def policies(**fields: Any) -> Deployment:
    return Deployment(**{"name": "report", "flow": "flows:report", "interval": "1h", **fields})


def run(
    state: StateType = StateType.RUNNING,
    name: StateName | None = None,
    started: timedelta | None = None,
    ended: timedelta | None = None,
    jitter: timedelta | None = None,
) -> RunFacts:
    """A run of the 06:00 fire, started and ended this long after it (None: not yet), due
    to start at 06:00 plus its deployment's ``jitter`` offset."""
    return RunFacts(
        "r1",
        "report",
        T0,
        state,
        name or StateName(state.value.capitalize()),
        None if started is None else T0 + started,
        None if ended is None else T0 + ended,
        None if jitter is None else T0 + jitter,
    )


def late(cleared: timedelta | None = None) -> Finding:
    return Finding("report", BreachKind.LATE, T0, 10 * M, "r1", cleared and T0 + cleared)


def missed(cleared: timedelta | None = None) -> Finding:
    return Finding("report", BreachKind.DEADLINE_MISSED, T0, 60 * M, "r1", cleared and T0 + cleared)


WAITING = StateType.SCHEDULED


@pytest.mark.parametrize(
    ("facts", "now", "expected"),
    [
        # Not started: late from 06:10 on, not before.
        (run(WAITING), 9 * M, []),
        (run(WAITING), 10 * M, [late()]),
        # Due at 06:05 (a jitter offset): late from 06:15 on.
        (run(WAITING, jitter=5 * M), 14 * M, []),
        (run(WAITING, jitter=5 * M), 15 * M, [late()]),
        (run(started=14 * M, jitter=5 * M), 30 * M, []),
        # Started in time, or late (found and cleared at once when nobody saw it wait).
        (run(started=10 * M), 30 * M, []),
        (run(started=25 * M), 30 * M, [late(25 * M)]),
        # Running past 07:00: missed its deadline, and it was late too.
        (run(started=11 * M), 61 * M, [late(11 * M), missed()]),
        # Finished after 07:00, or in time.
        (run(StateType.COMPLETED, started=S, ended=70 * M), 80 * M, [missed(70 * M)]),
        (run(StateType.COMPLETED, started=S, ended=59 * M), 80 * M, []),
        # Cancelled while it waited: late until then, no deadline to speak of.
        (run(StateType.CANCELLED, ended=20 * M), 80 * M, [late(20 * M)]),
        # Fires decided not to run are neither late nor past a deadline.
        (run(StateType.CANCELLED, StateName.SKIPPED, ended=0 * M), 90 * M, []),
        (run(StateType.FAILED, StateName.MISSED, ended=0 * M), 90 * M, []),
    ],
)
def test_a_runs_late_and_deadline_breaches_on_literal_times(
    facts: RunFacts, now: timedelta, expected: list[Finding]
) -> None:
    rules = policies(late_after="10m", deadline="1h")
    assert run_findings(rules, facts, T0 + now) == expected


minutes = st.integers(min_value=0, max_value=180).map(lambda n: n * M)


@given(started=minutes, took=minutes, first=minutes, later=minutes)
def test_what_a_finished_run_breached_never_changes_with_the_time_it_is_judged(
    started: timedelta, took: timedelta, first: timedelta, later: timedelta
) -> None:
    """A restarted daemon judging a run again finds the same breaches, cleared alike."""
    rules = policies(late_after="10m", deadline="1h")
    facts = run(StateType.COMPLETED, started=started, ended=started + took)
    judged = run_findings(rules, facts, T0 + started + took + first)
    assert judged == run_findings(rules, facts, T0 + started + took + first + later)
    assert all(finding.cleared is not None for finding in judged)


@pytest.mark.parametrize(
    ("kind", "facts", "cleared"),
    [
        (BreachKind.LATE, run(WAITING), None),
        (BreachKind.LATE, run(started=12 * M), 12 * M),
        (BreachKind.LATE, run(StateType.CANCELLED, ended=15 * M), 15 * M),
        (BreachKind.DEADLINE_MISSED, run(started=S), None),
        (BreachKind.DEADLINE_MISSED, run(StateType.CANCELLED, ended=61 * M), 61 * M),
        # A finished run whose end the store lost: it ended by now, at the latest.
        (BreachKind.DEADLINE_MISSED, run(StateType.CRASHED, started=S), 90 * M),
    ],
)
def test_an_open_breach_of_a_run_clears_when_it_starts_or_finishes(
    kind: BreachKind, facts: RunFacts, cleared: timedelta | None
) -> None:
    expected = None if cleared is None else T0 + cleared
    assert run_cleared_at(kind, facts, T0 + 90 * M) == expected


def test_too_fast_is_a_completed_run_shorter_than_min_duration() -> None:
    rules = policies(min_duration="30s")
    completed = StateType.COMPLETED
    assert too_fast(rules, run(completed, started=S, ended=S + 29 * S)) is True
    assert too_fast(rules, run(completed, started=S, ended=S + 30 * S)) is False
    assert too_fast(rules, run(StateType.FAILED, started=S, ended=2 * S)) is None
    assert too_fast(policies(), run(completed, started=S, ended=2 * S)) is None


@pytest.mark.parametrize(
    ("last_success", "counting_from", "expected"),
    [
        (T0, T0 - 3 * M, T0 + 60 * M),  # from the last success ...
        (T0, T0 + 30 * M, T0 + 90 * M),  # ... or a later resume: not stale for the pause
        (None, T0, T0 + 60 * M),  # never completed: from registration
        (None, None, None),
    ],
)
def test_a_deployment_goes_stale_fresh_within_after_its_last_success_or_resume(
    last_success: datetime | None, counting_from: datetime | None, expected: datetime | None
) -> None:
    assert stale_time(60 * M, last_success, counting_from) == expected


class Deployments:
    """What the freshness tracker asks of the daemon: which are paused, and since when each
    counts (a resume's time, as the store's fires_from has it)."""

    def __init__(self) -> None:
        self.paused: set[str] = set()
        self.counting: dict[str, datetime] = {}
        self.asked: list[str] = []

    def is_paused(self, name: str) -> bool:
        return name in self.paused

    def counting_from(self, name: str) -> datetime | None:
        self.asked.append(name)
        return self.counting.get(name)


def test_freshness_gives_each_stale_time_once_and_moves_it_on_a_success() -> None:
    fresh, daemon = Freshness(), Deployments()
    fresh.watch({"etl": 60 * M, "crm": 10 * M}, {"etl": T0, "crm": T0}, {"etl": T0 + 5 * M})
    stale = lambda at: fresh.stale(at, daemon.is_paused, daemon.counting_from)  # noqa: E731

    assert stale(T0 + 9 * M) == []
    assert stale(T0 + 10 * M) == [("crm", T0 + 10 * M)]
    assert stale(T0 + 30 * M) == []  # given once: it stays stale until a run completes
    fresh.succeeded("crm", T0 + 40 * M)
    fresh.succeeded("crm", T0 + 35 * M)  # an older end changes nothing
    assert stale(T0 + 49 * M) == []
    assert stale(T0 + 66 * M) == [("crm", T0 + 50 * M), ("etl", T0 + 65 * M)]
    assert fresh.last_success("crm") == T0 + 40 * M
    assert daemon.asked == ["crm", "crm", "etl"]  # only those coming up are read


def test_freshness_sets_a_paused_deployment_aside_and_counts_from_its_resume() -> None:
    fresh, daemon = Freshness(), Deployments()
    fresh.watch({"etl": 60 * M}, {"etl": T0}, {})
    stale = lambda at: fresh.stale(at, daemon.is_paused, daemon.counting_from)  # noqa: E731

    daemon.paused.add("etl")
    assert stale(T0 + 2 * 60 * M) == []  # paused: not stale
    daemon.paused.clear()
    daemon.counting["etl"] = T0 + 150 * M  # resumed then, says the store
    assert stale(T0 + 180 * M) == []
    assert stale(T0 + 210 * M) == [("etl", T0 + 210 * M)]


def test_freshness_notices_a_pause_and_resume_between_two_stale_times() -> None:
    fresh, daemon = Freshness(), Deployments()
    fresh.watch({"etl": 60 * M}, {"etl": T0}, {})
    daemon.counting["etl"] = T0 + 30 * M  # paused at 06:10, resumed at 06:30
    stale = lambda at: fresh.stale(at, daemon.is_paused, daemon.counting_from)  # noqa: E731

    assert stale(T0 + 60 * M) == []
    assert stale(T0 + 90 * M) == [("etl", T0 + 90 * M)]


# The config.

DEPLOYMENT = """
[[deployments]]
name = "report"
flow = "flows.py:report"
interval = "1h"
"""
D = 'gnomon.toml: deployment "report": '


@pytest.mark.parametrize(
    ("daemon", "entry", "expected"),
    [
        ("", 'late_after = "-5m"', D + 'late_after "-5m": must be positive'),
        ("", "late_after = -300", D + "late_after -300: must be longer than zero"),
        ("", 'deadline = "soon"', D + 'deadline "soon": not a duration'),
        ("", "min_duration = true", D + "min_duration true: must be a duration"),
        ("", 'fresh_within = "0s"', D + 'fresh_within "0s": must be longer than zero'),
        (
            "",
            'late_after = "10m"\ndeadline = "5m"',
            D + 'deadline "5m": must be longer than late_after (10m): a run starts before it',
        ),
        (
            "",
            'deadline = "1h"\nmin_duration = "2h"',
            D + 'min_duration "2h": must be shorter than deadline (1h)',
        ),
        (
            "",
            "cancel_at_deadline = true",
            D + "cancel_at_deadline true: needs a deadline: set deadline too (or leave this out)",
        ),
        (
            'late_after = "20m"',
            'deadline = "15m"',
            D + 'deadline "15m": must be longer than late_after (20m)',
        ),
        ('deadline = "PT1Y"', "", 'gnomon.toml: daemon.deadline "PT1Y": not an ISO 8601'),
    ],
)
def test_bad_deadline_settings_are_problems_naming_file_deployment_field_and_value(
    tmp_path: Path, daemon: str, entry: str, expected: str
) -> None:
    path = tmp_path / "gnomon.toml"
    path.write_text(f"[daemon]\n{daemon}\n" + DEPLOYMENT + entry + "\n")
    problems = [str(problem) for problem in load_config(path, check_flows=False).problems]
    assert any(problem.startswith(expected) for problem in problems), problems


def test_daemon_defaults_give_every_deployment_its_deadlines(tmp_path: Path) -> None:
    path = tmp_path / "gnomon.toml"
    path.write_text(
        '[daemon]\nlate_after = "5m"\ndeadline = "1h"\ncancel_at_deadline = true\n'
        + DEPLOYMENT
        + DEPLOYMENT.replace('"report"', '"export"')
        + 'deadline = "2h"\nfresh_within = "1d"\n'
    )
    result = load_config(path, check_flows=False)
    assert result.problems == []
    report, export = result.config.deployments
    assert (report.late_after, report.deadline, report.cancel_at_deadline) == (5 * M, 60 * M, True)
    assert (export.deadline, export.fresh_within) == (120 * M, timedelta(days=1))
    assert export.policies()["fresh_within"] == 86400.0  # stored in seconds


# The store.


def a_run(store: Store, deployment: str, nominal: datetime, state: StateName, **row: Any) -> str:
    run_id = uuid.uuid4().hex
    kind = {StateName.COMPLETED: StateType.COMPLETED, StateName.RUNNING: StateType.RUNNING}
    create_run(
        store,
        {
            "id": run_id,
            "name": f"{deployment}@{nominal.isoformat()}",
            "flow_name": "report",
            "deployment_name": deployment,
            "scheduled_for": nominal,
            "created": nominal,
            "trigger": "schedule",
            "state_type": kind.get(state, StateType.SCHEDULED),
            "state_name": state,
            **row,
        },
    )
    return run_id


def breach(deployment: str, kind: BreachKind, nominal: datetime, **row: Any) -> dict[str, Any]:
    return {
        "deployment_name": deployment,
        "kind": kind,
        "flow_run_id": None,
        "nominal_time": nominal,
        "limit_seconds": 600.0,
        "detected_at": nominal + 10 * M,
        **row,
    }


@pytest.mark.backends
def test_a_breach_is_recorded_once_per_deployment_kind_and_nominal_time(store: Store) -> None:
    run_id = a_run(store, "report", T0, StateName.SCHEDULED)
    first = store.record_breach(breach("report", BreachKind.LATE, T0, flow_run_id=run_id))

    assert first is not None
    assert (first.kind, first.flow_run_id, first.cleared_at, first.notified) == (
        BreachKind.LATE,
        run_id,
        None,
        False,
    )
    # Again, by this daemon or the next: nothing recorded, and the caller tells nothing.
    assert store.record_breach(breach("report", BreachKind.LATE, T0, flow_run_id=run_id)) is None
    other = store.record_breach(breach("report", BreachKind.DEADLINE_MISSED, T0))
    stale = store.record_breach(breach("export", BreachKind.STALE, T0 + M))
    assert other is not None
    assert stale is not None
    store.mark_breaches_notified([first.id])
    assert store.clear_breach(other.id, T0 + 70 * M)
    assert not store.clear_breach(other.id, T0 + 80 * M)  # ended already

    assert [b.id for b in store.read_open_breaches()] == [first.id, stale.id]
    assert [b.id for b in store.read_breaches()] == [stale.id, other.id, first.id]
    assert [b.id for b in store.read_breaches("report", open_only=True)] == [first.id]
    [late] = store.read_breaches("report", open_only=True)
    assert late.notified
    assert [b.cleared_at for b in store.read_breaches("report")] == [T0 + 70 * M, None]
    assert store.read_breaches("report", limit=1)[0].id == other.id


@pytest.mark.backends
def test_the_watch_reads_unfinished_runs_far_enough_back_and_last_successes(
    store: Store,
) -> None:
    waiting = a_run(store, "report", T0, StateName.SCHEDULED)
    running = a_run(store, "report", T0 + M, StateName.RUNNING, start_time=T0 + M)
    a_run(store, "report", T0 + 2 * M, StateName.SCHEDULED)  # too recent
    ended = T0 - M + 5 * S
    a_run(store, "report", T0 - M, StateName.COMPLETED, start_time=T0 - M, end_time=ended)
    a_run(store, "export", T0 - 2 * M, StateName.COMPLETED, start_time=T0, end_time=T0 + S)

    a_run(store, "unwatched", T0, StateName.SCHEDULED)  # a backlog of another deployment

    sync_deployments(store, [policies(), policies(name="export")], T0)
    watched = store.read_watched_runs(T0 + 2 * M, ["report", "export"])
    assert [row.id for row in watched] == [waiting, running]
    assert store.read_watched_run(running).start_time == T0 + M  # type: ignore[union-attr]
    assert store.read_last_successes(["report", "export", "none"]) == {
        "report": ended,
        "export": T0 + S,
    }


@pytest.mark.backends
def test_the_watch_leaves_a_backfills_runs_made_after_their_time_on_purpose(
    store: Store,
) -> None:
    on_time = a_run(store, "report", T0, StateName.SCHEDULED)
    a_run(store, "report", T0 - M, StateName.RUNNING, trigger="backfill", start_time=T0)

    assert [row.id for row in store.read_watched_runs(T0 + M, ["report"])] == [on_time]


# Real daemons.

FLOWS = """
import os, time
from gnomon import flow


@flow
def hold(seconds: float = 120.0) -> None:
    time.sleep(seconds)


@flow
def quick() -> None:
    pass


@flow
def flaky(marker: str) -> None:
    if not os.path.exists(marker):
        raise RuntimeError("the CRM is down")


@flow
def paced(marker: str) -> None:
    # At once until the marker exists, then a second and a half.
    if os.path.exists(marker):
        time.sleep(1.5)
"""

NOTIFY = """
[[notify]]
name = "ops"
url_env = "OPS_WEBHOOK"
"""


def daemon_config(tmp_path: Path, deployments: str, workers: int = 2) -> Path:
    (tmp_path / "dl_flows.py").write_text(FLOWS)
    return write_config(
        tmp_path,
        deployments + NOTIFY,
        daemon=f'workers = {workers}\npublic_url = "https://gnomon.example.com"',
    )


@pytest.fixture
def launch(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list, receiver: Receiver
) -> Callable[..., DaemonProcess]:
    """Starts a daemon on these deployments (and the ops webhook) once they are registered."""

    def start(deployments: str, workers: int = 2) -> DaemonProcess:
        config = daemon_config(tmp_path, deployments, workers)
        process = start_daemon(config, gnomon_home, OPS_WEBHOOK=receiver.url("hook"))
        daemons.append(process)
        names = re.findall(r'name = "([^"]+)"', deployments)
        wait_for(lambda: set(names) <= set(store.read_deployment_names()), WAIT, "registered")
        return process

    return start


def posts(receiver: Receiver, event: str | None = None, run_id: str | None = None) -> list[dict]:
    return [
        post
        for post in receiver.posts("hook")
        if (event is None or post["event"] == event)
        and (run_id is None or post["run_id"] == run_id)
    ]


def posted(receiver: Receiver, event: str, run_id: str | None = None) -> Callable[[], list]:
    return lambda: posts(receiver, event, run_id)


def operator(store: Store) -> Operations:
    return Operations(store, Actor("alice", Origin.CLI))


def cleared_in_store(store: Store, deployment: str) -> Callable[[], bool]:
    """Whether the deployment's breaches are all cleared in the store (a clearing is told
    first, then recorded)."""
    return lambda: store.read_breaches(deployment, open_only=True) == []


def finished_after(store: Store, deployment: str, after: datetime, count: int) -> Callable:
    """Whether ``count`` runs of ``deployment`` nominal after ``after`` have finished: the
    daemon's loop has checked deadlines several times meanwhile."""
    return lambda: (
        sum(
            row.end_time is not None and row.scheduled_for > after
            for row in runs(store, deployment)
        )
        >= count
    )


CANCELLED_AT_DEADLINE = """
[[deployments]]
name = "nightly-report"
flow = "dl_flows.py:hold"
interval = "1d"
deadline = "2s"
cancel_at_deadline = true
"""


@pytest.mark.backends
def test_a_run_past_its_deadline_is_told_once_and_cancelled_with_cancel_at_deadline(
    launch: Callable[..., DaemonProcess], store: Store, receiver: Receiver
) -> None:
    launch(CANCELLED_AT_DEADLINE)
    run_id = operator(store).trigger("nightly-report")["id"]

    wait_for(posted(receiver, "deadline_cleared", run_id), WAIT, "the deadline's clearing")

    [told] = posts(receiver, "deadline_missed", run_id)
    assert told["deployment"] == "nightly-report"
    assert told["url"] == f"https://gnomon.example.com/runs/{run_id}"
    assert told["breach"]["kind"] == "deadline_missed"
    assert told["breach"]["limit_seconds"] == 2.0
    assert "did not finish within deadline = 2s" in told["text"]
    assert "cancelling it (cancel_at_deadline)" in told["text"]
    [cleared] = posts(receiver, "deadline_cleared", run_id)
    assert cleared["state"] == "Cancelled"
    assert cleared["breach"]["cleared_at"] is not None
    row = store.read_flow_run(run_id)
    assert row is not None
    assert row.state_name == StateName.CANCELLED
    assert "cancel_at_deadline" in (row.state_message or "")
    # Cancelled as `gnomon runs cancel` cancels: audited, by the daemon.
    entry = next(e for e in store.read_audit() if e.action == AuditAction.CANCEL)
    assert (entry.actor, entry.origin, entry.target) == ("gnomon-daemon", "daemon", run_id)
    wait_for(cleared_in_store(store, "nightly-report"), WAIT, "the clearing recorded")
    [recorded] = store.read_breaches("nightly-report")
    assert (recorded.kind, recorded.flow_run_id, recorded.notified) == (
        BreachKind.DEADLINE_MISSED,
        run_id,
        True,
    )
    assert recorded.cleared_at is not None


@pytest.mark.backends
def test_a_deadline_breach_recorded_before_a_restart_still_cancels_its_run(
    launch: Callable[..., DaemonProcess], store: Store, receiver: Receiver
) -> None:
    # A daemon recorded the breach and was stopped before it asked for the cancellation
    # (or the store refused the request): its successor asks, and tells nothing twice.
    nominal = datetime.now(UTC) - 60 * M
    run_id = a_run(
        store, "nightly-report", nominal, StateName.SCHEDULED, entrypoint="dl_flows.py:hold"
    )
    found = breach(
        "nightly-report",
        BreachKind.DEADLINE_MISSED,
        nominal,
        flow_run_id=run_id,
        limit_seconds=2.0,
        notified=True,
    )
    assert store.record_breach(found) is not None
    launch(CANCELLED_AT_DEADLINE)

    wait_for(posted(receiver, "deadline_cleared", run_id), WAIT, "the deadline's clearing")
    row = store.read_flow_run(run_id)
    assert row is not None
    assert row.state_name == StateName.CANCELLED, row.state_message
    assert "cancel_at_deadline" in (row.state_message or "")
    assert posts(receiver, "deadline_missed") == []


def test_a_run_waiting_for_a_worker_past_late_after_is_late_until_it_starts(
    launch: Callable[..., DaemonProcess], store: Store, receiver: Receiver
) -> None:
    launch(
        """
        [[deployments]]
        name = "backup"
        flow = "dl_flows.py:hold"
        interval = "1d"

        [[deployments]]
        name = "report"
        flow = "dl_flows.py:quick"
        interval = "1d"
        late_after = "1s"
        """,
        workers=1,
    )
    ops = operator(store)
    backup = ops.trigger("backup")["id"]
    wait_for(lambda: store.read_flow_run(backup).state_name == StateName.RUNNING, WAIT, "backup")
    report = ops.trigger("report")["id"]

    wait_for(posted(receiver, "late", report), WAIT, "the report told late")
    assert store.read_flow_run(report).start_time is None  # type: ignore[union-attr]
    [opened] = store.read_breaches("report", open_only=True)
    assert (opened.kind, opened.flow_run_id) == (BreachKind.LATE, report)
    ops.cancel(backup, "the backup can wait")  # the worker is free: the report starts
    wait_for(posted(receiver, "late_cleared", report), WAIT, "the report's start told")

    [told] = posts(receiver, "late", report)
    assert "did not start within late_after = 1s" in told["text"]
    [cleared] = posts(receiver, "late_cleared", report)
    assert "run started" in cleared["breach"]["detail"]
    wait_for(cleared_in_store(store, "report"), WAIT, "the clearing recorded")
    assert posts(receiver, "late", backup) == []  # no late_after: not watched


def test_a_backfill_of_a_deployment_with_a_deadline_breaches_nothing(
    launch: Callable[..., DaemonProcess], store: Store
) -> None:
    """Its times are hours past their deadline: the backfill runs them then on purpose."""
    from gnomon.control import BackfillOperations

    launch(
        """
        [[deployments]]
        name = "hourly"
        flow = "dl_flows.py:hold"
        cron = "0 * * * *"
        parameters = { seconds = 1.5 }
        late_after = "1s"
        deadline = "2s"
        """
    )
    backfills = BackfillOperations(operator(store))
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=hours) for hours in (3, 1))
    plan = backfills.plan("hourly", start.isoformat(), end.isoformat(), now)
    backfill = backfills.start(plan, max_concurrent=2)
    wait_for(lambda: store.read_backfill(backfill.id).status == "completed", WAIT, "backfill")

    assert len(runs(store, "hourly")) == 2
    assert store.read_breaches("hourly") == []


def test_runs_completing_too_fast_are_told_once_until_one_takes_long_enough(
    launch: Callable[..., DaemonProcess], tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    marker = tmp_path / "rows-arrived"
    launch(
        f"""
        [[deployments]]
        name = "export"
        flow = "dl_flows.py:paced"
        interval = "1s"
        min_duration = "1s"
        parameters = {{ marker = "{marker}" }}
        """
    )
    [first] = wait_for(posted(receiver, "too_fast"), WAIT, "a too_fast notification")
    told_at = datetime.now(UTC)
    wait_for(finished_after(store, "export", told_at, 3), WAIT, "three more fast runs")
    marker.touch()
    wait_for(posted(receiver, "too_fast_cleared"), WAIT, "a run long enough")

    assert len(posts(receiver, "too_fast")) == 1  # one open per deployment
    assert "under min_duration = 1s" in first["text"]
    assert store.read_flow_run(first["run_id"]).state_name == StateName.COMPLETED  # type: ignore[union-attr]
    [cleared] = posts(receiver, "too_fast_cleared")
    assert cleared["run_id"] == first["run_id"]  # the breach's run; the detail names the new
    assert "completed in 1s" in cleared["breach"]["detail"]


@pytest.mark.backends
def test_a_deployment_whose_runs_fail_is_stale_once_across_a_restart_then_fresh_again(
    launch: Callable[..., DaemonProcess], tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    marker = tmp_path / "crm-is-back"
    deployment = f"""
        [[deployments]]
        name = "sync-crm"
        flow = "dl_flows.py:flaky"
        interval = "1s"
        fresh_within = "2s"
        late_after = "1m"
        parameters = {{ marker = "{marker}" }}
        """
    first = launch(deployment)
    [stale] = wait_for(posted(receiver, "stale"), WAIT, "a stale notification")
    assert stale["run_id"] is None
    assert stale["url"] == "https://gnomon.example.com/deployments/sync-crm"
    assert "no run completed within fresh_within = 2s (none yet)" in stale["text"]
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    [open_stale] = store.read_breaches("sync-crm", open_only=True)
    assert open_stale.notified
    # A breach a daemon recorded but was stopped before telling (the moment in between).
    failed = next(row for row in runs(store, "sync-crm") if row.state_name == "Failed")
    untold = store.record_breach(
        breach("sync-crm", BreachKind.LATE, failed.scheduled_for, flow_run_id=failed.id)
    )
    assert untold is not None

    restarted_at = datetime.now(UTC)
    launch(deployment)
    wait_for(posted(receiver, "late_cleared", failed.id), WAIT, "the untold breach told")
    wait_for(finished_after(store, "sync-crm", restarted_at, 3), WAIT, "three runs after it")
    marker.touch()
    wait_for(posted(receiver, "fresh_again"), WAIT, "a fresh_again notification")

    assert len(posts(receiver, "stale")) == 1  # still stale across the restart: told once
    assert len(posts(receiver, "late", failed.id)) == 1
    told = [post["event"] for post in posts(receiver, run_id=failed.id)]
    assert [event for event in told if event.startswith("late")] == ["late", "late_cleared"]
    events = [
        post["event"] for post in posts(receiver) if post["event"] in ("stale", "fresh_again")
    ]
    assert events == ["stale", "fresh_again"]
    wait_for(cleared_in_store(store, "sync-crm"), WAIT, "the clearing recorded")


def test_the_deadline_in_config_example_toml_loads() -> None:
    result = load_config(REPO / "config.example.toml", check_flows=False)
    assert result.problems == []
    nightly = next(d for d in result.config.deployments if d.name == "nightly-etl")
    assert (nightly.late_after, nightly.deadline) == (15 * M, 60 * M)


# What operators see: notifications, metrics, the API, the CLI and the dashboard.


def test_a_breachs_notification_says_what_which_run_and_links_to_it() -> None:
    row = BreachRow(7, "nightly-report", "late", "ab" * 16, T0, 600.0, T0 + 10 * M, None, False)
    detail = "the 2026-03-02T06:00:00Z run did not start within late_after = 10m"
    found = breach_event(row, False, detail, "Pending", ["crm"])
    cleared = breach_event(row, True, "the run started, 12m after its time", "Running")
    public = "https://gnomon.example.com"

    assert found.text(public) == (
        f":alarm_clock: nightly-report is late: {detail} (<{public}/runs/{'ab' * 16}|run abababab>)"
    )
    body = found.payload(public)
    assert (body["event"], body["state"], body["tags"]) == ("late", "Pending", ["crm"])
    assert body["scheduled_for"] == T0.isoformat()
    assert body["breach"] == {
        "kind": "late",
        "nominal_time": T0.isoformat(),
        "limit_seconds": 600.0,
        "detected_at": (T0 + 10 * M).isoformat(),
        "cleared_at": None,
        "detail": detail,
    }
    assert cleared.event.value == "late_cleared"
    assert cleared.text(None).startswith(":white_check_mark: nightly-report is no longer late")
    stale = BreachRow(8, "sync-crm", "stale", None, T0, 3600.0, T0, None, False)
    assert breach_event(stale, True, "a run completed").link(public) == (
        f"{public}/deployments/sync-crm"
    )


def test_breaches_are_counted_and_the_open_ones_shown_at_scrape_time() -> None:
    metrics = DaemonMetrics(pending=lambda: 0, busy=lambda: 0, idle=lambda: 1)
    open_now = {("report", "late"): 2, ("report", "deadline_missed"): 0}
    metrics.watch_breaches(lambda: open_now)
    metrics.breach_found("report", "late")
    metrics.breach_found("report", "late")
    samples = scrape(metrics)

    assert samples["gnomon_breaches_total", (("deployment", "report"), ("kind", "late"))] == 2
    assert samples["gnomon_breaches_open", (("deployment", "report"), ("kind", "late"))] == 2
    key = (("deployment", "report"), ("kind", "deadline_missed"))
    assert samples["gnomon_breaches_open", key] == 0


def some_breaches(store: Store) -> tuple[int, int]:
    """An open late breach of nightly-report's run, and a cleared stale one of sync-crm."""
    run_id = a_run(store, "nightly-report", T0, StateName.SCHEDULED)
    late = store.record_breach(breach("nightly-report", BreachKind.LATE, T0, flow_run_id=run_id))
    stale = store.record_breach(breach("sync-crm", BreachKind.STALE, T0 - M))
    assert late is not None
    assert stale is not None
    store.mark_breaches_notified([late.id, stale.id])
    store.clear_breach(stale.id, T0 + 30 * M)
    return late.id, stale.id


def test_the_api_lists_breaches_and_a_deployments_open_ones(api: Api) -> None:  # noqa: F811
    late, stale = some_breaches(api.store)
    with api.admin as client:
        everyone = client.get("/api/v1/breaches").json()
        opened = client.get("/api/v1/breaches", params={"open": "true"}).json()
        crm = client.get("/api/v1/breaches", params={"deployment": "sync-crm"}).json()
        shown = client.get("/api/v1/deployments/nightly-report").json()
        bad = client.get("/api/v1/breaches", params={"deployment": "../etc"})

    assert [b["id"] for b in everyone] == [late, stale]  # newest found first
    assert [b["id"] for b in opened] == [late]
    [cleared] = crm
    assert (cleared["kind"], cleared["run_id"], cleared["open"]) == ("stale", None, False)
    assert cleared["cleared_at"] == "2026-03-02T06:30:00.000Z"
    [listed] = shown["open_breaches"]
    assert listed == opened[0]
    assert (listed["policy"], listed["limit"], listed["limit_seconds"]) == (
        "late_after",
        "10m",
        600,
    )
    assert listed["nominal_time"] == "2026-03-02T06:00:00.000Z"
    assert bad.status_code == 422


def test_the_cli_lists_breaches_and_shows_a_deployments_open_ones(
    api: Api,  # noqa: F811
    gnomon_home: Path,
) -> None:
    some_breaches(api.store)
    listed = gnomon(gnomon_home, "breaches", "ls")
    opened = gnomon(gnomon_home, "breaches", "ls", "--open", "--json")
    shown = gnomon(gnomon_home, "deployments", "show", "nightly-report")
    bad = gnomon(gnomon_home, "breaches", "ls", "--deployment", "no such")

    rows = table(listed.stdout)
    header = ["DEPLOYMENT", "KIND", "RUN", "NOMINAL_TIME", "POLICY", "DETECTED_AT", "CLEARED_AT"]
    assert rows[0] == header
    assert [row[:2] for row in rows[1:]] == [["nightly-report", "late"], ["sync-crm", "stale"]]
    assert rows[1][-1] == "open"
    assert rows[1][4] == "late_after = 10m"
    assert rows[2][2] == "-"  # stale: the deployment's, no run
    [only] = json.loads(opened.stdout)
    assert (only["deployment"], only["kind"], only["open"]) == ("nightly-report", "late", True)
    assert "open breaches:" in shown.stdout
    line = shown.stdout.split("open breaches:")[1]
    assert "late" in line
    assert "late_after = 10m" in line
    assert bad.returncode == 2
    assert "invalid deployment name 'no such'" in bad.stderr


@pytest.mark.slow
def test_a_deployments_page_shows_its_open_and_latest_cleared_breaches(
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
) -> None:
    late, _ = some_breaches(api.store)
    log_in(page, api, api.token)

    badge = page.locator("tr[data-deployment=nightly-report] .badge.breach-open")
    assert badge.inner_text() == "late"
    page.click("tr[data-deployment=nightly-report] th a")
    page.wait_for_url(api.url + "/deployments/nightly-report")
    row = page.locator("#breaches tr[data-breach=late]")
    assert row.get_attribute("data-open") == "yes"
    assert "late_after = 10m" in row.inner_text()
    assert "open" in row.inner_text()
    run_id = api.store.read_breaches("nightly-report")[0].flow_run_id
    assert row.locator("a").get_attribute("href") == f"/runs/{run_id}"

    page.goto(api.url + "/deployments/sync-crm")
    cleared = page.locator("#breaches tr[data-breach=stale]")
    assert cleared.get_attribute("data-open") == "no"
    assert "stale since" in cleared.inner_text()
    assert page.locator("tr[data-deployment=sync-crm] .breach-open").count() == 0
    assert late
