"""The PostgreSQL store failing under a real daemon: another program holding a lock, the
server dropping every connection. The daemon rides both out, as it rides out a locked
SQLite file (test_faults_daemon.py), and decides every fire once."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from faults import assert_every_fire_once, assert_store_sound, location
from gnomon.daemon._serverlock import DAEMON_LOCK_KEY
from gnomon.flows import _flow_engine
from test_cli_daemon import gnomon
from test_daemon import wait_for
from test_faults_daemon import SECOND, events, healthz, serving, stop, tickers

pytestmark = [pytest.mark.backends, pytest.mark.postgresql_only, pytest.mark.slow]


def run_count(url: str) -> int:
    with admin(url) as connection:
        return int(connection.execute(text("SELECT count(*) FROM flow_runs")).scalar_one())


@contextlib.contextmanager
def admin(url: str) -> Iterator[Any]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def test_a_table_locked_by_another_program_degrades_the_daemon_which_then_catches_up(
    tmp_path, gnomon_home, daemons, store
) -> None:
    daemon, api, _ = serving(tmp_path, gnomon_home, daemons, tickers(3))
    url = store.url

    with admin(url) as locker:
        locker.execute(text("LOCK TABLE flow_runs IN ACCESS EXCLUSIVE MODE"))
        wait_for(lambda: healthz(api)[1]["status"] == "degraded", timeout=15, what="degraded")
        time.sleep(5)  # several of its store attempts time out meanwhile
        assert daemon.poll() is None
        code, body = healthz(api)
        assert code == 200, body  # riding it out, not stuck
        locker.rollback()
    wait_for(lambda: healthz(api)[1]["status"] == "ok", timeout=20, what="ok again")
    after = run_count(url)
    wait_for(lambda: run_count(url) >= after + 6, what="fires after the lock")

    lines = events(stop(daemon))
    assert any("lock timeout" in e["event"] for e in lines if e.get("level") == "error")
    assert any("the store works again" in e["event"] for e in lines)
    for name in ("d0", "d1", "d2"):
        assert_every_fire_once(location(store), name, SECOND)
    assert_store_sound(location(store))


def test_connections_dropped_by_the_server_are_replaced_and_no_fire_is_lost(
    tmp_path, gnomon_home, daemons, store
) -> None:
    daemon, api, _ = serving(tmp_path, gnomon_home, daemons, tickers(2))
    url = store.url

    for _ in range(3):  # what a server restart or a failover does to every session
        before = run_count(url)
        with admin(url) as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        assert killed > 0
        wait_for(
            lambda before=before: run_count(url) >= before + 4,
            what="fires after the connections died",
        )
    assert daemon.poll() is None
    assert healthz(api)[1]["status"] == "ok"

    stop(daemon)
    for name in ("d0", "d1"):
        assert_every_fire_once(location(store), name, SECOND)
    assert_store_sound(location(store))


def lock_holders(url: str) -> int:
    with admin(url) as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND objid = :low AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ),
                {"low": DAEMON_LOCK_KEY & 0xFFFFFFFF},
            ).scalar_one()
        )


def test_a_daemon_takes_its_database_lock_again_after_the_server_ends_its_session(
    tmp_path, gnomon_home, daemons, store
) -> None:
    daemon, _, _ = serving(tmp_path, gnomon_home, daemons, tickers(1))
    url = store.url
    assert lock_holders(url) == 1
    with admin(url) as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name LIKE 'gnomon daemon %'"
            )
        )
    wait_for(lambda: lock_holders(url) == 1, timeout=15, what="the lock held again")

    # Held again, shared: a daemon of a version before clusters (which takes it
    # exclusively) is refused, as before the session was ended.
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as old_daemon:
            taken = old_daemon.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": DAEMON_LOCK_KEY}
            ).scalar_one()
            old_daemon.commit()
    finally:
        engine.dispose()
    assert not taken
    assert daemon.poll() is None
    stop(daemon)


def test_a_daemon_whose_lock_another_took_while_its_session_was_gone_stops(
    tmp_path, gnomon_home, daemons, store
) -> None:
    daemon, _, _ = serving(tmp_path, gnomon_home, daemons, tickers(1))
    url = store.url
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as intruder:
            for _ in range(20):  # the daemon may take it back first (it checks every 2 s)
                intruder.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname"
                        " = current_database() AND application_name LIKE 'gnomon daemon %'"
                    )
                )
                taken = intruder.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": DAEMON_LOCK_KEY}
                ).scalar_one()
                intruder.commit()
                if taken:
                    break
            assert taken
            assert daemon.wait(timeout=30) == 0  # it stopped, as on SIGTERM
    finally:
        engine.dispose()
    lines = events(daemon.output_path.read_text())
    [lost] = [e for e in lines if e.get("level") == "critical"]
    assert "lock was lost and taken over" in lost["event"]


@pytest.mark.parametrize("timeout", [None, "5s"])
def test_a_run_that_ends_while_the_database_refuses_connections_keeps_its_final_state(
    tmp_path, gnomon_home, daemons, store, timeout: str | None
) -> None:
    """What a server that is down does to every new connection: the run's Completed state
    (written by its worker as it ends) and the log lines wait, retried, and are written
    once connections work again, never dropped as rows the database rejected. A run whose
    code finished is not timed out while its worker waits (its timeout, 5 s, passes during
    the outage): the worker told the pool it is storing its final state."""
    slow = '\n[[deployments]]\nname = "slow"\nflow = "flows.py:slow"\ninterval = "1h"\n'
    if timeout is not None:
        slow += f'timeout = "{timeout}"\n'
    daemon, _, _ = serving(tmp_path, gnomon_home, daemons, tickers(1) + slow)
    url = store.url
    result = gnomon(gnomon_home, "run", "slow", "--param", "seconds=3", GNOMON_DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    run_id = re.search(r"run ([0-9a-f]{32})", result.stdout).group(1)  # type: ignore[union-attr]
    wait_for(lambda: state_of(url, run_id) == "Running", what="the run to start")

    with refusing_connections(url):
        time.sleep(6)  # the run ends (after 3 s) and its worker's writes are refused

    wait_for(lambda: state_of(url, run_id) != "Running", timeout=30, what="its final state")
    lines = events(stop(daemon))
    assert state_of(url, run_id) == "Completed"
    assert not [e for e in lines if "dropped a" in e["event"]], "rows were dropped"
    if timeout is not None:
        # Each wait is logged: on a loaded machine the outage can span more than one.
        storing = [e for e in lines if "waits for the store to take that" in e["event"]]
        assert storing
        assert all(run_id in each["event"] for each in storing)
    with admin(url) as connection:
        history = connection.execute(
            text("SELECT name FROM run_states WHERE flow_run_id = :id ORDER BY timestamp"),
            {"id": run_id},
        ).scalars()
        assert list(history) == ["Scheduled", "Pending", "Running", "Completed"]
    assert_every_fire_once(location(store), "d0", SECOND)
    assert_store_sound(location(store))


def state_of(url: str, run_id: str) -> str | None:
    with admin(url) as connection:
        return connection.execute(
            text("SELECT state_name FROM flow_runs WHERE id = :id"), {"id": run_id}
        ).scalar_one_or_none()


def end_sessions(connection: Any, database: str) -> None:
    """Terminate every session on ``database`` but ``connection``'s, and commit."""
    connection.execute(
        text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = :name AND pid <> pg_backend_pid()"
        ),
        {"name": database},
    )
    connection.commit()


@contextlib.contextmanager
def refusing_connections(url: str) -> Iterator[None]:
    """The database at ``url`` refuses new connections and loses its sessions, as when its
    server is down, until the block ends."""
    database = make_url(url).database
    server = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    with admin(server) as connection:
        connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
        end_sessions(connection, database)
        try:
            yield
        finally:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
            connection.commit()


@pytest.mark.parametrize(("outage", "stored"), [(1.0, True), (4.0, False)])
def test_a_flow_in_a_script_waits_for_its_final_state_up_to_the_patience_setting(
    store, monkeypatch: pytest.MonkeyPatch, outage: float, stored: bool
) -> None:
    from gnomon import flow
    from gnomon._settings import reset_settings
    from gnomon.store import StoreWriteError

    monkeypatch.setenv("GNOMON_FINAL_STATE_PATIENCE", "2.5")
    reset_settings()
    begun = threading.Event()

    def outage_now() -> None:
        with refusing_connections(store.url):
            begun.set()
            time.sleep(outage)

    outage_thread = threading.Thread(target=outage_now)
    told: list[tuple[str, bool]] = []
    monkeypatch.setattr(_flow_engine, "_final_state_waits", [])
    _flow_engine.on_final_state_wait(lambda _id, state, waiting: told.append((state.name, waiting)))

    @flow
    def ends_in_an_outage() -> str:
        outage_thread.start()
        begun.wait(10)
        return "done"

    if stored:
        assert ends_in_an_outage() == "done"
    else:
        with pytest.raises(StoreWriteError):
            ends_in_an_outage()
    # A daemon's worker hears both: the pool holds the run's timeout only meanwhile.
    assert told == [("Completed", True), ("Completed", False)]
    outage_thread.join()
    store.flush(timeout=30)  # connections work again: the queued rows are written
    with admin(store.url) as connection:
        (state,) = connection.execute(
            text("SELECT state_name FROM flow_runs WHERE flow_name = 'ends-in-an-outage'")
        ).scalars()
    assert state == "Completed"


def test_a_flow_ending_while_its_database_is_read_only_keeps_its_final_state(
    store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failover's demoted primary answers every write with read_only_sql_transaction (an
    InternalError, not an OperationalError): the rows wait, as for a server that is down."""
    from gnomon import flow
    from gnomon._settings import reset_settings

    monkeypatch.setenv("GNOMON_FINAL_STATE_PATIENCE", "20")
    reset_settings()
    database = make_url(store.url).database
    server = make_url(store.url).set(database="postgres").render_as_string(hide_password=False)

    def read_only(on: bool) -> None:
        with admin(server) as connection:
            value = "on" if on else "off"
            connection.execute(
                text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = {value}')
            )
            end_sessions(connection, database)

    writable_again = threading.Timer(2.0, read_only, (False,))

    @flow
    def ends_on_a_read_only_database() -> str:
        read_only(True)
        writable_again.start()
        return "done"

    try:
        assert ends_on_a_read_only_database() == "done"
    finally:
        writable_again.join()
        read_only(False)
    with admin(store.url) as connection:
        (state,) = connection.execute(
            text("SELECT state_name FROM flow_runs WHERE flow_name = :name"),
            {"name": "ends-on-a-read-only-database"},
        ).scalars()
    assert state == "Completed"
