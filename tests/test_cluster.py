"""Several daemons on one PostgreSQL database, as operators run them: real daemon processes
(one home each, as on separate hosts), real SIGKILL and SIGTERM, the real server."""

from __future__ import annotations

import collections
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from conftest import REPO
from test_api import Api, api  # noqa: F401 (the fixture)
from test_cli_daemon import gnomon
from test_daemon import start_daemon, wait_for, write_config
from test_dashboard import browser, log_in, page  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.backends, pytest.mark.postgresql_only, pytest.mark.slow]

TIMEOUT = 6  # the tests' heartbeat_timeout, seconds: a dead member is settled after it
DAEMON = f'workers = {{workers}}\nheartbeat_timeout = "{TIMEOUT}s"'


def members(url: str) -> list[dict[str, Any]]:
    """The members, none before the first daemon has migrated the database."""
    from sqlalchemy.exc import ProgrammingError

    with Connected(url) as connection:
        try:
            rows = connection.execute(text("SELECT id, pid, busy, idle FROM daemons"))
        except ProgrammingError:  # no table yet
            return []
        return [dict(row) for row in rows.mappings()]


def leader(url: str) -> str | None:
    with Connected(url) as connection:
        return connection.execute(text("SELECT daemon_id FROM cluster_leader")).scalar()


def query(url: str, sql: str, **values: Any) -> list[Any]:
    with Connected(url) as connection:
        return list(connection.execute(text(sql), values).all())


class Connected:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, poolclass=NullPool)

    def __enter__(self) -> Any:
        self.connection = self.engine.connect()
        return self.connection

    def __exit__(self, *_: object) -> None:
        self.connection.close()
        self.engine.dispose()


def member_of(url: str, pid: int) -> str:
    [found] = [row["id"] for row in members(url) if row["pid"] == pid]
    return found


def cluster(tmp_path: Path, count: int, deployments: str, workers: int = 2) -> list[Path]:
    """``count`` configs alike (each its own directory and home, as on its own host)."""
    configs = []
    for index in range(count):
        where = tmp_path / f"host{index}"
        where.mkdir()
        configs.append(write_config(where, deployments, daemon=DAEMON.format(workers=workers)))
    return configs


def start(configs: list[Path], daemons: list[Any], url: str, **env: str) -> list[Any]:
    """Start a daemon on each config, the first first (it schedules), all joined."""
    started = []
    for config in configs:
        process = start_daemon(config, config.parent / "home", **env)
        daemons.append(process)
        started.append(process)
        wait_for(
            lambda process=process: any(row["pid"] == process.pid for row in members(url)),
            timeout=60,
            what=f"daemon {process.pid} joined",
        )
    return started


def every(count: int, flow: str = "tick", interval: str = "1s") -> str:
    return "".join(
        f'\n[[deployments]]\nname = "d{i}"\nflow = "flows.py:{flow}"\ninterval = "{interval}"\n'
        for i in range(count)
    )


def assert_each_fire_once(url: str, names: list[str]) -> int:
    """Every deployment's fire times, from its first to its last, each once."""
    rows = query(
        url,
        "SELECT deployment_name, scheduled_for FROM flow_runs WHERE deployment_name IS NOT NULL"
        " AND generation = 1 ORDER BY 1, 2",
    )
    times: dict[str, list[Any]] = collections.defaultdict(list)
    for name, nominal in rows:
        times[name].append(nominal)
    for name in names:
        fires = times[name]
        assert fires, f"{name} never fired"
        assert len(fires) == len(set(fires)), f"{name}: a fire time has two rows"
        gaps = [(a, b) for a, b in itertools.pairwise(fires) if b - a != timedelta(seconds=1)]
        assert not gaps, f"{name}: fire times missing between {gaps[:3]}"
    return len(rows)


def completed_by(url: str, member: str) -> int:
    """How many runs ``member`` ran to Completed."""
    [(count,)] = query(
        url,
        "SELECT count(*) FROM flow_runs WHERE daemon_id = :id AND state_name = 'Completed'",
        id=member,
    )
    return int(count)


def assert_no_run_started_twice(url: str) -> None:
    """No run was claimed twice: one Running state each (no retries are configured)."""
    twice = query(
        url,
        "SELECT flow_run_id, count(*) FROM run_states WHERE type = 'RUNNING'"
        " GROUP BY 1 HAVING count(*) > 1",
    )
    assert not twice, f"runs started twice: {twice[:5]}"


def stop_all(processes: list[Any]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


def test_three_daemons_share_200_deployments_firing_every_second_and_survive_a_sigkill(
    tmp_path: Path, store, daemons: list[Any]
) -> None:
    """The issue's test: 200 deployments every second for 60 s on three daemons: no fire
    missed or decided twice, and each daemon ran a share; then a member killed with
    SIGKILL mid-run has its runs settled by the others within the timeout, none twice."""
    url = store.url
    names = [f"d{i}" for i in range(200)]
    # And a few runs that take a while, so that the member killed is killed mid-run.
    slow = "".join(
        f'\n[[deployments]]\nname = "slow{i}"\nflow = "flows.py:slow"\ninterval = "1s"\n'
        "parameters = { seconds = 2.0 }\n"
        for i in range(6)
    )
    configs = cluster(tmp_path, 3, every(200) + slow, workers=4)
    processes = start(configs, daemons, url)
    first = member_of(url, processes[0].pid)
    assert leader(url) == first
    time.sleep(60)

    shares = dict(
        query(
            url,
            "SELECT daemon_id, count(*) FROM flow_runs WHERE state_name = 'Completed' GROUP BY 1",
        )
    )
    for process in processes:
        assert shares.get(member_of(url, process.pid), 0) > 0, f"shares: {shares}"
    assert sum(shares.values()) > 3000, f"shares: {shares}"

    victim = processes[2]
    victim_id = member_of(url, victim.pid)
    wait_for(
        lambda: query(
            url,
            "SELECT id FROM flow_runs WHERE daemon_id = :id AND state_type = 'RUNNING'"
            " AND deployment_name LIKE 'slow%'",
            id=victim_id,
        ),
        timeout=30,
        what="a slow run going on the member to kill",
    )
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    killed = time.monotonic()
    wait_for(
        lambda: (
            not query(
                url,
                "SELECT id FROM flow_runs WHERE daemon_id = :id"
                " AND state_type IN ('RUNNING', 'PENDING', 'SCHEDULED')",
                id=victim_id,
            )
        ),
        timeout=TIMEOUT + 10,
        what="the killed member's runs settled",
    )
    # Its process is gone and it ran on this host: settled at once, not after the lease.
    assert time.monotonic() - killed < TIMEOUT + 5
    crashed = query(
        url,
        "SELECT state_message FROM flow_runs WHERE daemon_id = :id AND state_name = 'Crashed'",
        id=victim_id,
    )
    assert crashed
    assert all(victim_id in message for (message,) in crashed)
    survivors = [member_of(url, process.pid) for process in processes[:2]]
    done = [completed_by(url, member) for member in survivors]
    wait_for(
        lambda: all(completed_by(url, m) > n for m, n in zip(survivors, done, strict=True)),
        what="both survivors running runs after the kill",
    )
    stop_all(processes[:2])

    assert_each_fire_once(url, names)
    assert_no_run_started_twice(url)
    assert_nothing_held(url)
    assert not query(url, "SELECT id FROM flow_runs WHERE state_name = 'Missed'")


def assert_nothing_held(url: str) -> None:
    """Once every member has stopped: nothing Running, and what waits waits released to the
    next member (or Scheduled for the next scheduler), held by none."""
    held = query(
        url,
        "SELECT state_name, daemon_id, released_at IS NOT NULL FROM flow_runs"
        " WHERE state_type = 'RUNNING' OR (state_type = 'PENDING' AND released_at IS NULL)",
    )
    assert not held, held[:5]


def test_a_killed_scheduler_is_replaced_within_seconds_and_fires_go_on(
    tmp_path: Path, store, daemons: list[Any]
) -> None:
    url = store.url
    configs = cluster(tmp_path, 2, every(5) + every_slow())
    first, second = start(configs, daemons, url)
    second_id = member_of(url, second.pid)
    first_id = member_of(url, first.pid)
    assert leader(url) == first_id
    wait_for(
        lambda: query(url, "SELECT id FROM flow_runs WHERE state_type = 'RUNNING'"),
        what="a run going",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    # The scheduler's connection went with its process: the lease is taken at the next
    # renewal, not after the timeout.
    wait_for(lambda: leader(url) == second_id, timeout=5, what="the second member leading")
    before = completed_by(url, second_id)
    wait_for(lambda: completed_by(url, second_id) >= before + 10, what="fires going on")
    stop_all([second])

    assert_each_fire_once(url, [f"d{i}" for i in range(5)])
    assert_no_run_started_twice(url)
    assert_nothing_held(url)
    output = second.output_path.read_text()
    assert "schedules for the cluster now" in output


def every_slow(name: str = "slowpoke") -> str:
    return f'\n[[deployments]]\nname = "{name}"\nflow = "flows.py:slow"\ninterval = "1s"\n'


def test_a_stopped_scheduler_hands_over_at_once_and_no_fire_is_lost(
    tmp_path: Path, store, daemons: list[Any]
) -> None:
    url = store.url
    configs = cluster(tmp_path, 2, every(5))
    first, second = start(configs, daemons, url)
    second_id = member_of(url, second.pid)
    first_id = member_of(url, first.pid)
    wait_for(lambda: completed_by(url, first_id) >= 5, what="the scheduler running runs")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    wait_for(lambda: leader(url) == second_id, timeout=3, what="the second member leading")
    assert [row["id"] for row in members(url)] == [second_id]
    before = completed_by(url, second_id)
    wait_for(lambda: completed_by(url, second_id) >= before + 10, what="fires going on")
    stop_all([second])
    # Each fire decided once across the handover (one that the handover made later than the
    # catch-up policy allows is decided Missed, as after any downtime: not lost).
    assert_each_fire_once(url, [f"d{i}" for i in range(5)])


def test_a_member_whose_definition_differs_runs_none_of_that_deployments_runs_and_says_so(
    tmp_path: Path, store, daemons: list[Any]
) -> None:
    url = store.url
    configs = cluster(tmp_path, 2, every(6), workers=1)
    # The second host's copy of d1 differs (a config change rolling across the hosts).
    changed = (
        configs[1]
        .read_text()
        .replace(
            'name = "d1"\nflow = "flows.py:tick"',
            'name = "d1"\nflow = "flows.py:tick"\ntags = ["new"]',
        )
    )
    configs[1].write_text(changed)
    first, second = start(configs, daemons, url)
    second_id = member_of(url, second.pid)
    wait_for(lambda: completed_by(url, second_id) >= 3, what="runs on the second member")
    ran = dict(
        query(
            url,
            "SELECT deployment_name, count(*) FROM flow_runs WHERE daemon_id = :id"
            " AND state_name = 'Completed' GROUP BY 1",
            id=second_id,
        )
    )
    assert ran, "the second member ran nothing"
    assert "d1" not in ran
    warned = [
        json.loads(line)
        for line in second.output_path.read_text().splitlines()
        if line.startswith("{") and "definitions_differ" in line
    ]
    assert warned
    assert warned[0]["deployments"] == ["d1"]
    status = gnomon(configs[1].parent / "home", "daemon", "status")
    assert "d1" in status.stdout, status.stdout + status.stderr

    # The change reaches the second host: its reload (SIGHUP) makes it agree, and it runs
    # d1's runs from then on.
    configs[1].write_text(configs[0].read_text())
    second.send_signal(signal.SIGHUP)
    wait_for(
        lambda: query(
            url,
            "SELECT id FROM flow_runs WHERE daemon_id = :id AND deployment_name = 'd1'"
            " AND state_name = 'Completed'",
            id=second_id,
        ),
        timeout=30,
        what="the second member running d1 after its reload",
    )
    stop_all([first, second])


def test_cancelling_a_run_on_another_member_stops_it_there(
    tmp_path: Path, store, daemons: list[Any]
) -> None:
    url = store.url
    # The scheduler's one worker runs one slow run and holds one more: the third goes to
    # the second member.
    slow = every_slow() + every_slow("slowpoke2") + every_slow("slowpoke3")
    configs = cluster(tmp_path, 2, slow, workers=1)
    first, second = start(configs, daemons, url)
    second_id = member_of(url, second.pid)
    [[run_id]] = wait_for(
        lambda: query(
            url,
            "SELECT id FROM flow_runs WHERE daemon_id = :id AND state_type = 'RUNNING'",
            id=second_id,
        ),
        timeout=30,
        what="a slow run on the second member",
    )
    done = gnomon(configs[0].parent / "home", "runs", "cancel", run_id)
    assert done.returncode == 0, done.stderr
    wait_for(
        lambda: (
            query(url, "SELECT state_name FROM flow_runs WHERE id = :id", id=run_id)
            == [("Cancelled",)]
        ),
        timeout=10,
        what="the run cancelled on the second member",
    )
    stop_all([first, second])


def test_the_api_and_the_dashboard_list_the_daemons_and_what_one_disagrees_on(
    tmp_path: Path,
    api: Api,  # noqa: F811
    page: Any,  # noqa: F811
    daemons: list[Any],
) -> None:
    url = api.store.url
    configs = cluster(tmp_path, 2, every(2), workers=1)
    second_config = configs[1].read_text()
    configs[1].write_text(second_config.replace('"1s"', '"1s"\ntags = ["new"]', 1))
    first, second = start(configs, daemons, url)
    with api.admin as client:
        listed = wait_for(
            lambda: [row for row in client.get("/api/v1/daemons").json() if row["differing"]],
            what="the second member's difference listed",
        )
        everyone = client.get("/api/v1/daemons").json()
    assert [row["pid"] for row in everyone] == [first.pid, second.pid]
    assert [row["scheduler"] for row in everyone] == [True, False]
    assert listed[0]["pid"] == second.pid
    assert listed[0]["differing"] == ["d0"]
    assert all(row["version"] for row in everyone)
    assert all(row["heartbeat_age"] < TIMEOUT for row in everyone)

    log_in(page, api, api.token, "/")
    table = page.locator("table.members")
    expect(table).to_contain_text("scheduler")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text("d0")
    stop_all([first, second])


CACHED_FLOWS = """
import os, time
from gnomon import flow, task
from gnomon.cache_policies import INPUTS

@task(cache_policy=INPUTS, persist_result=True)
def expensive(x):
    with open(os.environ["LEDGER"], "a") as ledger:
        ledger.write(os.environ["GNOMON_HOME"] + "\\n")
    return x * 2

@flow
def cached():
    return expensive(21)

@flow
def slow(seconds: float = 30.0):
    time.sleep(seconds)
"""


def test_a_task_cached_by_a_run_on_one_daemon_is_a_hit_for_runs_on_the_other(
    tmp_path: Path, store, daemons: list[Any]
) -> None:
    """The hosts share the result storage and the key (as an NFS mount and a copied key
    file would): the task's body runs once, whichever daemon runs the flow. The first
    daemon runs the flow while it schedules; stopped, it hands over to the second, whose
    runs find the task cached."""
    url = store.url
    shared, ledger = tmp_path / "shared-results", tmp_path / "ledger"
    deployment = '\n[[deployments]]\nname = "cached"\nflow = "flows.py:cached"\ninterval = "1s"\n'
    configs = cluster(tmp_path, 2, deployment, workers=1)
    for config in configs:
        (config.parent / "flows.py").write_text(CACHED_FLOWS)
    env = {
        "GNOMON_RESULTS_STORAGE": str(shared),
        "GNOMON_RESULTS_KEY": bytes(range(32)).hex(),
        "LEDGER": str(ledger),
    }
    first, second = start(configs, daemons, url, **env)
    first_id, second_id = member_of(url, first.pid), member_of(url, second.pid)

    def completed_on(member: str) -> list[Any]:
        return query(
            url,
            "SELECT id FROM flow_runs WHERE deployment_name = 'cached'"
            " AND state_name = 'Completed' AND daemon_id = :id",
            id=member,
        )

    wait_for(lambda: completed_on(first_id), timeout=30, what="a run on the first daemon")
    stop_all([first])
    wait_for(lambda: completed_on(second_id), timeout=30, what="a run on the second daemon")
    stop_all([second])

    assert ledger.read_text().splitlines() == [str(configs[0].parent / "home")]
    [(hits,)] = query(
        url,
        "SELECT count(*) FROM task_runs t JOIN flow_runs f ON f.id = t.flow_run_id"
        " WHERE f.daemon_id = :id AND t.state_name = 'Cached'",
        id=second_id,
    )
    assert hits >= 1


NEWER_MIGRATION = '''"""A later release's additive migration (made by the rolling-upgrade test)."""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("flow_runs", sa.Column("rolling_note", sa.Text()))


def downgrade() -> None:
    op.drop_column("flow_runs", "rolling_note")
'''


def newer_release(where: Path) -> tuple[Path, str]:
    """A copy of gnomon as the next release would be: version 9.9.9, and one more
    migration, additive as the rule wants. Returns its source directory and revision."""
    from gnomon.store import HEAD_REVISION

    source = where / "src"
    shutil.copytree(
        REPO / "src" / "gnomon", source / "gnomon", ignore=shutil.ignore_patterns("__pycache__")
    )
    revision = f"{int(HEAD_REVISION) + 1:04d}"
    versions = source / "gnomon" / "store" / "migrations" / "versions"
    (versions / f"{revision}_rolling.py").write_text(
        NEWER_MIGRATION.format(revision=revision, down=HEAD_REVISION)
    )
    (source / "gnomon" / "store" / "_revision.py").write_text(f'HEAD_REVISION = "{revision}"\n')
    (source / "gnomon" / "_version.py").write_text('__version__ = "9.9.9"\n')
    return source, revision


def test_a_rolling_upgrade_runs_the_old_and_the_new_release_side_by_side(
    tmp_path: Path, store, daemons: list[Any]
) -> None:
    """Host 1 runs this release; host 2 is upgraded to the next, whose start migrates the
    database (an added column): both go on sharing the work, each fire once, and the old
    release started again refuses the newer schema in one line naming both revisions."""
    url = store.url
    configs = cluster(tmp_path, 2, every(5), workers=1)
    [old] = start(configs[:1], daemons, url)
    source, revision = newer_release(tmp_path / "next-release")
    new = start_daemon(configs[1], configs[1].parent / "home")
    new.kill()  # started with this release's code: start it again with the next one's
    new.wait(timeout=10)
    env = {
        **os.environ,
        "GNOMON_HOME": str(configs[1].parent / "home"),
        "GNOMON_LOG_FORMAT": "json",
    }
    env["PYTHONPATH"] = str(source)
    output = configs[1].parent / "next.out"
    with output.open("w") as stream:
        newer = subprocess.Popen(
            [sys.executable, "-m", "gnomon.cli", "daemon", "--config", str(configs[1])],
            stdout=stream,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=configs[1].parent,
        )
    daemons.append(newer)
    wait_for(
        lambda: {row["version"] for row in versions(url)} == {"0.1.0", "9.9.9"},
        timeout=60,
        what="both releases members",
    )
    [[stored]] = query(url, "SELECT version_num FROM alembic_version")
    assert stored == revision
    old_id, newer_id = member_of(url, old.pid), member_of(url, newer.pid)
    start_old, start_newer = completed_by(url, old_id), completed_by(url, newer_id)
    wait_for(
        lambda: completed_by(url, old_id) > start_old and completed_by(url, newer_id) > start_newer,
        what="both releases running runs after the migration",
    )

    again = start_daemon(configs[0], tmp_path / "old-again")
    daemons.append(again)
    assert again.wait(timeout=60) == 1
    refusal = again.error_path.read_text()
    assert revision in refusal, refusal
    assert "Traceback" not in refusal
    stop_all([old, newer])
    assert_each_fire_once(url, [f"d{i}" for i in range(5)])
    assert_no_run_started_twice(url)


def versions(url: str) -> list[dict[str, Any]]:
    with Connected(url) as connection:
        return [
            dict(row)
            for row in connection.execute(text("SELECT id, version FROM daemons")).mappings()
        ]


def test_apply_from_a_host_with_no_daemon_asks_the_cluster_to_reload(
    tmp_path: Path, store, daemons: list[Any]
) -> None:
    """No daemon on this host, but daemons on the database: apply does not write the
    deployments past them (they would flip-flop); it asks them to reload their configs."""
    url = store.url
    configs = cluster(tmp_path, 2, every(1), workers=1)
    first, second = start(configs, daemons, url)
    added = '\n[[deployments]]\nname = "d2"\nflow = "flows.py:tick"\ninterval = "1s"\n'
    configs[0].write_text(configs[0].read_text() + added)
    done = gnomon(tmp_path / "elsewhere", "deployments", "apply", "--config", str(configs[0]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "asking them to reload" in done.stdout
    assert store.read_deployment("d2") is not None
    stop_all([first, second])


def test_a_run_of_a_killed_member_is_run_again_where_retries_remain(
    tmp_path: Path, store, daemons: list[Any]
) -> None:
    """A deployment with retries: its run on a member killed mid-run is Crashed by the
    scheduler and run again (the same run, its next attempt) by the member left."""
    url = store.url
    retried = (
        '\n[[deployments]]\nname = "retried"\nflow = "flows.py:slow"\ncron = "0 0 1 1 *"\n'
        "retries = 1\nparameters = { seconds = 3.0 }\n"
    )
    # The scheduler's one worker is kept busy: the run asked for goes to a member.
    configs = cluster(tmp_path, 3, retried + every_slow(), workers=1)
    processes = start(configs, daemons, url)
    wait_for(
        lambda: query(
            url,
            "SELECT id FROM flow_runs WHERE deployment_name = 'slowpoke'"
            " AND state_type = 'RUNNING' AND daemon_id = :id",
            id=member_of(url, processes[0].pid),
        ),
        what="the scheduler's worker busy",
    )
    done = gnomon(configs[0].parent / "home", "run", "retried")
    assert done.returncode == 0, done.stderr
    [(run_id, holder)] = wait_for(
        lambda: query(
            url,
            "SELECT id, daemon_id FROM flow_runs WHERE deployment_name = 'retried'"
            " AND state_type = 'RUNNING'",
        ),
        timeout=30,
        what="the retried deployment's run on a member",
    )
    [victim] = [process for process in processes[1:] if member_of(url, process.pid) == holder]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    wait_for(
        lambda: (
            query(url, "SELECT state_name FROM flow_runs WHERE id = :id", id=run_id)
            == [("Completed",)]
        ),
        timeout=60,
        what="the run run again and completed",
    )
    states = [
        name
        for (name,) in query(
            url,
            "SELECT name FROM run_states WHERE flow_run_id = :id ORDER BY timestamp",
            id=run_id,
        )
    ]
    assert "Crashed" in states
    assert states[-1] == "Completed"
    stop_all([process for process in processes if process is not victim])


def test_a_killed_daemon_left_a_zombie_counts_as_gone() -> None:
    # Under an init that reaps orphans late (many containers, this machine), a daemon
    # killed on this host stays a zombie: its runs must not wait for its lease meanwhile.
    from gnomon.daemon._members import _process_exists

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _process_exists(child.pid)
        child.kill()
        wait_for(
            lambda: Path(f"/proc/{child.pid}/stat").read_text().split(")")[-1].split()[0] == "Z",
            timeout=10,
            what="the killed child to be a zombie",
        )
        assert not _process_exists(child.pid)
    finally:
        child.wait()
    assert not _process_exists(child.pid)
