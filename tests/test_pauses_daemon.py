"""Pauses in a real daemon: a pause for a while ends by itself (also across a stopped
daemon) without catching up, the config file's ``paused`` applies across reloads only when
it changes in the file, and ``pause_after_failures`` pauses a failing deployment, notifies a
webhook receiver on loopback and starts its count again at ``resume``. The command line's
pause options (echo in the local zone, one-line errors) are checked here too.

Everything is real: the ``gnomon`` script and the daemon in subprocesses, their worker
processes, the store.
"""

from __future__ import annotations

import json
import re
import signal
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gnomon.store import Actor, Store
from test_cli_daemon import gnomon
from test_daemon import completed, runs, start_daemon, wait_for, write_config
from test_daemon_control import FLOWS  # tick, and flaky: fails while its marker is missing
from test_notify import Receiver

# The daemon's scheduling, on SQLite only: the backend does not change it, and the store
# calls it makes run on both backends in test_pauses.py and test_listen.py.
pytestmark = [pytest.mark.backends, pytest.mark.sqlite_only]

TICKER = """
[[deployments]]
name = "ticker"
flow = "pause_flows.py:tick"
interval = "1s"
catchup = "all"
"""


def config_with(tmp_path: Path, deployments: str, daemon: str = "workers = 2") -> Path:
    (tmp_path / "pause_flows.py").write_text(FLOWS)
    return write_config(tmp_path, deployments, daemon=daemon)


def cli(home: Path, config: Path, *args: str, **env: str):
    return gnomon(home, *args, GNOMON_CONFIG=str(config), **env)


def daemon_entries(store: Store, target: str) -> list[tuple[str, str | None]]:
    """The audit entries the daemon made about ``target``, oldest first."""
    return [
        (entry.action, entry.reason)
        for entry in reversed(store.read_audit(limit=200, target=target))
        if entry.actor == "gnomon-daemon"
    ]


def stop(daemon) -> None:
    daemon.send_signal(signal.SIGTERM)
    daemon.communicate(timeout=30)
    assert daemon.returncode == 0


def test_a_pause_for_two_seconds_ends_by_itself_and_the_paused_fires_are_not_caught_up(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    config = config_with(tmp_path, TICKER)
    daemons.append(start_daemon(config, gnomon_home))
    wait_for(completed(store, "ticker", 2), what="two completed runs")

    paused = cli(gnomon_home, config, "pause", "ticker", "--for", "2s", "--reason", "x", "--json")
    returned = datetime.now(UTC)

    assert paused.returncode == 0, paused.stderr
    answer = json.loads(paused.stdout)
    assert answer["paused"] == ["ticker"]
    until = datetime.fromisoformat(answer["paused_until"])
    assert returned < until
    fired_after = wait_for(
        lambda: [row for row in runs(store, "ticker") if row.scheduled_for >= until],
        what="fires after the pause's end",
    )
    wait_for(lambda: not store.read_deployment("ticker").paused, what="the daemon ending the pause")

    paused_fires = [row for row in runs(store, "ticker") if returned < row.scheduled_for < until]
    late = [row for row in runs(store, "ticker") if row.created > returned > row.scheduled_for]
    assert paused_fires == []  # nothing fired while paused
    assert late == []  # nor was anything of it caught up after
    assert {row.trigger for row in fired_after} == {"schedule"}
    ended = f"pause until {until.isoformat()} ended"
    assert daemon_entries(store, "ticker") == [("resume", ended)]
    [pause] = [e for e in store.read_audit(limit=50, target="ticker") if e.action == "pause"]
    assert (pause.reason, pause.detail) == ("x", {"until": until.isoformat()})
    row = store.read_deployment("ticker")
    assert (row.paused_until, row.paused_by) == (None, None)


def test_a_pause_until_a_time_that_passes_while_the_daemon_is_down_ends_when_it_starts(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    config = config_with(tmp_path, TICKER.replace('catchup = "all"', 'catchup = "none"'))
    first = start_daemon(config, gnomon_home)
    daemons.append(first)
    wait_for(completed(store, "ticker", 1), what="a completed run")
    stop(first)

    # A wall time without an offset: this machine's local zone, echoed back with it.
    local = (datetime.now() + timedelta(seconds=3)).replace(microsecond=0)
    paused = cli(gnomon_home, config, "pause", "ticker", "--until", local.isoformat())
    returned = datetime.now(UTC)
    until = local.astimezone(UTC)

    assert paused.returncode == 0, paused.stderr
    zone = local.astimezone().strftime("%Z")
    assert paused.stdout.startswith(f"paused ticker until {local:%Y-%m-%d %H:%M:%S} {zone} (")
    wait_for(lambda: datetime.now(UTC) > until + timedelta(seconds=1), what="the pause's end")
    daemons.append(start_daemon(config, gnomon_home))

    wait_for(
        lambda: [row for row in runs(store, "ticker") if row.scheduled_for > until],
        what="fires after the restart",
    )
    assert not store.read_deployment("ticker").paused
    ended = f"pause until {until.isoformat()} ended"
    assert daemon_entries(store, "ticker")[-1] == ("resume", ended)
    # Nothing of the paused period ran, and catchup = "none" recorded what fell due
    # between the pause's end and the start Missed.
    during = [row for row in runs(store, "ticker") if returned < row.scheduled_for < until]
    assert during == []
    missed = [row for row in runs(store, "ticker") if row.state_name == "Missed"]
    assert missed
    assert all(row.scheduled_for >= until for row in missed)


def test_the_config_s_paused_applies_at_a_reload_only_when_it_changes_in_the_file(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    deployments = textwrap.dedent(
        """
        [[deployments]]
        name = "ticker"
        flow = "pause_flows.py:tick"
        interval = "1s"
        paused = false

        [[deployments]]
        name = "held"
        flow = "pause_flows.py:tick"
        interval = "1s"
        paused = true
        """
    )
    config = config_with(tmp_path, deployments)
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "ticker", 1), what="a completed run")
    held = store.read_deployment("held")
    assert (held.paused, held.paused_reason) == (True, f"paused = true in {config}")
    assert runs(store, "held") == []

    assert cli(gnomon_home, config, "pause", "ticker", "--reason", "INC-9").returncode == 0

    def reloads() -> int:
        return sum(entry.action == "reload" for entry in store.read_audit(limit=200))

    daemon.send_signal(signal.SIGHUP)  # the file still says paused = false
    wait_for(lambda: reloads() == 1, what="the SIGHUP reload")
    assert store.read_deployment("ticker").paused_reason == "INC-9"
    again = cli(gnomon_home, config, "daemon", "reload")
    assert again.returncode == 0, again.stderr
    assert store.read_deployment("ticker").paused_reason == "INC-9"

    config.write_text(config.read_text().replace("paused = false", "paused = true"))
    agreed = cli(gnomon_home, config, "daemon", "reload")
    assert agreed.returncode == 0, agreed.stderr
    assert store.read_deployment("ticker").paused_reason == "INC-9"  # paused already

    config.write_text(config.read_text().replace("paused = true\n\n", "paused = false\n\n", 1))
    resumed = cli(gnomon_home, config, "daemon", "reload")
    assert resumed.returncode == 0, resumed.stderr
    row = store.read_deployment("ticker")
    assert (row.paused, row.config_paused) == (False, False)
    assert store.read_deployment("held").paused  # its line did not change
    after = datetime.now(UTC)
    wait_for(
        lambda: [r for r in runs(store, "ticker") if r.created > after],
        what="fires after the file resumed it",
    )


def test_paused_true_set_in_the_file_during_a_timed_pause_outlasts_that_pause(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    config = config_with(tmp_path, TICKER + TICKER.replace('"ticker"', '"other"'))
    config.write_text(config.read_text().replace('catchup = "all"', "paused = false"))
    daemons.append(start_daemon(config, gnomon_home))
    wait_for(completed(store, "ticker", 1), what="a completed run")

    paused = cli(gnomon_home, config, "pause", "ticker", "--for", "2s", "--reason", "op")
    assert paused.returncode == 0, paused.stderr
    config.write_text(config.read_text().replace("paused = false", "paused = true", 1))
    reload = cli(gnomon_home, config, "daemon", "reload")
    # A pause of "other" that ends after the operator's pause of "ticker" would have: the
    # daemon ends pauses in the order of their ends.
    later = cli(gnomon_home, config, "pause", "other", "--for", "3s", "--json")
    until = datetime.fromisoformat(json.loads(later.stdout)["paused_until"])
    wait_for(lambda: not store.read_deployment("other").paused, what="other's pause ending")

    assert "changed: ticker (paused)" in reload.stdout, reload.stdout + reload.stderr
    row = store.read_deployment("ticker")
    assert (row.paused, row.paused_until) == (True, None)
    assert row.paused_reason == f"paused = true in {config}"
    assert daemon_entries(store, "ticker") == []  # never resumed
    assert daemon_entries(store, "other") == [("resume", f"pause until {until.isoformat()} ended")]


def test_stating_the_pause_a_deployment_has_is_no_change_of_a_reload(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    config = config_with(tmp_path, TICKER)  # silent about paused
    daemons.append(start_daemon(config, gnomon_home))
    wait_for(completed(store, "ticker", 1), what="a completed run")

    config.write_text(config.read_text().replace('"all"', '"all"\npaused = false'))
    stated = cli(gnomon_home, config, "daemon", "reload")
    config.write_text(config.read_text().replace("paused = false", "paused = true"))
    paused = cli(gnomon_home, config, "daemon", "reload")

    assert stated.returncode == 0, stated.stderr
    assert "changed:" not in stated.stdout
    assert "applied: 0 added, 0 removed, 0 changed" in stated.stdout + stated.stderr
    assert "changed: ticker (paused)" in paused.stdout, paused.stdout
    reloads = [e.detail for e in reversed(store.read_audit(limit=200)) if e.action == "reload"]
    assert [detail["changed"] for detail in reloads] == [{}, {"ticker": ["paused"]}]
    assert store.read_deployment("ticker").paused


def test_pause_after_failures_pauses_after_exactly_n_failed_runs_notifies_and_resume_clears(
    tmp_path: Path,
    gnomon_home: Path,
    store: Store,
    daemons: list,
    receiver: Receiver,
) -> None:
    config = config_with(
        tmp_path,
        """
        [[deployments]]
        name = "crm"
        flow = "pause_flows.py:flaky"
        interval = "1s"
        parameters = { marker = "/nonexistent/crm-is-back" }
        pause_after_failures = 3

        [[notify]]
        name = "ops"
        url_env = "OPS_WEBHOOK"
        events = ["auto_paused"]
        """,
        daemon='workers = 2\npublic_url = "https://gnomon.example.com"',
    )
    daemons.append(start_daemon(config, gnomon_home, OPS_WEBHOOK=receiver.url("hook")))

    [first] = receiver.wait_for(1)

    def failed() -> list:
        return sorted(
            (row for row in runs(store, "crm") if row.state_name == "Failed"),
            key=lambda row: row.created,
        )

    assert len(failed()) == 3
    last = failed()[-1]
    reason = f"paused after 3 consecutive failures; last: {last.name} Failed"
    post = first["json"]
    assert (post["event"], post["deployment"], post["state"], post["run_id"]) == (
        "auto_paused",
        "crm",
        "Failed",
        last.id,
    )
    assert post["text"].startswith(f":double_vertical_bar: crm paused itself: {reason}")
    assert post["url"] == f"https://gnomon.example.com/runs/{last.id}"
    row = store.read_deployment("crm")
    assert (row.paused, row.paused_by, row.paused_reason) == (True, "gnomon-daemon", reason)
    assert daemon_entries(store, "crm") == [("pause", reason)]

    resumed = cli(gnomon_home, config, "resume", "crm", "--reason", "CRM back")
    assert resumed.returncode == 0, resumed.stderr

    # The count starts again from the resume: three more failures, not one.
    [_, second] = receiver.wait_for(2)
    assert len(failed()) == 6
    assert second["json"]["run_id"] == failed()[-1].id
    assert [action for action, _ in daemon_entries(store, "crm")] == ["pause", "pause"]
    assert store.read_deployment("crm").paused


# The command line's options, with no daemon running: the store and the config alone.

ONE = """
[[deployments]]
name = "ticker"
flow = "pause_flows.py:tick"
cron = "0 9 * * *"
timezone = "Europe/Paris"
"""


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["--until", "2020-01-01T00:00"],
            "Error: --until '2020-01-01T00:00' has passed (it is now ",
        ),
        (["--until", "2030-12-08T09:00", "--for", "2h"], "Error: give --until or --for, not both"),
        (["--for", "2 fortnights"], "Error: --for '2 fortnights' has unknown unit 'fortnights'"),
        (["--for", "-5m"], "Error: --for '-5m' must be positive"),
        (["--for", "0"], "Error: --for '0' must be positive"),
        (
            ["--until", "9999-12-31T23:59:59+00:00"],  # would not show east of UTC
            "Error: --until '9999-12-31T23:59:59+00:00' is more than ten years (3660d) away",
        ),
        (["--until", "next monday"], "Error: --until 'next monday' is not an ISO 8601 time"),
        (
            ["--until", "2030-03-31T02:30"],  # the clocks skip it in Paris
            "Error: --until '2030-03-31T02:30' does not exist in the local zone (CET/CEST",
        ),
    ],
)
def test_a_pause_end_that_cannot_be_one_exits_2_with_one_line_and_pauses_nothing(
    tmp_path: Path, gnomon_home: Path, store: Store, args: list[str], error: str
) -> None:
    config = config_with(tmp_path, ONE)

    result = cli(gnomon_home, config, "pause", "ticker", *args, TZ="Europe/Paris")

    assert result.returncode == 2
    assert result.stderr.startswith(error), result.stderr
    assert len(result.stderr.splitlines()) == 1
    row = store.read_deployment("ticker")
    assert row is None or not row.paused


def test_a_pause_until_is_echoed_in_the_local_zone_shown_and_ended_early_by_resume(
    tmp_path: Path, gnomon_home: Path, store: Store
) -> None:
    config = config_with(tmp_path, ONE)
    paris = {"TZ": "Europe/Paris"}

    paused = cli(gnomon_home, config, "pause", "ticker", "--until", "2030-12-08T09:00", **paris)
    shorter = cli(gnomon_home, config, "pause", "ticker", "--for", "1h", **paris)
    shown = cli(gnomon_home, config, "deployments", "show", "ticker", **paris)
    table = cli(gnomon_home, config, "deployments", "list", **paris)
    listed = cli(gnomon_home, config, "deployments", "list", "--json")
    upcoming = cli(gnomon_home, config, "deployments", "next", "ticker", "-n", "1", **paris)

    assert paused.stdout == "paused ticker until 2030-12-08 09:00 CET (+01:00)\n", paused.stderr
    assert shorter.stdout == "ticker was already paused until 2030-12-08 09:00 CET (+01:00)\n"
    assert re.search(r"^paused +until 2030-12-08 09:00 CET \(\+01:00\), by ", shown.stdout, re.M)
    assert "  until 2030-12-08 09:00 CET (+01:00)  " in table.stdout.splitlines()[1]
    [item] = json.loads(listed.stdout)
    assert (item["paused"], item["paused_until"]) == (True, "2030-12-08T08:00:00.000Z")
    # Its fires go on from the pause's end: the 09:00 of that day is the first.
    assert item["next_fire"] == "2030-12-08T08:00:00.000Z"
    # `next` marks the paused fires before it, the rest of them in one line.
    paused_fire, rest, fire = upcoming.stdout.splitlines()
    assert " excluded: paused by " in paused_fire
    assert "until 2030-12-08 09:00 CET (+01:00)" in paused_fire
    assert rest.endswith("  and more excluded times until 2030-12-08T08:00:00.000Z")
    assert fire == "2030-12-08T08:00:00.000Z"
    assert "paused until 2030-12-08" in upcoming.stderr

    resumed = cli(gnomon_home, config, "resume", "ticker")
    assert resumed.stdout == "resumed ticker\n"
    row = store.read_deployment("ticker")
    assert (row.paused, row.paused_until) == (False, None)


def test_a_stored_pause_end_the_local_zone_cannot_show_is_shown_in_utc(
    tmp_path: Path, gnomon_home: Path, store: Store
) -> None:
    # Written by something else than the CLI, which caps a pause at ten years: in Berlin,
    # its local time would be in the year 10000.
    config = config_with(tmp_path, ONE)
    assert cli(gnomon_home, config, "deployments", "apply").returncode == 0
    last = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert store.set_paused(["ticker"], True, Actor("alice", "cli"), "far", until=last)
    berlin = {"TZ": "Europe/Berlin"}

    table = cli(gnomon_home, config, "deployments", "list", **berlin)
    shown = cli(gnomon_home, config, "deployments", "show", "ticker", **berlin)
    upcoming = cli(gnomon_home, config, "deployments", "next", "ticker", **berlin)
    again = cli(gnomon_home, config, "pause", "ticker", "--for", "1h", **berlin)

    end = "until 9999-12-31 23:59:59 UTC (+00:00)"
    assert table.returncode == 0, table.stderr
    assert f"  {end}  " in table.stdout.splitlines()[1]
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"^paused +{re.escape(end)}, by ", shown.stdout, re.M)
    assert upcoming.returncode == 0, upcoming.stderr
    assert f"ticker is paused {end}" in upcoming.stderr
    assert again.stdout == f"ticker was already paused {end}\n", again.stderr
