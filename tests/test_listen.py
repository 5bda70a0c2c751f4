"""Operator changes reach every daemon on a PostgreSQL database at once, without a signal:
each change's transaction notifies (NOTIFY) and each daemon listens (LISTEN).

The store tests listen on a connection of their own and check what each control operation
notifies. The daemon tests start a real daemon whose timed poll is put off by an hour (a
hook in its ``sitecustomize``: the daemon carries no test seam) and make changes from a
state directory of their own, where no lock file leads to the daemon, so no signal reaches
it: only a notification can explain that it acts on them. The last tests run the
listener alone: its session ends with it, and an unreachable server is logged once.
"""

from __future__ import annotations

import contextlib
import logging
import textwrap
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
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
def listening(url: str) -> Iterator[Callable[[], AbstractContextManager[list[str]]]]:
    """A LISTEN on the daemons' channel; yields ``told``: ``with told() as payloads:``
    fills ``payloads`` with what the block notified, in order. A mark is notified after
    the block, and the notifications of transactions arrive in the order they committed,
    so the mark ends the block's."""
    with (
        psycopg.connect(libpq_url(url), autocommit=True) as listener,
        psycopg.connect(libpq_url(url), autocommit=True) as marker,
    ):
        listener.execute("LISTEN gnomon")

        @contextlib.contextmanager
        def told() -> Iterator[list[str]]:
            payloads: list[str] = []
            yield payloads
            marker.execute("SELECT pg_notify('gnomon', %s)", [MARK])
            for notification in listener.notifies(timeout=10):
                if notification.payload == MARK:
                    return
                payloads.append(notification.payload)
            raise AssertionError(f"the mark never came; heard {payloads}")

        yield told


DEPLOYMENTS = """
[[deployments]]
name = "d0"
flow = "flows.py:tick"
interval = "1h"
tags = ["nightly"]
"""


def test_every_change_to_deployments_notifies_the_daemons_in_its_transaction(
    store: Any, tmp_path: Path
) -> None:
    config = write_config(tmp_path, DEPLOYMENTS)
    ops = Operations(store, OPERATOR)  # no signal: ``nudge`` does nothing
    with listening(store.url) as told:
        with told() as apply:
            ops.apply(config)
        with told() as pause:
            ops.pause(["d0"], "INC-1")
        with told() as pause_again:
            ops.pause(["d0"], "again")
        with told() as resume:
            ops.resume(["d0"])
        assert (apply, pause, pause_again, resume) == (["reload"], ["poll"], [], ["poll"])

        fast = open_fast(store.url)  # the command line's path, on the bare driver
        assert fast is not None
        try:
            with told() as fast_pause:
                FastOperations(fast, OPERATOR).pause(["d0"])
            with told() as fast_resume:
                FastOperations(fast, OPERATOR).resume(["d0"])
        finally:
            fast.close()
        assert (fast_pause, fast_resume) == (["poll"], ["poll"])


def test_every_change_to_runs_windows_backfills_and_limits_notifies_the_daemons(
    store: Any, tmp_path: Path
) -> None:
    ops = Operations(store, OPERATOR)  # no signal: ``nudge`` does nothing
    ops.apply(write_config(tmp_path, DEPLOYMENTS))
    with listening(store.url) as told:
        with told() as trigger:
            run = ops.trigger("d0")
        with told() as cancel:
            ops.cancel(run["id"], "not now")
        with told() as retry:
            ops.retry(run["id"])
        assert (trigger, cancel, retry) == (["poll"], ["poll"], ["poll"])

        with told() as limit:
            ops.set_limit("nightly", 2)
        with told() as no_limit:
            ops.remove_limit("nightly")
        assert (limit, no_limit) == (["poll"], ["poll"])

        now = datetime.now(UTC)
        with told() as window:
            added = add_window(ops, now, now + timedelta(hours=1))
        with told() as no_window:
            remove_window(ops, added.id)
        assert (window, no_window) == (["poll"], ["poll"])

        backfills = BackfillOperations(ops)
        plan = backfills.plan("d0", (now - timedelta(hours=3)).isoformat(), now.isoformat(), now)
        with told() as backfill:
            started = backfills.start(plan)
        with told() as no_backfill:
            backfills.cancel(started.id)  # and each of its runs: a poll each
        assert backfill == ["poll"]
        assert set(no_backfill) == {"poll"}

        with told():  # (its trigger's notification, not the resume's)
            suspended = ops.trigger("d0")["id"]
        assert store.claim_flow_run(suspended, worker_pid=4242) is not None
        store.open_pause(
            suspended,
            "1",
            suspend=True,  # its worker lets it go: the daemon runs it again once resumed
            timeout_at=None,
            input_schema=None,
            description=None,
            message="suspended",
        )
        with told() as resume_run:
            ops.resume_run(suspended)
        assert resume_run == ["poll"]

        with told() as reload, pytest.raises(ReloadNotAnswered):  # no daemon to answer
            ops.reload(None, timeout=0)
        assert reload == ["reload"]


def test_an_operation_that_changes_nothing_notifies_no_daemon(store: Any, tmp_path: Path) -> None:
    ops = Operations(store, OPERATOR)
    ops.apply(write_config(tmp_path, DEPLOYMENTS))
    run = ops.trigger("d0")
    with listening(store.url) as told:
        with told() as resume:
            ops.resume(["d0"])  # not paused
        with told() as retry, pytest.raises(Conflict):
            ops.retry(run["id"])  # it has not finished
        with told() as cancel:
            ops.cancel(run["id"])
        with told() as cancel_again, pytest.raises(Conflict):
            ops.cancel(run["id"])  # it has finished
    assert (resume, retry, cancel, cancel_again) == ([], [], ["poll"], [])


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


# The listener alone, in this process: a private module (``gnomon.daemon._listen``), reached
# because what is checked here (its session's end, its retries) happens under the daemon
# too, where no log line or store row shows it as directly.


def test_a_stopped_listener_ends_its_session_and_its_thread(store: Any) -> None:
    from gnomon.daemon._listen import listen_for_changes

    nudges: list[str] = []
    listener = listen_for_changes(store.url, nudges.append)
    assert listener is not None
    wait_for(lambda: listener_sessions(store.url), what="the listener's session")
    wait_for(lambda: nudges == ["poll"], what="the poll a new session starts with")
    with psycopg.connect(libpq_url(store.url), autocommit=True) as connection:
        connection.execute("SELECT pg_notify('gnomon', 'reload')")
    wait_for(lambda: nudges == ["poll", "reload"], what="the notification handed on")

    listener.stop()

    assert not listener._thread.is_alive()
    wait_for(lambda: not listener_sessions(store.url), what="the session to end")


def retries(caplog: pytest.LogCaptureFixture) -> int:
    """The listener's attempts after its first failed (each logged at DEBUG only)."""
    return sum(getattr(record, "event_kind", None) == "listener_retry" for record in caplog.records)


def test_a_listener_that_cannot_reach_the_server_says_so_once_and_keeps_trying(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from gnomon.daemon._listen import Listener

    # A port nothing listens on: each attempt is refused at once.
    unreachable = make_url(store.url).set(port=1).render_as_string(hide_password=False)
    listener = Listener(unreachable, lambda _kind: None)
    with caplog.at_level(logging.DEBUG, logger="gnomon.daemon"):
        listener.start()
        wait_for(lambda: retries(caplog) >= 2, timeout=15, what="three attempts")
        listener.stop()
    assert not listener._thread.is_alive()
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1, [record.getMessage() for record in warnings]
    assert "not hearing changes made on other hosts" in warnings[0].getMessage()
