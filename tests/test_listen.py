"""Operator changes reach every daemon on a PostgreSQL database at once, without a signal:
each change's transaction notifies (NOTIFY) and each daemon listens (LISTEN).

The store tests listen on a connection of their own and check what each control operation
notifies. The daemon tests start a real daemon whose timed poll is put off by an hour (a
hook in its ``sitecustomize``: the daemon carries no test seam) and make changes from a
state directory of their own, where no lock file leads to the daemon, so no signal reaches
it: only a notification can explain that it acts on them.
"""

from __future__ import annotations

import contextlib
import textwrap
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from gnomon.control import (
    BackfillOperations,
    Conflict,
    FastOperations,
    Operations,
    ReloadNotAnswered,
    add_window,
    remove_window,
)
from gnomon.store import Actor, open_fast
from test_cli_daemon import gnomon
from test_daemon import start_daemon, wait_for, write_config
from test_faults_daemon import api_url, events, hook_dir, stop, wait_ready

pytestmark = [pytest.mark.backends, pytest.mark.postgresql_only]

OPERATOR = Actor("alice", "cli")
MARK = "end-of-test-change"  # a payload no change sends: what came before it is the change's


def libpq_url(url: str) -> str:
    """``url`` as psycopg takes it (without SQLAlchemy's ``+psycopg``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def listening(url: str) -> Iterator[Callable[[Callable[[], Any]], list[str]]]:
    """A LISTEN on the daemons' channel; yields ``heard(change)``: the payloads that
    ``change`` notified, in order. A mark is notified after it, and the notifications of
    transactions come in the order they committed, so the mark ends the change's."""
    with (
        psycopg.connect(libpq_url(url), autocommit=True) as listener,
        psycopg.connect(libpq_url(url), autocommit=True) as marker,
    ):
        listener.execute("LISTEN gnomon")

        def heard(change: Callable[[], Any]) -> list[str]:
            change()
            marker.execute("SELECT pg_notify('gnomon', %s)", [MARK])
            payloads = []
            for notification in listener.notifies(timeout=10):
                if notification.payload == MARK:
                    return payloads
                payloads.append(notification.payload)
            raise AssertionError(f"the mark never came; heard {payloads}")

        yield heard


DEPLOYMENTS = """
[[deployments]]
name = "d0"
flow = "flows.py:tick"
interval = "1h"
tags = ["nightly"]
"""


def test_every_change_daemons_act_on_notifies_them_in_its_transaction(
    store: Any, tmp_path: Path
) -> None:
    config = write_config(tmp_path, DEPLOYMENTS)
    ops = Operations(store, OPERATOR)  # no signal: ``nudge`` does nothing
    with listening(store.url) as heard:
        assert heard(lambda: ops.apply(config)) == ["reload"]  # daemons reload their files
        assert heard(lambda: ops.pause(["d0"], "INC-1")) == ["poll"]
        assert heard(lambda: ops.pause(["d0"], "again")) == []  # changed nothing
        assert heard(lambda: ops.resume(["d0"])) == ["poll"]
        fast = open_fast(store.url)  # the command line's path, on the bare driver
        assert fast is not None
        try:
            assert heard(lambda: FastOperations(fast, OPERATOR).pause(["d0"])) == ["poll"]
            assert heard(lambda: FastOperations(fast, OPERATOR).resume(["d0"])) == ["poll"]
        finally:
            fast.close()

        runs: list[Any] = []
        assert heard(lambda: runs.append(ops.trigger("d0"))) == ["poll"]
        run = runs[0]
        assert heard(lambda: ops.cancel(run["id"], "not now")) == ["poll"]
        assert heard(lambda: ops.retry(run["id"])) == ["poll"]

        assert heard(lambda: ops.set_limit("nightly", 2)) == ["poll"]
        assert heard(lambda: ops.remove_limit("nightly")) == ["poll"]

        now = datetime.now(UTC)
        windows: list[Any] = []
        window = lambda: windows.append(add_window(ops, now, now + timedelta(hours=1)))  # noqa: E731
        assert heard(window) == ["poll"]
        assert heard(lambda: remove_window(ops, windows[0].id)) == ["poll"]

        backfills = BackfillOperations(ops)
        plan = backfills.plan("d0", (now - timedelta(hours=3)).isoformat(), now.isoformat(), now)
        started: list[Any] = []
        assert heard(lambda: started.append(backfills.start(plan))) == ["poll"]
        assert set(heard(lambda: backfills.cancel(started[0].id))) == {"poll"}

        def ask_for_a_reload() -> None:
            with pytest.raises(ReloadNotAnswered):  # no daemon runs to answer it
                ops.reload(None, timeout=0)

        assert heard(ask_for_a_reload) == ["reload"]


def test_an_operation_that_changes_nothing_notifies_no_daemon(store: Any, tmp_path: Path) -> None:
    ops = Operations(store, OPERATOR)
    ops.apply(write_config(tmp_path, DEPLOYMENTS))
    run = ops.trigger("d0")
    with listening(store.url) as heard:
        assert heard(lambda: ops.resume(["d0"])) == []  # not paused
        with pytest.raises(Conflict):
            heard(lambda: ops.retry(run["id"]))  # it has not finished
        assert heard(lambda: ops.cancel(run["id"])) == ["poll"]
        with pytest.raises(Conflict):
            heard(lambda: ops.cancel(run["id"]))  # it has finished
        assert heard(lambda: None) == []  # neither notified


# A real daemon, its timed poll an hour away.

POLL_HOURLY_HOOK = textwrap.dedent(
    """
    from gnomon.daemon import _cadence

    _done = _cadence.PollTimer.done

    def done(self, now):
        _done(self, now)
        self.next_timed = now + 3600.0  # the timed poll an hour away; asked-for ones run

    _cadence.PollTimer.done = done
    """
)


def daemon_polling_hourly(tmp_path: Path, home: Path, daemons: list[Any]) -> tuple[Any, str]:
    """A daemon serving DEPLOYMENTS (and its API, open on loopback) that is ready, whose
    timed poll of the store comes every hour instead of every second: (it, its API URL)."""
    config = write_config(
        tmp_path, DEPLOYMENTS, daemon='workers = 1\napi = "127.0.0.1:0"\napi_auth = false'
    )
    hooks = hook_dir(tmp_path, POLL_HOURLY_HOOK)
    daemon = start_daemon(config, home, output_dir=tmp_path, PYTHONPATH=str(hooks))
    daemons.append(daemon)
    url = api_url(daemon)
    wait_ready(daemon)
    return daemon, url


def paused_in_daemon(api: str) -> int:
    """How many deployments the daemon itself holds paused (its metrics, read from its
    scheduler: not the store's flag)."""
    metrics = httpx.get(f"{api}/metrics", timeout=5).text
    for line in metrics.splitlines():
        if line.startswith('gnomon_deployments{state="paused"}'):
            return int(float(line.split()[-1]))
    raise AssertionError(f"no paused count in the daemon's metrics:\n{metrics}")


def elsewhere(tmp_path: Path) -> Path:
    """The state directory of another host's command line: no lock file there leads to
    the daemon, so its commands signal nothing (the database is the same one)."""
    return tmp_path / f"elsewhere-{uuid.uuid4().hex[:6]}"


@pytest.mark.slow
def test_a_pause_and_a_resume_from_another_host_reach_the_daemon_without_a_signal(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any], store: Any
) -> None:
    daemon, api = daemon_polling_hourly(tmp_path, gnomon_home, daemons)
    other = elsewhere(tmp_path)
    assert paused_in_daemon(api) == 0

    paused = gnomon(other, "pause", "d0", "--reason", "INC-7")
    assert paused.returncode == 0, paused.stderr
    wait_for(lambda: paused_in_daemon(api) == 1, timeout=10, what="the daemon to pause d0")
    resumed = gnomon(other, "resume", "d0")
    assert resumed.returncode == 0, resumed.stderr
    wait_for(lambda: paused_in_daemon(api) == 0, timeout=10, what="the daemon to resume d0")
    stop(daemon)


@pytest.mark.slow
def test_a_reload_asked_for_on_another_host_is_answered_by_the_daemon(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any], store: Any
) -> None:
    daemon, _ = daemon_polling_hourly(tmp_path, gnomon_home, daemons)
    config = tmp_path / "gnomon.toml"
    config.write_text(config.read_text() + DEPLOYMENTS.replace('"d0"', '"d1"'))

    # What `gnomon daemon reload` and the API do, with no daemon to signal.
    outcome = Operations(store, OPERATOR).reload(None, timeout=15)

    assert outcome.status == "applied", outcome.detail
    assert outcome.detail["added"] == ["d1"]
    assert store.read_deployment("d1").active
    stop(daemon)


def listener_sessions(url: str) -> list[int]:
    """The backend pids of the daemons' listening sessions on the database at ``url``."""
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE 'gnomon daemon listener %'"
        ).fetchall()
    return [pid for (pid,) in rows]


@pytest.mark.slow
def test_the_listener_listens_again_after_the_server_ends_its_session(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any], store: Any
) -> None:
    daemon, api = daemon_polling_hourly(tmp_path, gnomon_home, daemons)
    [first] = wait_for(lambda: listener_sessions(store.url), what="the listener's session")
    with psycopg.connect(libpq_url(store.url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [first])
    wait_for(
        lambda: listener_sessions(store.url) not in ([], [first]),
        timeout=15,
        what="a new listening session",
    )

    paused = gnomon(elsewhere(tmp_path), "pause", "d0")
    assert paused.returncode == 0, paused.stderr
    wait_for(lambda: paused_in_daemon(api) == 1, timeout=10, what="the daemon to pause d0")
    lines = events(stop(daemon))
    kinds = [line.get("event_kind") for line in lines]
    assert kinds.count("listener_lost") == 1  # once for the outage, not per attempt
    assert kinds.count("listener_back") == 1
    [lost] = [line for line in lines if line.get("event_kind") == "listener_lost"]
    assert lost["level"] == "warning"
    assert "connection" in lost["event"]  # why, in libpq's or psycopg's words
