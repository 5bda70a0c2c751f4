"""Runs triggered by runs in real daemons: extract -> load (each load run at its extract
run's nominal time, caused by it), and a daemon SIGKILLed between an upstream's end and
its downstream's row, or just after that row's insert, creates that row once when it
starts again.

The kill is injected as test_daemon_crash injects it: a ``sitecustomize`` on the daemon's
PYTHONPATH wraps a store function and SIGKILLs the daemon (never its workers) there, so
the daemon's code carries no test hooks.
"""

from __future__ import annotations

import signal
import textwrap
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from test_cli_daemon import gnomon
from test_daemon import DaemonProcess, runs, start_daemon, wait_for, write_config
from test_daemon_crash import CRASH_PREAMBLE, crash_daemon
from test_deadlines import WAIT, launch, posts  # noqa: F401 (the launch fixture)
from test_notify import Receiver

pytestmark = pytest.mark.backends

EXTRACT_LOAD = """
[[deployments]]
name = "extract"
flow = "flows.py:tick"
cron = "* * * * * *"
overlap = "allow"
max_concurrent = 4

[[deployments]]
name = "load"
flow = "flows.py:tick"
after = [{deployment = "extract"}]
"""


def assert_each_load_follows_its_extract(store) -> None:
    """Every load run is at an extract run's nominal time, caused by it, once."""
    extract = {row.scheduled_for: row for row in runs(store, "extract")}
    loads = runs(store, "load")
    assert loads
    assert max(Counter(row.scheduled_for for row in loads).values()) == 1
    for row in loads:
        upstream = extract[row.scheduled_for]
        assert (row.trigger, row.caused_by) == ("upstream", upstream.id)
        if upstream.state_name == "Completed":
            assert row.state_name != "Skipped" or "previous run still going" in (
                row.state_message or ""
            )
        else:
            assert row.state_name == "Skipped"


def test_a_daemon_runs_load_after_each_completed_extract(
    tmp_path: Path, gnomon_home: Path, store, daemons: list
) -> None:
    daemon = start_daemon(write_config(tmp_path, EXTRACT_LOAD, "workers = 4"), gnomon_home)
    daemons.append(daemon)

    def loads_completed() -> bool:
        return sum(row.state_name == "Completed" for row in runs(store, "load")) >= 3

    wait_for(loads_completed, timeout=60, what="three completed load runs")
    shown = gnomon(gnomon_home, "deployments", "next", "load")
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err

    assert_each_load_follows_its_extract(store)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "after extract"


CRASHER = CRASH_PREAMBLE + textwrap.dedent(
    """
    if point and not in_worker:
        from gnomon.store import _scheduled

        if point == "before_downstream":
            # The first look at an upstream's runs: an upstream ended, its downstream's
            # row is not written yet.
            def read_runs_at(self, names, nominal):
                die()

            _scheduled.ScheduledRunQueries.read_runs_at = read_runs_at
        elif point == "after_downstream_insert":
            original = _scheduled.ScheduledRunQueries._create_runs

            def create_runs(self, runs, unless_paused):
                created, paused = original(self, runs, unless_paused)
                if any(
                    run["trigger"] == "upstream" and run["state_name"] == "Pending"
                    for run in runs
                    if run["id"] in created
                ):
                    die()
                return created, paused

            _scheduled.ScheduledRunQueries._create_runs = create_runs
    """
)


@pytest.mark.parametrize("point", ["before_downstream", "after_downstream_insert"])
def test_a_daemon_killed_around_a_downstreams_row_creates_it_once_when_it_restarts(
    point: str, tmp_path: Path, gnomon_home: Path, store, daemons: list
) -> None:
    config = write_config(tmp_path, EXTRACT_LOAD)
    daemons.append(crash_daemon(config, gnomon_home, CRASHER, point))
    ended = [row for row in runs(store, "extract") if row.state_name in ("Completed", "Skipped")]
    assert ended, "an extract run ended before the kill"
    loads = runs(store, "load")
    if point == "before_downstream":
        assert loads == []  # killed before its row
    else:
        assert len(loads) == 1  # killed just after its row's insert

    second = start_daemon(config, gnomon_home)
    daemons.append(second)
    first_end = min(ended, key=lambda row: row.scheduled_for)

    def followed() -> bool:
        return any(
            row.scheduled_for == first_end.scheduled_for
            and row.state_name in ("Completed", "Skipped")
            for row in runs(store, "load")
        )

    wait_for(followed, timeout=60, what="the load run of the extract ended before the kill")
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=30)
    assert second.returncode == 0, err

    assert_each_load_follows_its_extract(store)


def test_a_downstream_waiting_past_its_late_after_for_its_upstream_is_told_late(
    launch: Callable[..., DaemonProcess],  # noqa: F811
    store,
    receiver: Receiver,
) -> None:
    """Its lateness counts from its nominal time (the upstream's), before its run exists:
    told late (naming no run) while extract still runs, cleared once its run started."""
    start = (datetime.now(UTC) + timedelta(seconds=10)).strftime("%Y%m%dT%H%M%S")
    launch(
        f"""
        [[deployments]]
        name = "extract"
        flow = "dl_flows.py:hold"
        parameters = {{ seconds = 4 }}
        schedules = [{{ rrule = "DTSTART:{start}\\nRRULE:FREQ=SECONDLY;COUNT=1" }}]

        [[deployments]]
        name = "load"
        flow = "dl_flows.py:quick"
        after = [{{ deployment = "extract" }}]
        late_after = "1s"
        """
    )

    def told(event: str) -> Callable[[], list[dict]]:
        return lambda: [post for post in posts(receiver, event) if post["deployment"] == "load"]

    [late] = wait_for(told("late"), WAIT, "load told late while extract runs")
    assert late["run_id"] is None
    assert "waits for its upstreams' runs to end" in late["text"]
    [recorded] = store.read_breaches("load")
    assert (recorded.kind, recorded.flow_run_id) == ("late", None)  # no run when found
    [cleared] = wait_for(told("late_cleared"), WAIT, "load's start told")
    [load] = runs(store, "load")
    [extract] = runs(store, "extract")
    assert (load.scheduled_for, load.caused_by) == (extract.scheduled_for, extract.id)
    assert late["breach"]["nominal_time"] == cleared["breach"]["nominal_time"]
    assert "run started" in cleared["breach"]["detail"]
    wait_for(lambda: store.read_breaches("load", open_only=True) == [], WAIT, "cleared")


def test_a_backfill_cascades_down_a_chain_as_a_backfill_and_breaches_nothing(
    launch: Callable[..., DaemonProcess],  # noqa: F811
    store,
) -> None:
    """extract -> load -> report: a backfill of extract runs load and report at each of
    its times, whatever report's overlap policy (skip), and none of those runs, made hours
    after their nominal time on purpose, is late or past its deadline."""
    from gnomon.control import BackfillOperations, Operations
    from gnomon.store import Actor, Origin

    chain = {
        "extract": ("quick", 'cron = "0 * * * *"'),
        "load": ("quick", 'after = [{ deployment = "extract" }]\nlate_after = "1s"'),
        "report": (
            "hold",
            'after = [{ deployment = "load" }]\nlate_after = "1s"\ndeadline = "2s"\n'
            "parameters = { seconds = 1.5 }",
        ),
    }
    launch(
        "".join(
            f'[[deployments]]\nname = "{name}"\nflow = "dl_flows.py:{flow}"\n{rest}\n'
            for name, (flow, rest) in chain.items()
        ),
        workers=4,
    )
    backfills = BackfillOperations(Operations(store, Actor("alice", Origin.CLI)))
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=hours) for hours in (4, 1))
    plan = backfills.plan("extract", start.isoformat(), end.isoformat(), now)
    backfills.start(plan, max_concurrent=3)

    def reports_ended() -> list:
        return [row for row in runs(store, "report") if row.end_time is not None]

    wait_for(lambda: len(reports_ended()) == 3, WAIT, "three report runs ended")
    assert [row.state_name for row in runs(store, "report")] == ["Completed"] * 3
    assert store.read_breaches("load") == []
    assert store.read_breaches("report") == []
