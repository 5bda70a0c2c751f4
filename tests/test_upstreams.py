"""Runs triggered by runs (a deployment's ``after``): the config's checks (unknown upstream,
cycles, upstreams without common nominal times), the scheduler's decisions with literal
times on a real store (a run at the upstream's nominal time, caused by its run; a Skipped
row when an upstream ended otherwise or was skipped; several upstreams all at one time),
and real daemons: extract -> load, and a daemon killed between an upstream's end and its
downstream's row creates that row once when it starts again."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gnomon.daemon._scheduler import Scheduler
from gnomon.deployments import load_config
from gnomon.states import StateName, StateType
from test_daemon import runs
from test_scheduler import Workers, make_scheduler
from test_store import home, url  # noqa: F401 (fixtures: a fresh database's URL)

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
FLOWS = "from gnomon import flow\n\n@flow\ndef job() -> None:\n    pass\n"


def problems(tmp_path: Path, deployments: str) -> list[str]:
    (tmp_path / "flows.py").write_text(FLOWS)
    config = tmp_path / "gnomon.toml"
    config.write_text(textwrap.dedent(deployments))
    return [str(problem) for problem in load_config(config, check_flows=False).problems]


def deployment(name: str, schedule: str) -> str:
    return f'\n[[deployments]]\nname = "{name}"\nflow = "flows.py:job"\n{schedule}\n'


# The config's checks.


def test_an_upstream_no_deployment_has_is_named_with_the_closest_name(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        deployment("extract", 'cron = "0 * * * *"')
        + deployment("load", 'after = [{deployment = "extrac"}]'),
    )
    assert found == [
        'gnomon.toml: deployment "load": after "extrac": no deployment has this name;'
        ' did you mean "extract"?'
    ]


def test_a_cycle_is_refused_naming_it_in_each_deployment_of_it(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        deployment("a", 'after = [{deployment = "c"}]')
        + deployment("b", 'after = [{deployment = "a"}]')
        + deployment("c", 'after = [{deployment = "b"}]')
        + deployment("d", 'after = [{deployment = "a"}]'),
    )
    cycle = "a -> c -> b -> a"
    assert found == [
        f'gnomon.toml: deployment "{name}": after "{cycle}": runs after itself: a cycle'
        for name in ("a", "c", "b")
    ]


def test_a_deployment_after_itself_is_a_cycle(tmp_path: Path) -> None:
    found = problems(tmp_path, deployment("self", 'after = [{deployment = "self"}]'))
    assert len(found) == 1
    assert "runs after itself: a cycle (self -> self)" in found[0]


def test_upstreams_without_a_common_nominal_time_are_refused_and_with_one_are_not(
    tmp_path: Path,
) -> None:
    hourly = deployment("hourly", 'cron = "0 * * * *"')
    half = deployment("half", 'cron = "30 * * * *"')
    daily = deployment("daily", 'schedules = [{rrule = "FREQ=DAILY;BYHOUR=6;BYMINUTE=0"}]')
    both = deployment("both", 'after = [{deployment = "hourly"}, {deployment = "half"}]')
    found = problems(tmp_path, hourly + half + both)
    assert found == [
        'gnomon.toml: deployment "both": after ["hourly", "half"]: these upstreams share no'
        " nominal time (none among the next 200 fires of the sparsest): a downstream runs at"
        " times all its upstreams produce"
    ]
    # Daily at 06:00 is an hourly time: the sparsest's fires are looked for in the other.
    sharing = deployment("sharing", 'after = [{deployment = "hourly"}, {deployment = "daily"}]')
    assert problems(tmp_path, hourly + daily + sharing) == []
    # A downstream without a schedule has its upstreams' common times as its own.
    chained = deployment("chained", 'after = [{deployment = "sharing"}, {deployment = "half"}]')
    assert len(problems(tmp_path, hourly + daily + half + sharing + chained)) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("anchor = 2027-01-01T00:00:00Z", "anchor applies to a schedule of the deployment's own"),
        ('after = [{deployment = "e", on = "done"}]', "Input should be 'completed', 'failed'"),
        ('after = [{deployment = "e"}, {deployment = "e"}]', "names 'e' twice"),
        ("after = []", "is empty"),
    ],
)
def test_bad_after_entries_are_named(tmp_path: Path, extra: str, message: str) -> None:
    entry = extra if extra.startswith("after") else f'after = [{{deployment = "e"}}]\n{extra}'
    found = problems(tmp_path, deployment("e", 'cron = "0 * * * *"') + deployment("d", entry))
    assert len(found) == 1, found
    assert message in found[0]


# The scheduler's decisions, with literal times, on both stores.


def scheduler_for(tmp_path: Path, store, deployments: str) -> tuple[Scheduler, Workers]:
    """test_scheduler's: the scheduler with a stand-in for the workers, registered an hour
    before T0. Its decisions are what is under test, with literal times."""
    return make_scheduler(tmp_path, store, deployments, Workers(size=10))


def end(store, scheduler: Scheduler, workers: Workers, run_id: str, state: StateType) -> None:
    """What a worker does at a run's end: its final state stored, then the pool told."""
    name = StateName.COMPLETED if state is StateType.COMPLETED else StateName.FAILED
    # Ended now: the order of ends decides which run caused a downstream's.
    assert store.set_run_state(run_id, state, name, None, end_time=datetime.now(UTC))
    workers.running.remove(run_id)
    scheduler.run_finished(run_id, state)


def only_run(store, deployment: str):
    [run] = runs(store, deployment)
    return run


MINUTELY = deployment("extract", 'cron = "* * * * *"')


def extract_and_load(
    tmp_path: Path, store, policies: str, on: str = "completed"
) -> tuple[Scheduler, Workers]:
    """extract every minute with ``policies``, and load after it (``on``)."""
    extract = deployment("extract", f'cron = "* * * * *"\n{policies}')
    load = deployment("load", f'after = [{{deployment = "extract", on = "{on}"}}]')
    return scheduler_for(tmp_path, store, extract + load)


@pytest.mark.backends
@pytest.mark.parametrize(
    ("on", "ended", "runs_after"),
    [
        ("completed", StateType.COMPLETED, True),
        ("completed", StateType.FAILED, False),
        ("failed", StateType.FAILED, True),
        ("failed", StateType.COMPLETED, False),
        ("any", StateType.FAILED, True),
        ("any", StateType.COMPLETED, True),
    ],
)
def test_a_downstream_runs_at_its_upstreams_nominal_time_when_it_ended_as_wanted(
    tmp_path: Path, store, on: str, ended: StateType, runs_after: bool
) -> None:
    """Otherwise its Skipped row says why; either way it names the run that caused it."""
    scheduler, workers = scheduler_for(
        tmp_path,
        store,
        MINUTELY + deployment("load", f'after = [{{deployment = "extract", on = "{on}"}}]'),
    )
    scheduler.plan_fires(T0)
    scheduler.tick(T0 + timedelta(minutes=1))
    upstream = only_run(store, "extract")
    assert runs(store, "load") == []  # nothing before the upstream ends

    end(store, scheduler, workers, upstream.id, ended)
    scheduler.tick(T0 + timedelta(minutes=1, seconds=30))

    load = only_run(store, "load")
    assert (load.scheduled_for, load.trigger, load.caused_by) == (
        upstream.scheduled_for,
        "upstream",
        upstream.id,
    )
    if runs_after:
        assert (load.state_type, load.state_message) == (
            "PENDING",
            f"after extract {ended.value.capitalize()}",
        )
        assert load.id in workers.running
    else:
        wanted = "completed or failed" if on == "any" else on
        assert (load.state_name, load.state_message) == (
            "Skipped",
            f"upstream extract ended {ended.value.capitalize()}, not {wanted}",
        )


@pytest.mark.backends
def test_several_upstreams_mean_all_of_them_at_one_nominal_time(tmp_path: Path, store) -> None:
    """The first to end decides nothing; the last one's end starts the run, caused by it."""
    scheduler, workers = scheduler_for(
        tmp_path,
        store,
        deployment("extract", 'cron = "* * * * *"\noverlap = "allow"\nmax_concurrent = 5')
        + deployment("crm", 'cron = "*/2 * * * *"')
        + deployment("load", 'after = [{deployment = "extract"}, {deployment = "crm"}]'),
    )
    scheduler.plan_fires(T0)
    scheduler.tick(T0 + timedelta(minutes=1))  # extract alone at 12:01
    scheduler.tick(T0 + timedelta(minutes=2))  # both at 12:02
    by_time = {(r.deployment_name, r.scheduled_for.minute): r for r in runs(store)}
    for key in [("extract", 1), ("extract", 2)]:
        end(store, scheduler, workers, by_time[key].id, StateType.COMPLETED)
    scheduler.tick(T0 + timedelta(minutes=2, seconds=10))
    assert runs(store, "load") == []  # crm's 12:02 has not ended

    end(store, scheduler, workers, by_time[("crm", 2)].id, StateType.COMPLETED)
    scheduler.tick(T0 + timedelta(minutes=2, seconds=20))
    load = only_run(store, "load")
    assert (load.scheduled_for.minute, load.caused_by, load.state_type) == (
        2,
        by_time[("crm", 2)].id,
        "PENDING",
    )


@pytest.mark.backends
def test_a_skipped_upstream_fire_records_a_skipped_downstream_and_so_on_down_the_chain(
    tmp_path: Path, store
) -> None:
    scheduler, _ = scheduler_for(
        tmp_path,
        store,
        MINUTELY
        + deployment("load", 'after = [{deployment = "extract", on = "any"}]')
        + deployment("report", 'after = [{deployment = "load"}]'),
    )
    scheduler.plan_fires(T0)
    scheduler.tick(T0 + timedelta(minutes=1))
    scheduler.tick(T0 + timedelta(minutes=2))  # the 12:01 run still going: 12:02 skipped

    skipped = next(r for r in runs(store, "extract") if r.state_name == "Skipped")
    [load] = runs(store, "load")
    [report] = runs(store, "report")
    assert (load.scheduled_for, load.state_name, load.caused_by) == (
        skipped.scheduled_for,
        "Skipped",
        skipped.id,
    )
    assert load.state_message == "upstream extract ended Skipped, not completed or failed"
    assert (report.state_name, report.caused_by) == ("Skipped", load.id)
    assert report.state_message == "upstream load ended Skipped, not completed"


@pytest.mark.backends
def test_a_paused_downstream_records_nothing_and_manual_upstream_runs_start_none(
    tmp_path: Path, store
) -> None:
    from gnomon.control import Operations
    from gnomon.store import Actor, Origin

    scheduler, workers = scheduler_for(
        tmp_path, store, MINUTELY + deployment("load", 'after = [{deployment = "extract"}]')
    )
    scheduler.set_paused("load", True, T0)
    scheduler.plan_fires(T0)
    scheduler.tick(T0 + timedelta(minutes=1))
    end(store, scheduler, workers, only_run(store, "extract").id, StateType.COMPLETED)
    decisions = scheduler.tick(T0 + timedelta(minutes=1, seconds=5))
    assert [(d.deployment, d.action) for d in decisions] == [("load", "paused")]
    assert runs(store, "load") == []

    # Resumed: a manual run of the upstream (its nominal time is when it was asked for,
    # which no schedule shares) ends and starts nothing.
    scheduler.set_paused("load", False, T0 + timedelta(minutes=2))
    requested = Operations(store, Actor("alice", Origin.CLI)).trigger("extract")
    manual = store.read_flow_run(requested["id"])
    assert manual is not None
    assert scheduler.admit(manual, T0 + timedelta(minutes=2)) is not None
    scheduler.dispatch(T0 + timedelta(minutes=2))
    end(store, scheduler, workers, manual.id, StateType.COMPLETED)
    decided = scheduler.tick(T0 + timedelta(minutes=2, seconds=5))
    assert [d.deployment for d in decided] == ["extract"]  # its 12:02 fire, nothing of load
    assert runs(store, "load") == []


# Migration 0020.

OLD_RUN = (
    "INSERT INTO flow_runs (id, name, flow_name, run_count, created, deployment_name,"
    " scheduled_for, trigger) VALUES (:id, 'extract@x', 'job', 0, :at, 'extract', :at,"
    " 'schedule')"
)


@pytest.mark.backends
@pytest.mark.empty_database
def test_runs_of_revision_0017_read_without_a_cause_and_downgrading_keeps_them(
    url: str,  # noqa: F811
) -> None:
    """0020 adds flow_runs.caused_by: runs from before have none, a daemon of 0017 still
    inserts runs without it, and downgrading drops the column and its index only."""
    from alembic import command
    from sqlalchemy import create_engine, inspect, text

    from gnomon.store import get_store, reset_store
    from gnomon.store._migrate import alembic_config

    command.upgrade(alembic_config(url), "0017")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(OLD_RUN), {"id": "a" * 32, "at": T0})
        store = get_store()  # first use migrates to head
        with engine.begin() as connection:  # what a daemon of 0017 writes meanwhile
            connection.execute(text(OLD_RUN), {"id": "b" * 32, "at": T0 + timedelta(hours=1)})
        for run_id in ("a" * 32, "b" * 32):
            row = store.read_flow_run(run_id)
            assert row is not None
            assert (row.trigger, row.caused_by) == ("schedule", None)
        assert store.read_caused_runs("a" * 32) == []
        command.downgrade(alembic_config(url), "0017")
        reset_store()
        with engine.connect() as connection:
            columns = {column["name"] for column in inspect(connection).get_columns("flow_runs")}
            indexes = {index["name"] for index in inspect(connection).get_indexes("flow_runs")}
            kept = connection.execute(text("SELECT count(*) FROM flow_runs")).scalar()
    finally:
        engine.dispose()
    assert "caused_by" not in columns
    assert "ix_flow_runs_caused_by" not in indexes
    assert kept == 2


def test_the_upstream_trigger_in_config_example_toml_loads() -> None:
    from conftest import REPO

    result = load_config(REPO / "config.example.toml", check_flows=False)
    assert [str(problem) for problem in result.problems] == []
    [report] = [d for d in result.config.deployments if d.name == "etl-report"]
    assert (report.schedule_kind, [str(u.on) for u in report.upstreams]) == ("after", ["completed"])
    assert report.timing().describe() == "after nightly-etl"


# The pure arithmetic behind the checks, on literal dates.


def fires(kind: str, expression: str, zone: str = "UTC"):
    from gnomon.scheduling import Schedule

    anchor = datetime(2026, 1, 1, tzinfo=UTC)  # an rrule's start day, without DTSTART
    return Schedule.single("x", kind, expression, zone, anchor).next_fire


@pytest.mark.parametrize(
    ("sources", "after", "common"),
    [
        # Daily 06:00 and hourly in New York, across the spring-forward night: 06:00 EDT.
        (
            [fires("cron", "0 6 * * *", "America/New_York"), fires("cron", "0 * * * *")],
            datetime(2027, 3, 14, 0, 0, tzinfo=UTC),
            datetime(2027, 3, 14, 10, 0, tzinfo=UTC),
        ),
        # Mondays and the 1st of the month: 2027-02-01 is the first Monday the 1st.
        (
            [fires("cron", "0 0 * * MON"), fires("rrule", "FREQ=MONTHLY;BYMONTHDAY=1")],
            datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
            datetime(2027, 2, 1, 0, 0, tzinfo=UTC),
        ),
        # On the hour and at half past: never.
        ([fires("cron", "0 * * * *"), fires("cron", "30 * * * *")], datetime(2027, 1, 1), None),
    ],
)
def test_common_time_is_the_first_time_every_source_gives(
    sources: list, after: datetime, common: datetime | None
) -> None:
    from gnomon.scheduling import common_time

    assert common_time(sources, after.replace(tzinfo=UTC)) == common


def test_find_cycle_names_the_first_cycle_along_its_edges() -> None:
    from gnomon.scheduling import find_cycle

    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"load": ["extract"], "extract": ["load"]}) == ["extract", "load", "extract"]
    # From "a" in name order: a -> b -> c, whose edge back to b closes the first cycle.
    assert find_cycle({"a": ["b"], "b": ["c", "a"], "c": ["b"]}) == ["b", "c", "b"]


def test_a_downstream_is_written_back_as_toml_that_loads_the_same(tmp_path: Path) -> None:
    """What ``serve`` and ``deploy()`` print for the config file."""
    from gnomon.deployments import deployments_toml

    text = MINUTELY + deployment(
        "load", 'after = [{deployment = "extract"}, {deployment = "crm", on = "any"}]'
    )
    text += deployment("crm", 'cron = "0 * * * *"')
    assert problems(tmp_path, text) == []
    loaded = load_config(tmp_path / "gnomon.toml", check_flows=False).config.deployments
    (tmp_path / "again.toml").write_text(deployments_toml(loaded))
    again = load_config(tmp_path / "again.toml", check_flows=False)
    assert [str(problem) for problem in again.problems] == []
    [load] = [d for d in again.config.deployments if d.name == "load"]
    assert [u.table() for u in load.upstreams] == [
        {"deployment": "extract", "on": "completed"},
        {"deployment": "crm", "on": "any"},
    ]
    assert load.schedule_kind == "after"


@pytest.mark.backends
def test_a_reprocessed_upstream_creates_the_downstreams_next_generation_of_its_time(
    tmp_path: Path, store
) -> None:
    """``runs retry`` of an extract run that load followed: its next generation ends, and
    load runs again at that nominal time as its generation 2, caused by it; once only,
    whoever decides again. A third while load's second still runs is recorded Skipped."""
    from gnomon.control import Operations
    from gnomon.store import Actor, Origin

    scheduler, workers = scheduler_for(
        tmp_path, store, MINUTELY + deployment("load", 'after = [{deployment = "extract"}]')
    )
    scheduler.plan_fires(T0)
    scheduler.tick(T0 + timedelta(minutes=1))
    first = only_run(store, "extract")
    end(store, scheduler, workers, first.id, StateType.COMPLETED)
    scheduler.tick(T0 + timedelta(minutes=1, seconds=10))
    end(store, scheduler, workers, only_run(store, "load").id, StateType.COMPLETED)

    ops = Operations(store, Actor("alice", Origin.CLI))

    def reprocess() -> str:
        retry = ops.retry(first.id)
        row = store.read_flow_run(retry["id"])
        assert row is not None
        assert scheduler.admit(row, T0 + timedelta(minutes=1, seconds=20)) is not None
        scheduler.dispatch(T0 + timedelta(minutes=1, seconds=20))
        end(store, scheduler, workers, row.id, StateType.COMPLETED)
        scheduler.tick(T0 + timedelta(minutes=1, seconds=30))
        return row.id

    second = reprocess()
    loads = sorted(runs(store, "load"), key=lambda run: run.generation)
    assert [(r.generation, r.scheduled_for, r.caused_by) for r in loads] == [
        (1, first.scheduled_for, first.id),
        (2, first.scheduled_for, second),
    ]
    assert loads[1].state_type == "PENDING"
    # Deciding again (a restart, another end seen) finds it decided: nothing to create.
    # The rule itself, on the stored rows (the scheduler's private module, as above).
    from gnomon.daemon._upstreams import verdict
    from gnomon.scheduling import Upstream

    stored = store.read_runs_at(["load", "extract"], first.scheduled_for)
    assert verdict("load", [Upstream("extract")], stored) is None
    assert verdict("load", [Upstream("extract")], [r for r in stored if r.id != loads[1].id])

    third = reprocess()  # load's generation 2 has not finished
    newest = max(runs(store, "load"), key=lambda run: run.generation)
    assert (newest.generation, newest.state_name, newest.caused_by) == (3, "Skipped", third)
    assert newest.state_message == "its generation 2 of this time has not finished"
    # Load's generation 2 was handed to a worker as such: what its summary (and the
    # deadline watch, which judges a time's first generation only) is told.
    assert store.set_run_state(loads[1].id, StateType.COMPLETED, StateName.COMPLETED, None)
    workers.running.remove(loads[1].id)
    dispatched = scheduler.run_finished(loads[1].id, StateType.COMPLETED)
    assert dispatched is not None
    assert (dispatched.trigger, dispatched.generation) == ("upstream", 2)


@pytest.mark.backends
def test_fires_missed_while_the_daemon_was_down_record_the_downstream_skipped_too(
    tmp_path: Path, store
) -> None:
    """Registered an hour before T0 with catchup = "none": the catch-up records extract's
    60 fire times Missed, and load a Skipped row at each, caused by it."""
    scheduler, _ = extract_and_load(tmp_path, store, 'catchup = "none"', on="any")
    scheduler.catch_up(T0)

    missed = {run.scheduled_for: run for run in runs(store, "extract")}
    loads = runs(store, "load")
    assert len(missed) == len(loads) == 60
    for load in loads:
        upstream = missed[load.scheduled_for]
        assert upstream.state_name == "Missed"
        assert (load.state_name, load.caused_by) == ("Skipped", upstream.id)
        assert load.state_message == "upstream extract ended Missed, not completed or failed"


@pytest.mark.backends
def test_in_any_order_of_three_ends_and_a_restart_at_each_a_downstream_time_is_one_run(
    tmp_path: Path, store
) -> None:
    """Every order in which three upstreams' runs at a time end, with a restarted daemon
    (a fresh scheduler following the ends it finds) after each end and, at the last, before
    the live one sees it (a daemon killed in between): one downstream run at that time,
    caused by the last end, whoever saw it first."""
    import itertools

    three = "".join(
        deployment(f"u{i}", 'cron = "* * * * *"\noverlap = "allow"\nmax_concurrent = 9')
        for i in range(3)
    )
    after = 'after = [{deployment = "u0"}, {deployment = "u1"}, {deployment = "u2", on = "any"}]'
    scheduler, workers = scheduler_for(tmp_path, store, three + deployment("d", after))
    deployments = load_config(tmp_path / "gnomon.toml").config.deployments
    scheduler.plan_fires(T0)
    for index, order in enumerate(itertools.permutations(range(3))):
        nominal = T0 + timedelta(minutes=index + 1)
        scheduler.tick(nominal)
        fired = {r.deployment_name: r for r in runs(store) if r.scheduled_for == nominal}
        for step, which in enumerate(order, start=1):
            run = fired[f"u{which}"]
            at = nominal + timedelta(seconds=step)
            assert store.set_run_state(
                run.id, StateType.COMPLETED, StateName.COMPLETED, None, end_time=at
            )
            workers.running.remove(run.id)
            scheduler.run_finished(run.id, StateType.COMPLETED)
            restarted = Scheduler(store, Workers(), daemon_id="restarted")
            restarted.set_deployments(deployments, store.read_schedule_states())
            if step < 3:
                scheduler.tick(at + timedelta(milliseconds=100))
                restarted.follow_missed_ends(at + timedelta(milliseconds=200))
            else:  # the restarted daemon sees the last end first
                restarted.follow_missed_ends(at + timedelta(milliseconds=100))
                scheduler.tick(at + timedelta(milliseconds=200))
        [load] = [r for r in runs(store, "d") if r.scheduled_for == nominal]
        last = fired[f"u{order[-1]}"]
        assert (load.generation, load.caused_by, load.daemon_id) == (1, last.id, "restarted")
    assert len(runs(store, "d")) == 6


@pytest.mark.backends
def test_an_upstream_retried_by_its_retries_decides_its_downstream_at_its_last_attempt(
    tmp_path: Path, store
) -> None:
    """extract has retries = 1: its failed first attempt goes back to AwaitingRetry and
    decides nothing; the second, completed, starts load."""
    scheduler, workers = extract_and_load(tmp_path, store, "retries = 1")
    scheduler.plan_fires(T0)
    scheduler.tick(T0 + timedelta(minutes=1))
    extract = only_run(store, "extract")
    end(store, scheduler, workers, extract.id, StateType.FAILED)
    scheduler.tick(T0 + timedelta(minutes=1, seconds=10))
    assert runs(store, "load") == []
    assert only_run(store, "extract").state_name == "AwaitingRetry"

    scheduler.dispatch(T0 + timedelta(minutes=1, seconds=10))
    end(store, scheduler, workers, extract.id, StateType.COMPLETED)
    scheduler.tick(T0 + timedelta(minutes=1, seconds=20))
    load = only_run(store, "load")
    assert (load.caused_by, load.state_type) == (extract.id, "PENDING")


@pytest.mark.backends
def test_a_backfill_of_the_upstream_cascades_whatever_the_downstreams_overlap_policy(
    tmp_path: Path, store
) -> None:
    """Runs a backfill made of extract end one after another while load's first is still
    going: load runs at each of their times (overlap = skip is for its live schedule), each
    caused by its upstream run, as a backfill's own runs start whatever the policy."""
    from gnomon.daemon._tracking import run_row
    from gnomon.store import RunCause

    scheduler, workers = extract_and_load(tmp_path, store, "")
    extract = scheduler.deployment("extract")
    assert extract is not None
    made = []
    for hours in (3, 2, 1):
        row = run_row(extract, T0 - timedelta(hours=hours), T0, RunCause.BACKFILL, "test")
        store.create_runs_unless_paused([row])
        scheduler.queue_backfill_run(extract, row)
        made.append(row["id"])
    scheduler.dispatch(T0)
    for run_id in made:
        end(store, scheduler, workers, run_id, StateType.COMPLETED)
    scheduler.tick(T0 + timedelta(seconds=1))

    loads = sorted(runs(store, "load"), key=lambda run: run.scheduled_for)
    assert [(r.scheduled_for, r.state_type, r.caused_by) for r in loads] == [
        (T0 - timedelta(hours=hours), "PENDING", run_id)
        for hours, run_id in zip((3, 2, 1), made, strict=True)
    ]
    assert all(load.id in workers.running for load in loads)


@pytest.mark.backends
def test_a_downstreams_calendar_leaves_out_its_upstreams_times_recorded_skipped(
    tmp_path: Path, store
) -> None:
    """load excludes every day: the extract's end runs no load, and its row says why (a
    downstream records each of its upstreams' times, so its own downstreams follow)."""
    every_day = '[[calendars]]\nname = "every-day"\nweekdays = ["mon", "tue", "wed", "thu",'
    every_day += ' "fri", "sat", "sun"]\n'
    load = deployment("load", 'after = [{deployment = "extract"}]\nexclude = ["every-day"]')
    scheduler, workers = scheduler_for(tmp_path, store, every_day + MINUTELY + load)
    scheduler.plan_fires(T0)
    scheduler.tick(T0 + timedelta(minutes=1))
    upstream = only_run(store, "extract")

    end(store, scheduler, workers, upstream.id, StateType.COMPLETED)
    scheduler.tick(T0 + timedelta(minutes=1, seconds=30))

    skipped = only_run(store, "load")
    assert (skipped.state_name, skipped.caused_by) == ("Skipped", upstream.id)
    assert (
        skipped.state_message
        == f"excluded: {upstream.scheduled_for:%Y-%m-%d} is in calendar 'every-day'"
    )
    assert skipped.id not in workers.running
