"""A deployment with several specs in the scheduler and in a real daemon: each fire's run
has the parameters of the spec it is the fire of (the first listed, for a time two specs
give), over the deployment's; a nominal time is one run; past active_until nothing is
planned."""

from __future__ import annotations

import signal
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gnomon.daemon._scheduler import Scheduler
from gnomon.deployments import load_config, sync_deployments
from test_cli_daemon import gnomon
from test_daemon import runs, start_daemon, wait_for, write_config
from test_scheduler import Workers

# The daemon's scheduling, on SQLite only: the backend does not change it, and the store
# calls it makes run on both backends in test_schedule_specs_views.py and test_scheduler.py.
pytestmark = [pytest.mark.backends, pytest.mark.sqlite_only]

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
FLOWS = """
from gnomon import flow


@flow
def job(label: str = "none", n: int = 0) -> str:
    return label
"""


def scheduler_for(tmp_path: Path, store, deployments: str) -> Scheduler:
    """A scheduler (with a recorder for workers: the Scheduler's tests') on ``deployments``,
    registered an hour before T0. Reaches the daemon's private scheduler as test_scheduler
    does: its decisions are what is under test, with literal times."""
    (tmp_path / "flows.py").write_text(FLOWS)
    config = tmp_path / "gnomon.toml"
    config.write_text(textwrap.dedent(deployments))
    result = load_config(config)
    assert result.ok, [str(problem) for problem in result.problems]
    sync_deployments(store, result.config.deployments, T0 - timedelta(hours=1))
    scheduler = Scheduler(store, Workers(size=100), daemon_id="test-daemon")
    scheduler.set_deployments(result.config.deployments, store.read_schedule_states())
    return scheduler


TWO_CRONS = """
[[deployments]]
name = "two"
flow = "flows.py:job"
overlap = "allow"
max_concurrent = 100
parameters = { label = "base", n = 1 }
schedules = [
  { cron = "*/2 * * * *", parameters = { label = "even" } },
  { cron = "* * * * *", parameters = { label = "every", n = 2 } },
]
"""


def test_each_fire_runs_with_its_specs_parameters_and_a_shared_time_once_as_the_firsts(
    tmp_path: Path, store
) -> None:
    scheduler = scheduler_for(tmp_path, store, TWO_CRONS)
    scheduler.plan_fires(T0)
    for minute in range(1, 5):
        scheduler.tick(T0 + timedelta(minutes=minute))

    fired = sorted(runs(store, "two"), key=lambda row: row.scheduled_for)
    assert [(row.scheduled_for.strftime("%H:%M"), row.parameters) for row in fired] == [
        ("12:01", {"label": "every", "n": 2}),
        ("12:02", {"label": "even", "n": 1}),  # both specs give 12:02: the first's
        ("12:03", {"label": "every", "n": 2}),
        ("12:04", {"label": "even", "n": 1}),
    ]


def test_a_catch_up_records_each_missed_fire_with_its_specs_parameters(
    tmp_path: Path, store
) -> None:
    """Registered an hour before: the catch-up runs the last 3 fire times and records the
    others Missed, each with the parameters of the spec it is the fire of."""
    policies = 'overlap = "allow"\ncatchup = "all"\nmax_catchup = 3'
    scheduler = scheduler_for(tmp_path, store, TWO_CRONS.replace('overlap = "allow"', policies))
    scheduler.catch_up(T0 + timedelta(minutes=3))

    fired = runs(store, "two")
    assert len(fired) == 63  # 11:01 to 12:03
    for row in fired:
        label = "even" if row.scheduled_for.minute % 2 == 0 else "every"
        assert (row.trigger, row.parameters["label"]) == ("catchup", label)
    ran = sorted(row.scheduled_for.strftime("%H:%M") for row in fired if row.state_name != "Missed")
    assert ran == ["12:01", "12:02", "12:03"]


def test_past_active_until_a_deployment_has_no_fire_planned(tmp_path: Path, store) -> None:
    scheduler = scheduler_for(
        tmp_path,
        store,
        """
        [[deployments]]
        name = "ended"
        flow = "flows.py:job"
        cron = "* * * * *"
        active_until = 2027-03-01T12:02:00Z
        """,
    )
    scheduler.plan_fires(T0)
    assert scheduler.next_due() == T0 + timedelta(minutes=1)
    scheduler.tick(T0 + timedelta(minutes=1))
    scheduler.tick(T0 + timedelta(minutes=2))  # 12:02 is included

    assert scheduler.next_due() is None  # nothing after active_until: not considered again
    fired = [row.scheduled_for.strftime("%H:%M") for row in runs(store, "ended")]
    assert sorted(fired) == ["12:01", "12:02"]


SECONDS = """
[[deployments]]
name = "pair"
flow = "pair_flows.py:job"
overlap = "allow"
max_concurrent = 8
parameters = { n = 7 }
schedules = [
  { interval = "2s", anchor = 2026-01-01T00:00:00Z, parameters = { label = "interval" } },
  { cron = "* * * * * *", parameters = { label = "cron" } },
]
"""


def test_a_daemon_with_two_specs_records_each_runs_parameters_and_no_time_twice(
    tmp_path: Path, gnomon_home: Path, store, daemons: list
) -> None:
    """Every second (the cron) and every even second (the interval, listed first): an even
    second is one run, the interval's; an odd one is the cron's."""
    (tmp_path / "pair_flows.py").write_text(FLOWS)
    daemon = start_daemon(write_config(tmp_path, SECONDS, "workers = 4"), gnomon_home)
    daemons.append(daemon)

    def completed_of_both() -> bool:
        done = [row for row in runs(store, "pair") if row.state_name == "Completed"]
        labels = {row.parameters["label"] for row in done if row.parameters}
        return len(done) >= 6 and labels == {"interval", "cron"}

    wait_for(completed_of_both, timeout=60, what="completed runs of both specs")
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err

    fired = runs(store, "pair")
    nominal = [row.scheduled_for for row in fired]
    assert len(nominal) == len(set(nominal))  # never two runs for one fire time
    for row in fired:
        assert row.scheduled_for.microsecond == 0
        label = "interval" if row.scheduled_for.second % 2 == 0 else "cron"
        assert row.parameters == {"n": 7, "label": label}, row.scheduled_for
    done = [row for row in fired if row.state_name == "Completed"]
    assert {row.parameters["label"] for row in done} == {"interval", "cron"}


TICK_AND_FAR = """
[[deployments]]
name = "ok"
flow = "flows.py:tick"
interval = "1s"

[[deployments]]
name = "far"
flow = "flows.py:tick"
jitter = "1h"
schedules = [{ rrule = "DTSTART:99991231T235959\\nRRULE:FREQ=SECONDLY" }]
"""


def test_a_fire_near_year_9999_with_jitter_neither_stops_the_daemon_nor_the_list(
    tmp_path: Path, gnomon_home: Path, store, daemons: list
) -> None:
    """Its due time would pass datetime's end: no more fires; the other deployment fires,
    the daemon stops on SIGTERM, and ``deployments list`` shows it without a traceback."""
    config = write_config(tmp_path, TICK_AND_FAR)
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(lambda: runs(store, "ok"), timeout=60, what="a run of the other deployment")
    listed = gnomon(gnomon_home, "deployments", "list")
    assert listed.returncode == 0, listed.stderr
    assert "far" in listed.stdout
    assert "Traceback" not in listed.stderr
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert not runs(store, "far")
    assert "Traceback" not in err


ENDED = """
[[deployments]]
name = "ended"
flow = "flows.py:tick"
schedules = [{ rrule = "FREQ=DAILY;UNTIL=20240101" }]
"""


def test_an_rrule_that_ended_before_registration_loads_and_simply_never_fires(
    tmp_path: Path, gnomon_home: Path, store, daemons: list
) -> None:
    """A rule whose UNTIL passed before it was registered is no problem for
    ``deployments validate`` or the daemon (it has no more fires, as a deployment past its
    ``active_until``): the daemon starts, the others fire, and nothing crashes. Before,
    validate passed it and the daemon crashed at every start building its schedule."""
    config = write_config(
        tmp_path,
        TICK_AND_FAR.split('\n[[deployments]]\nname = "far"', maxsplit=1)[0] + ENDED,
    )
    validated = gnomon(gnomon_home, "deployments", "validate", "--config", str(config))
    assert validated.returncode == 0, validated.stdout + validated.stderr
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(lambda: runs(store, "ok"), timeout=60, what="a run of the other deployment")
    listed = gnomon(gnomon_home, "deployments", "next", "ended")
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)

    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    assert store.read_deployment("ended") is not None
    assert not runs(store, "ended")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == ""


def test_a_deployment_whose_schedule_cannot_be_built_leaves_the_others_scheduled(
    tmp_path: Path, store
) -> None:
    """An interval whose store row lost its anchor cannot be built: at a reload it keeps
    the schedule it had; one not tracked before is left out. The others are tracked."""
    from gnomon.store.rows import ScheduleState

    scheduler = scheduler_for(tmp_path, store, TWO_CRONS + INTERVAL_TOO)
    result = load_config(tmp_path / "gnomon.toml")
    rows = store.read_schedule_states()
    broken = {**rows, "often": ScheduleState(*{**rows["often"].as_dict(), "anchor": None}.values())}
    before = scheduler.deployment("often")
    assert before is not None

    scheduler.set_deployments(result.config.deployments, broken)
    assert scheduler.deployment("often") is before
    assert scheduler.deployment("two") is not None

    fresh = Scheduler(store, Workers(size=100), daemon_id="test-daemon")
    fresh.set_deployments(result.config.deployments, broken)
    assert fresh.deployment("often") is None
    assert fresh.deployment("two") is not None


INTERVAL_TOO = """
[[deployments]]
name = "often"
flow = "flows.py:job"
interval = "5m"
"""
