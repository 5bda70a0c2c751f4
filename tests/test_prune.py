"""Housekeeping (retain_runs, retain_logs, `gnomon db prune`): ages counted from a run's end
on literal dates, everything of a pruned run gone with it and nothing else, log lines
pruned apart from runs, result files that unexpired cache records hold kept, the runs a
catch-up could reach kept, dry runs, small transactions, the audit entry, both stores,
the command line, the config's values, and a real daemon pruning while it fires."""

from __future__ import annotations

import itertools
import json
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import create_run
from gnomon.daemon import PruneReport, Retention, prune_store
from gnomon.deployments import Deployment, load_config, sync_deployments
from gnomon.flows._results import get_result_store
from gnomon.states import StateName, StateType
from gnomon.store import Actor, AuditAction, Origin, Store
from test_cli_daemon import gnomon
from test_daemon import INTERVAL_TICK, runs, start_daemon, wait_for, write_config

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
D = timedelta(days=1)
H = timedelta(hours=1)
OPERATOR = Actor("ops", Origin.CLI)
WAIT = 90.0  # seconds a daemon test waits for what it expects, on a loaded machine


def ended_run(
    store: Store,
    created: datetime,
    ended: datetime | None,
    *,
    deployment: str | None = None,
    nominal: datetime | None = None,
    children: bool = True,
    **row: Any,
) -> str:
    """A run created at ``created`` that ended at ``ended`` (None: still Running), with a
    task run, their states, a log line of each and an artifact unless not ``children``."""
    run_id = uuid.uuid4().hex
    state = (StateType.COMPLETED, StateName.COMPLETED) if ended else (StateType.RUNNING, "Running")
    create_run(
        store,
        {
            "id": run_id,
            "name": f"run-{run_id[:6]}",
            "flow_name": "report",
            "deployment_name": deployment,
            "scheduled_for": nominal,
            "trigger": "schedule" if deployment else None,
            "created": created,
            "start_time": created,
            "end_time": ended,
            "state_type": state[0],
            "state_name": state[1],
            **row,
        },
    )
    if children:
        task_id = uuid.uuid4().hex
        store.insert_task_run(
            {
                "id": task_id,
                "flow_run_id": run_id,
                "task_key": "t",
                "name": "t-0",
                "created": created,
            }
        )
        store.add_state(
            {"flow_run_id": run_id, "task_run_id": task_id, "type": StateType.COMPLETED}
        )
        store.add_log(
            {"flow_run_id": run_id, "timestamp": ended or created, "level": 20, "message": "flow"}
        )
        store.add_log(
            {"flow_run_id": run_id, "task_run_id": task_id, "level": 20, "message": "task"}
        )
        store.flush()
        store.insert_artifact(
            {"id": uuid.uuid4().hex, "type": "markdown", "data": "# hi", "flow_run_id": run_id}
        )
    return run_id


def prune(
    store: Store, runs: timedelta | None = 90 * D, logs: timedelta | None = None, **kw: Any
) -> PruneReport:
    return prune_store(store, Retention(runs, logs), NOW, OPERATOR, **kw)


def run_ids(store: Store) -> set[str]:
    return {row.id for row in store.read_runs(limit=10_000)}


def log_messages(store: Store) -> list[str]:
    from gnomon.store import LogQuery

    return sorted(row.message for row in store.search_logs(LogQuery(), None, newest=False))


@pytest.mark.backends
def test_age_counts_from_a_runs_end_and_a_pruned_run_takes_everything_of_its_own(
    store: Store,
) -> None:
    old = ended_run(store, NOW - 91 * D, NOW - 91 * D)
    recent = ended_run(store, NOW - 89 * D, NOW - 89 * D)
    # Started 100 days ago, ended yesterday: a day old.
    long_running = ended_run(store, NOW - 100 * D, NOW - D)
    never_ended = ended_run(store, NOW - 100 * D, None)
    stale = store.record_breach(
        {
            "deployment_name": "report",
            "kind": "stale",
            "nominal_time": NOW - 95 * D,
            "limit_seconds": 60.0,
            "detected_at": NOW - 95 * D,
        }
    )

    report = prune(store)

    assert run_ids(store) == {recent, long_running, never_ended}
    counts = report.counts
    assert (counts.runs, counts.task_runs, counts.states, counts.logs) == (1, 1, 2, 2)
    assert counts.complete
    assert store.read_task_runs(old) == []
    assert [row for row in store.read_states() if row.flow_run_id == old] == []
    assert store.read_artifacts(flow_run_id=old) == []
    assert len(store.read_artifacts(flow_run_id=recent)) == 1
    assert sorted(log_messages(store)) == ["flow"] * 3 + ["task"] * 3
    for kept in (recent, long_running, never_ended):
        assert len(store.read_task_runs(kept)) == 1
    # A breach with no run of its own (stale) is not the pruned run's: it stays.
    assert stale is not None
    assert [b.id for b in store.read_breaches()] == [stale.id]
    [entry] = store.read_audit(limit=5)
    assert (entry.action, entry.actor, entry.origin) == (AuditAction.PRUNE, "ops", Origin.CLI)
    assert entry.detail is not None
    assert entry.detail["runs"] == 1
    assert entry.detail["runs_ended_before"] == (NOW - 90 * D).isoformat()


@pytest.mark.backends
def test_log_lines_are_pruned_apart_from_their_runs(store: Store) -> None:
    run_id = ended_run(store, NOW - 10 * D, NOW - 10 * D, children=False)
    for age, message in ((40, "40 days"), (31, "31 days"), (29, "29 days"), (1, "1 day")):
        store.add_log(
            {"flow_run_id": run_id, "timestamp": NOW - age * D, "level": 20, "message": message}
        )
    # The daemon's own lines belong to no run.
    store.add_log({"timestamp": NOW - 31 * D, "level": 20, "message": "daemon 31 days"})
    store.add_log({"timestamp": NOW - 2 * D, "level": 20, "message": "daemon 2 days"})
    store.flush()

    report = prune(store, runs=None, logs=30 * D, batch=2)

    assert report.counts.logs == 3
    assert report.counts.runs == 0
    assert run_ids(store) == {run_id}
    assert log_messages(store) == ["1 day", "29 days", "daemon 2 days"]


@pytest.mark.backends
def test_result_files_go_with_their_runs_but_unexpired_cache_records_stay(
    store: Store, gnomon_home: Path
) -> None:
    results = get_result_store()
    ended = NOW - 100 * D
    own = ended_run(store, ended, ended, children=False)
    results.write(own, "flow result", ended, None)
    store.update_flow_run(own, result_ref={"storage": "local", "key": own})
    keys = {
        "unexpired": NOW + D,  # still serves the cache: stays
        "expired": NOW - 50 * D,  # expired, written by the pruned run: goes
        "forever": None,  # a cache record without expiry: stays
    }
    task_runs = []
    for key, expiration in keys.items():
        results.write(key, key, ended, expiration)
        task_runs.append(
            {
                "id": uuid.uuid4().hex,
                "flow_run_id": own,
                "task_key": key,
                "name": key,
                "cache_key": key,
                "result_ref": {"storage": "local", "key": key},
            }
        )
    # Expired, but written again after the cut by a run that is kept: stays.
    results.write("rewritten", "again", NOW - 5 * D, NOW - D)
    task_runs.append(
        {
            "id": uuid.uuid4().hex,
            "flow_run_id": own,
            "task_key": "r",
            "name": "r",
            "cache_key": "rewritten",
            "result_ref": {"storage": "local", "key": "rewritten"},
        }
    )
    # A task's result without a cache key is named by its own id: goes.
    plain = uuid.uuid4().hex
    results.write(plain, "task result", ended, None)
    task_runs.append(
        {
            "id": plain,
            "flow_run_id": own,
            "task_key": "p",
            "name": "p",
            "result_ref": {"storage": "local", "key": plain},
        }
    )
    for row in task_runs:
        store.insert_task_run(row)
    store.flush()

    dry = prune(store, dry_run=True)
    assert dry.counts.results == 3
    assert results.read(own) is not None

    report = prune(store)

    assert report.counts.results == 3
    assert report.counts.task_runs == len(task_runs)
    assert results.read(own) is None
    assert results.read(plain) is None
    assert results.read("expired") is None
    for kept in ("unexpired", "forever", "rewritten"):
        assert results.read(kept) is not None, kept


def nightly(**fields: Any) -> Deployment:
    return Deployment(**{"name": "nightly", "flow": "flows:report", "cron": "0 3 * * *", **fields})


@pytest.mark.backends
def test_runs_a_catch_up_could_reach_stay_whatever_their_age(store: Store) -> None:
    """A deployment whose last fire was 95 days ago (paused since, say): the run at that
    nominal time and any after it are what keeps the catch-up from deciding them again."""
    sync_deployments(store, [nightly(), nightly(name="weekly")], NOW - 200 * D)
    last_fire = (NOW - 95 * D).replace(hour=3, minute=0)
    store.record_fire_times_many([("nightly", last_fire)])
    before = last_fire - D
    pruned = ended_run(store, before, before, deployment="nightly", nominal=before)
    at_horizon = ended_run(store, last_fire, last_fire, deployment="nightly", nominal=last_fire)
    # A deployment that never fired: its catch-up starts at its registration (fires_from).
    weekly_old = ended_run(
        store, NOW - 201 * D, NOW - 201 * D, deployment="weekly", nominal=NOW - 201 * D
    )
    weekly_after = ended_run(
        store, NOW - 150 * D, NOW - 150 * D, deployment="weekly", nominal=NOW - 150 * D
    )
    # A deployment gone from the store entirely keeps nothing.
    gone = ended_run(store, NOW - 150 * D, NOW - 150 * D, deployment="gone", nominal=NOW - 150 * D)

    report = prune(store, batch=2)

    assert run_ids(store) == {at_horizon, weekly_after}
    assert {pruned, weekly_old, gone}.isdisjoint(run_ids(store))
    assert report.counts.kept_for_catchup == 2
    assert report.counts.runs == 3


@pytest.mark.backends
def test_a_dry_run_counts_what_a_prune_deletes_and_deletes_nothing(store: Store) -> None:
    for days in (91, 120, 300):
        ended_run(store, NOW - days * D, NOW - days * D)
    ended_run(store, NOW - 5 * D, NOW - 5 * D)
    everything = run_ids(store)

    dry = prune(store, logs=30 * D, dry_run=True, batch=2)

    assert run_ids(store) == everything
    assert store.read_audit(limit=5) == []
    real = prune(store, logs=30 * D, batch=2)
    assert dry.counts.detail() == real.counts.detail()
    assert (real.counts.runs, real.counts.logs) == (3, 6)
    assert dry.summary().startswith("would delete 3 runs")
    assert real.summary().startswith("deleted 3 runs")


def test_each_transaction_deletes_at_most_a_batch_and_a_stopped_prune_resumes(
    store: Store,
) -> None:
    for days in range(91, 98):
        ended_run(store, NOW - days * D, NOW - days * D)
    calls = []

    def stop_after_two() -> bool:
        calls.append(1)
        return len(calls) <= 2

    first = prune(store, batch=2, between=stop_after_two)

    # Two transactions of at most two rows each: the two oldest runs' four log lines.
    assert not first.counts.complete
    assert (first.counts.logs, first.counts.states, first.counts.runs) == (4, 0, 0)
    assert len(run_ids(store)) == 7
    second = prune(store, batch=2)
    assert second.counts.complete
    assert second.counts.runs == 7
    assert run_ids(store) == set()
    assert [e.detail["complete"] for e in store.read_audit(limit=5) if e.detail] == [True, False]


def test_nothing_configured_means_kept_forever(tmp_path: Path) -> None:
    config = tmp_path / "gnomon.toml"
    config.write_text('[daemon]\napi = "off"\n')
    daemon = load_config(config).config.daemon
    assert (daemon.retain_runs, daemon.retain_logs) == (None, None)
    config.write_text('[daemon]\napi = "off"\nretain_runs = "90d"\nretain_logs = "P30D"\n')
    daemon = load_config(config).config.daemon
    assert (daemon.retain_runs, daemon.retain_logs) == (90 * D, 30 * D)


def test_a_bad_retention_is_one_line_naming_the_field_and_the_value(tmp_path: Path) -> None:
    config = tmp_path / "gnomon.toml"
    config.write_text('[daemon]\napi = "off"\nretain_runs = "soon"\n')

    result = gnomon(tmp_path, "deployments", "validate", "--config", str(config))

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "retain_runs" in line]
    assert "soon" in line


def test_db_prune_on_the_command_line(gnomon_home: Path, store: Store) -> None:
    now = datetime.now(UTC)
    old = ended_run(store, now - 91 * D, now - 91 * D)
    young = ended_run(store, now - 89 * D, now - 89 * D)

    dry = gnomon(gnomon_home, "db", "prune", "--older-than", "90d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would delete 1 runs (1 task runs, 2 states), 2 log lines")
    assert run_ids(store) == {old, young}

    done = gnomon(
        gnomon_home, "db", "prune", "--older-than", "90d", "--logs-older-than", "30d", "--json"
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    # The old run's two lines, and the young run's line of 89 days ago.
    assert (shown["runs"], shown["logs"], shown["dry_run"]) == (1, 3, False)
    assert run_ids(store) == {young}
    audit = gnomon(gnomon_home, "audit")
    assert "prune" in audit.stdout
    assert "deleted 1 runs" in audit.stdout

    for args in ((), ("--older-than", "soon")):
        refused = gnomon(gnomon_home, "db", "prune", *args)
        assert refused.returncode == 2
        assert "Traceback" not in refused.stderr


@pytest.mark.backends
def test_a_daemon_prunes_old_runs_while_it_fires_on_time(
    tmp_path: Path, gnomon_home: Path, store: Store
) -> None:
    now = datetime.now(UTC)
    old = 1_200
    rows = []
    for i in range(old):
        nominal = now - 3 * D - i * timedelta(seconds=1)
        rows.append(
            {
                "id": uuid.uuid4().hex,
                "name": f"old-{i}",
                "flow_name": "tick",
                "deployment_name": "ticker",
                "scheduled_for": nominal,
                "trigger": "schedule",
                "created": nominal,
                "end_time": nominal + timedelta(seconds=1),
                "state_type": StateType.COMPLETED,
                "state_name": StateName.COMPLETED,
            }
        )
    assert len(store.create_runs(rows)) == old
    # Without retain_runs nothing is pruned; a reload that sets it prunes at once.
    config = write_config(tmp_path, INTERVAL_TICK)
    daemon = start_daemon(config, gnomon_home)
    try:

        def fired(count: int) -> bool:
            new = [r for r in runs(store, "ticker") if r.created > now]
            return sum(r.state_name == StateName.COMPLETED for r in new) >= count

        wait_for(lambda: fired(3), WAIT, "three fires")
        ticker = store.read_runs(deployment="ticker", limit=5_000)
        assert len([r for r in ticker if r.created < now]) == old
        write_config(tmp_path, INTERVAL_TICK, daemon='workers = 2\nretain_runs = "1d"')
        daemon.send_signal(signal.SIGHUP)

        def pruned_and_firing() -> bool:
            rows = runs(store, "ticker")
            return all(r.created > now for r in rows) and len(rows) >= 5

        wait_for(pruned_and_firing, WAIT, "every old run pruned and five fires since")

        def status_line() -> str | None:
            shown = gnomon(gnomon_home, "daemon", "status").stdout
            return next((ln for ln in shown.splitlines() if ln.startswith("last prune")), None)

        line = wait_for(status_line, WAIT, "the last prune in `gnomon daemon status`")
        assert f"deleted {old:,} runs" in line
    finally:
        daemon.terminate()
        daemon.communicate(timeout=60)
    fired = sorted(r.scheduled_for for r in runs(store, "ticker"))
    assert fired == sorted(set(fired))
    steps = {later - earlier for earlier, later in itertools.pairwise(fired)}
    assert steps == {timedelta(seconds=1)}, "a fire was missed"
    assert all(r.state_name != StateName.MISSED for r in runs(store, "ticker"))
    entries = [e for e in store.read_audit(limit=50) if e.action == AuditAction.PRUNE]
    assert sum(e.detail["runs"] for e in entries if e.detail) == old
    assert {e.actor for e in entries} == {"gnomon-daemon"}


def test_the_daemons_pruner_writes_only_at_quiet_moments_and_stops_when_asked(
    store: Store,
) -> None:
    import threading

    # The pruner thread is the daemon's own, not on its face: driven here without a daemon.
    from gnomon.daemon._retention import Pruner

    for days in (91, 92):
        ended_run(store, NOW - days * D, NOW - days * D)
    asked = threading.Event()
    quiet = threading.Event()

    def is_quiet() -> bool:
        asked.set()
        return quiet.is_set()

    pruner = Pruner(store, lambda: Retention(90 * D), is_quiet, lambda: NOW)
    outcome: list[PruneReport | None] = []
    worker = threading.Thread(target=lambda: outcome.append(pruner.run_once()))
    worker.start()
    assert asked.wait(30)
    # Not quiet: the pruner waits before its first write.
    assert len(run_ids(store)) == 2
    quiet.set()
    worker.join(60)
    [report] = outcome
    assert report is not None
    assert report.counts.complete
    assert run_ids(store) == set()
    assert pruner.last_pass() == f"{NOW.isoformat(timespec='seconds')}: {report.summary()}"

    # Asked to stop while it waits for a quiet moment: it ends there, having written nothing.
    ended_run(store, NOW - 93 * D, NOW - 93 * D)
    quiet.clear()
    asked.clear()
    stopped = Pruner(store, lambda: Retention(90 * D), is_quiet, lambda: NOW)
    outcome.clear()
    worker = threading.Thread(target=lambda: outcome.append(stopped.run_once()))
    worker.start()
    assert asked.wait(30)
    stopped.stop()
    worker.join(60)
    [report] = outcome
    assert report is not None
    assert not report.counts.complete
    assert len(run_ids(store)) == 1


def pragma(database: Path, name: str) -> int:
    import sqlite3

    connection = sqlite3.connect(database)
    try:
        return int(connection.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        connection.close()


def test_a_vacuumed_store_gives_pruned_space_back_to_the_file_system(
    gnomon_home: Path, store: Store
) -> None:
    database = gnomon_home / "gnomon.db"
    for days in range(91, 131):
        ended_run(store, NOW - days * D, NOW - days * D, parameters={"blob": "x" * 20_000})
    assert pragma(database, "auto_vacuum") == 0  # stores are not created so
    # Without it, a prune leaves the pages free for new rows: the file keeps its size.
    unvacuumed = prune(store, runs=129 * D)
    assert (unvacuumed.counts.runs, unvacuumed.counts.freed_pages) == (1, 0)
    assert pragma(database, "freelist_count") > 0

    done = gnomon(gnomon_home, "db", "vacuum")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"vacuumed {database}: ")
    assert pragma(database, "auto_vacuum") == 2  # incremental
    assert pragma(database, "freelist_count") == 0
    pages = pragma(database, "page_count")
    report = prune(store)
    assert report.counts.runs == 39
    assert report.counts.freed_pages > 0
    assert pragma(database, "freelist_count") == 0
    assert pragma(database, "page_count") == pages - report.counts.freed_pages
    assert "free pages given back to the file system" in report.summary()
    actions = [entry.action for entry in store.read_audit(limit=5)]
    assert actions == [AuditAction.PRUNE, AuditAction.VACUUM, AuditAction.PRUNE]


def test_db_vacuum_is_refused_while_a_daemon_holds_the_store(gnomon_home: Path) -> None:
    from gnomon.daemon import DaemonLock

    gnomon(gnomon_home, "db", "upgrade")
    lock = DaemonLock.for_store(gnomon_home, f"sqlite:///{gnomon_home / 'gnomon.db'}")
    lock.acquire()
    try:
        refused = gnomon(gnomon_home, "db", "vacuum")
    finally:
        lock.release()
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("Error: stop the daemon first")
    assert pragma(gnomon_home / "gnomon.db", "auto_vacuum") == 0


@pytest.mark.backends
@pytest.mark.postgresql_only
def test_db_vacuum_says_what_to_do_on_postgresql(gnomon_home: Path, store: Store) -> None:
    refused = gnomon(gnomon_home, "db", "vacuum")
    assert refused.returncode == 1
    assert "PostgreSQL's autovacuum" in refused.stderr
    assert "Traceback" not in refused.stderr


# (days before NOW the run was created, days it lasted or None if it never ended, its
# deployment: None, one of two registered ones, or one the store never had)
# Days on either side of the 90-day cut, so that runs often fall on a horizon or the cut.
DAYS = st.sampled_from([0, 1, 60, 89, 90, 91, 100, 150, 200, 250])
RUNS = st.lists(
    st.tuples(DAYS, st.one_of(st.none(), DAYS), st.sampled_from([None, "a", "b", "ghost"])),
    max_size=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# A run at its deployment's registration, and one at its last fire: both kept.
@example(runs=[(200, 1, "a")], last_fire=None, registered=200, batch=1)
@example(runs=[(100, 0, "a"), (150, 0, "a")], last_fire=100, registered=250, batch=1)
@given(
    runs=RUNS,
    last_fire=st.one_of(st.none(), DAYS),
    registered=DAYS,
    batch=st.integers(1, 4),
)
def test_a_prune_deletes_exactly_the_runs_ended_before_the_cut_that_no_catch_up_reaches(
    store: Store,
    runs: list[tuple[int, int | None, str | None]],
    last_fire: int | None,
    registered: int,
    batch: int,
) -> None:
    """Whatever the runs, the batch size and the deployments' horizons: a dry run counts
    what the prune then deletes, and what is left is every run that ended at or after the
    cut, never ended, or is at or after its deployment's catch-up horizon."""
    tag = uuid.uuid4().hex[:8]  # each example's deployments are its own
    names = {"a": f"a-{tag}", "b": f"b-{tag}", "ghost": f"ghost-{tag}", None: None}
    sync_deployments(
        store, [nightly(name=names["a"]), nightly(name=names["b"])], NOW - registered * D
    )
    horizons = {names["a"]: NOW - registered * D, names["b"]: NOW - registered * D}
    if last_fire is not None:
        store.record_fire_times_many([(names["a"], NOW - last_fire * D)])
        horizons[names["a"]] = max(horizons[names["a"]], NOW - last_fire * D)
    expected = set()
    mine = set()
    for created_days, lasted, key in runs:
        created = NOW - created_days * D + timedelta(seconds=len(mine))  # distinct keys
        ended = None if lasted is None else created + lasted * D
        name = names[key]
        run_id = ended_run(
            store, created, ended, deployment=name, nominal=name and created, children=False
        )
        mine.add(run_id)
        horizon = horizons.get(name) if name else None
        reachable = horizon is not None and created >= horizon
        if ended is None or ended >= NOW - 90 * D or reachable:
            expected.add(run_id)

    dry = prune(store, batch=batch, dry_run=True)
    real = prune(store, batch=batch)

    assert run_ids(store) & mine == expected
    assert real.counts.runs == dry.counts.runs == len(mine - expected)
    assert real.counts.complete


def test_the_retention_commented_in_config_example_toml_loads_uncommented(
    tmp_path: Path,
) -> None:
    from conftest import REPO

    text = (REPO / "config.example.toml").read_text()
    assert '# retain_runs = "90d"' in text
    uncommented = text.replace('# retain_runs = "90d"', 'retain_runs = "90d"').replace(
        '# retain_logs = "30d"', 'retain_logs = "30d"'
    )
    config = tmp_path / "config.toml"
    config.write_text(uncommented)
    result = load_config(config, check_flows=False)
    assert result.problems == []
    daemon = result.config.daemon
    assert (daemon.retain_runs, daemon.retain_logs) == (90 * D, 30 * D)


CATCHING_UP = """
[[deployments]]
name = "ticker"
flow = "flows.py:tick"
interval = "1s"
catchup = "all"
max_catchup = 1000
"""


@pytest.mark.backends
def test_a_daemon_started_after_a_prune_fires_no_pruned_time_again(
    tmp_path: Path, gnomon_home: Path, store: Store
) -> None:
    """Every run of a stopped daemon's every-second deployment is older than the cut, but
    the next start's catch-up begins at the stored last fire (two fires behind, as a
    killed daemon leaves it), and the runs from there on stay: no nominal time is decided
    twice, and the downtime is caught up from there."""
    config = write_config(tmp_path, CATCHING_UP)
    daemon = start_daemon(config, gnomon_home)
    try:
        wait_for(lambda: len(runs(store, "ticker")) >= 3, WAIT, "three fires")
    finally:
        daemon.terminate()
        daemon.communicate(timeout=60)
    [row] = [r for r in store.read_deployments() if r.name == "ticker"]
    assert row.last_fire is not None
    # As a daemon killed before it stored its last fires leaves it: two fires behind.
    last_fire = row.last_fire - timedelta(seconds=2)
    store.record_fire_times_many([("ticker", last_fire)])
    before = {r.scheduled_for: r.id for r in runs(store, "ticker")}
    ended = max(r.end_time or NOW for r in runs(store, "ticker"))
    wait_for(lambda: datetime.now(UTC) - ended > timedelta(seconds=2), WAIT, "every run old enough")

    pruned = gnomon(gnomon_home, "db", "prune", "--older-than", "1s", "--json")
    assert pruned.returncode == 0, pruned.stderr
    left = {r.scheduled_for: r.id for r in runs(store, "ticker")}
    assert set(left) == {nominal for nominal in before if nominal >= last_fire}
    assert json.loads(pruned.stdout)["kept_for_catchup"] == len(left)

    daemon = start_daemon(config, gnomon_home)
    try:
        wait_for(lambda: len(runs(store, "ticker")) >= len(left) + 3, WAIT, "fires after it")
    finally:
        daemon.terminate()
        daemon.communicate(timeout=60)
    after = runs(store, "ticker")
    again = [
        r.scheduled_for for r in after if r.scheduled_for in before and r.id not in left.values()
    ]
    assert again == [], "a pruned nominal time was fired again"
    fired = sorted(r.scheduled_for for r in after if r.scheduled_for is not None)
    assert fired[0] == min(left)
    assert {b - a for a, b in itertools.pairwise(fired)} == {timedelta(seconds=1)}
