"""Daemons on separate hosts, one of them cut off from the database: each daemon in a network
namespace of its own, linked to a private PostgreSQL (``netns.py``), the link taken down as a
pulled cable would be."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from test_cluster import (
    Connected,
    assert_no_run_started_twice,
    every_slow,
    leader,
    members,
    query,
)
from test_daemon import wait_for, write_config

pytestmark = pytest.mark.slow

TIMEOUT = 8  # the daemons' heartbeat_timeout, seconds


def daemon_in(host: Any, config: Path, url: str) -> Any:
    home = config.parent / "home"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "GNOMON_HOME": str(home),
        "GNOMON_DATABASE_URL": url,
        "GNOMON_LOG_FORMAT": "json",
        "PYTHONPATH": str(REPO / "src"),
    }
    with (config.parent / "daemon.out").open("w") as output:  # the child keeps its own
        return host.run(
            [sys.executable, "-m", "gnomon.cli", "daemon", "--config", str(config)],
            env,
            stdout=output,
            stderr=output,
            cwd=config.parent,
        )


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_daemon_cut_off_stops_its_runs_before_the_others_take_them_and_rejoins(
    tmp_path: Path,
) -> None:
    from netns import private_network

    slow = "".join(every_slow(f"slow{i}") for i in range(4))
    daemon = f'workers = 2\nheartbeat_timeout = "{TIMEOUT}s"'
    configs = []
    for index in range(2):
        where = tmp_path / f"host{index}"
        where.mkdir()
        configs.append(write_config(where, slow, daemon=daemon))
    with private_network(namespaces=2) as network:
        url = network.url
        first = daemon_in(network.namespaces[0], configs[0], url)
        try:
            wait_for(lambda: len(members(url)) == 1, timeout=60, what="the first daemon joined")
            second = daemon_in(network.namespaces[1], configs[1], url)
            try:
                wait_for(lambda: len(members(url)) == 2, timeout=60, what="the second joined")
                [cut_id] = [row["id"] for row in members(url) if row["pid"] == second.pid]
                assert leader(url) != cut_id
                running = wait_for(
                    lambda: query(
                        url,
                        "SELECT id, worker_pid FROM flow_runs WHERE daemon_id = :id"
                        " AND state_type = 'RUNNING' AND worker_pid IS NOT NULL",
                        id=cut_id,
                    ),
                    timeout=60,
                    what="slow runs going on the second daemon",
                )
                network.namespaces[1].cut()
                cut_at = time.monotonic()
                try:
                    # Its side: the workers killed at half the lease, before it runs out.
                    wait_for(
                        lambda: not any(alive(pid) for _, pid in running),
                        timeout=TIMEOUT,
                        what="the cut daemon's workers killed",
                    )
                    killed_after = time.monotonic() - cut_at
                    # The others' side: its runs settled once its lease ran out.
                    wait_for(
                        lambda: all(
                            query(url, "SELECT state_name FROM flow_runs WHERE id = :id", id=id_)
                            == [("Crashed",)]
                            for id_, _ in running
                        ),
                        timeout=TIMEOUT + 10,
                        what="its runs settled Crashed by the first daemon",
                    )
                    settled_after = time.monotonic() - cut_at
                    assert killed_after < settled_after
                    assert killed_after < TIMEOUT
                    assert second.poll() is None  # a member cut off goes on: it fenced
                finally:
                    network.namespaces[1].restore()
                # It joins again as a new member and takes runs again.
                rejoined = f"{cut_id}/2"
                wait_for(
                    lambda: any(row["id"] == rejoined for row in members(url)),
                    timeout=60,
                    what="the cut daemon rejoined as a new member",
                )
                wait_for(
                    lambda: query(
                        url,
                        "SELECT id FROM flow_runs WHERE daemon_id = :id"
                        " AND state_type IN ('RUNNING', 'COMPLETED')",
                        id=rejoined,
                    ),
                    timeout=60,
                    what="runs on the rejoined daemon",
                )
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=60)
        finally:
            first.send_signal(signal.SIGTERM)
            first.wait(timeout=60)
        assert_no_run_started_twice(url)
        with Connected(url) as connection:
            messages = connection.exec_driver_sql(
                "SELECT DISTINCT state_message FROM flow_runs WHERE state_name = 'Crashed'"
            ).all()
        assert all(cut_id in message for (message,) in messages)
