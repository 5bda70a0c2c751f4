"""Calendars and maintenance windows in a real daemon: an every-second deployment on an
excluded day writes no row at all while its neighbour fires; a window added with the CLI
stops a deployment's fires and they resume at its end; `deployments next` and `explain`
say why, from the calendars (the API's tests: the windows and the pause)."""

from __future__ import annotations

import json
import re
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from test_cli_daemon import gnomon
from test_daemon import completed, runs, start_daemon, wait_for, write_config

# The daemon's scheduling, on SQLite only: the backend does not change it, and the store
# calls it makes run on both backends in test_calendars_scheduler.py and test_maintenance_store.py.
pytestmark = [pytest.mark.backends, pytest.mark.sqlite_only]


def excluded_today(tmp_path: Path) -> Path:
    """Two every-second deployments, one excluding today and tomorrow (UTC): a test that
    crosses midnight still sees no fire of it."""
    today = datetime.now(UTC).date()
    days = ", ".join(str(today + timedelta(days=n)) for n in (0, 1))
    return write_config(
        tmp_path,
        f"""
        [[calendars]]
        name = "today"
        dates = [{days}]

        [[deployments]]
        name = "blocked"
        flow = "flows.py:tick"
        interval = "1s"
        exclude = ["today"]

        [[deployments]]
        name = "open"
        flow = "flows.py:tick"
        interval = "1s"
        """,
    )


def test_an_every_second_deployment_on_an_excluded_day_writes_no_rows(
    tmp_path: Path, gnomon_home: Path, store, daemons
) -> None:
    config = excluded_today(tmp_path)
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "open", 4), timeout=60, what="four runs of the open deployment")
    upcoming = gnomon(gnomon_home, "deployments", "next", "blocked", "-n", "2")
    explained = gnomon(gnomon_home, "deployments", "explain", "blocked", "--json")
    assert not runs(store, "blocked")
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert not runs(store, "blocked")  # not one row, not even Skipped or Missed

    first, second, more, fire, *_ = upcoming.stdout.splitlines()
    today = datetime.now(UTC).date()
    assert first.endswith(f"  excluded: {first[:10]} is in calendar 'today'"), upcoming.stdout
    assert second.endswith("is in calendar 'today'")
    after = today + timedelta(days=2)
    # The interval counts from its registration: that day's first fire, in its first second.
    assert re.search(rf"  and more excluded times until {after}T00:00:00\.\d{{3}}Z$", more), more
    assert fire.startswith(str(after))
    view = json.loads(explained.stdout)
    assert view["decisions"], "the fires since it was registered are explained"
    assert {d["decision"] for d in view["decisions"]} == {"excluded (calendar)"}
    assert all(d["run_id"] is None for d in view["decisions"])
    assert {b["kind"] for fire in view["next"] for b in fire["blockers"]} == {"calendar"}


def test_a_window_added_with_the_cli_stops_fires_and_they_resume_at_its_end(
    tmp_path: Path, gnomon_home: Path, store, daemons
) -> None:
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "ticker"
        flow = "flows.py:tick"
        interval = "1s"
        tags = ["warehouse"]
        """,
    )
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "ticker", 2), timeout=60, what="the first runs")
    # Starting a little later than now: the daemon has then seen it (it is nudged, and it
    # reads the store every second anyway; the command itself may take a second or two on
    # a busy machine).
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    end = start + timedelta(seconds=5)
    added = gnomon(
        gnomon_home,
        "maintenance",
        "add",
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--tag",
        "warehouse",
        "--reason",
        "disk swap",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    window = json.loads(added.stdout)
    listed = gnomon(gnomon_home, "maintenance", "ls")
    wait_for(
        lambda: any(r.scheduled_for and r.scheduled_for >= end for r in runs(store, "ticker")),
        timeout=60,
        what="a fire after the window",
    )
    removed = gnomon(gnomon_home, "maintenance", "rm", str(window["id"]), "--reason", "over")
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err

    times = sorted(r.scheduled_for for r in runs(store, "ticker") if r.scheduled_for)
    assert not [t for t in times if start <= t < end], "no fire inside the window"
    assert any(t < start for t in times)
    assert any(t >= end for t in times)
    assert (window["state"], window["tags"], window["reason"]) == (
        "upcoming",
        ["warehouse"],
        "disk swap",
    )
    assert "disk swap" in listed.stdout
    assert "tag warehouse" in listed.stdout
    assert removed.stdout == f"removed maintenance window {window['id']}\n"
    actions = [entry.action for entry in store.read_audit(target=str(window["id"]))]
    assert actions == ["maintenance-rm", "maintenance-add"]


def test_maintenance_add_refuses_bad_input_in_one_line(
    tmp_path: Path, gnomon_home: Path, store
) -> None:
    config = write_config(
        tmp_path, '[[deployments]]\nname = "ticker"\nflow = "flows.py:tick"\ninterval = "1h"\n'
    )
    assert gnomon(gnomon_home, "deployments", "apply", "--config", str(config)).returncode == 0
    cases = {
        ("--for", "2h", "--end", "2030-01-01T00:00Z"): "give the window's end (--end) or",
        ("--start", "2000-12-31T00:00Z", "--end", "2001-01-01T00:00Z"): "has passed",
        ("--start", "2030-01-02T00:00Z", "--end", "2030-01-01T00:00Z"): "is not after start",
        ("--for", "soon"): "for 'soon'",
        ("--for", "1h", "--deployment", "nope"): 'no deployment named "nope"',
    }
    for args, message in cases.items():
        result = gnomon(gnomon_home, "maintenance", "add", *args)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
        assert "Traceback" not in result.stderr
    assert store.read_maintenance() == []


def test_a_reload_breaking_a_calendar_keeps_its_deployments_last_good_version(
    tmp_path: Path, gnomon_home: Path, store, daemons
) -> None:
    """The calendar gets an unknown country: the deployment naming it keeps its schedule
    (and its calendar), the other deployment's edit applies, and the config's window is in
    the store for `maintenance ls`, which `rm` refuses to remove."""
    text = """
        [[calendars]]
        name = "never"
        dates = [2001-01-01]

        [[maintenance]]
        name = "far-off"
        start = 2099-01-01T00:00:00Z
        end = 2099-01-02T00:00:00Z
        reason = "a long way ahead"

        [[deployments]]
        name = "calendared"
        flow = "flows.py:tick"
        interval = "1s"
        exclude = ["never"]

        [[deployments]]
        name = "plain"
        flow = "flows.py:tick"
        interval = "1s"
        """
    config = write_config(tmp_path, text)
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "calendared", 2), timeout=60, what="the calendared deployment")
    listed = gnomon(gnomon_home, "maintenance", "ls", "--json")
    [window] = json.loads(listed.stdout)
    refused = gnomon(gnomon_home, "maintenance", "rm", str(window["id"]))

    broken = config.read_text().replace("dates = [2001-01-01]", 'country = "XX"')
    config.write_text(broken.replace('name = "plain"', 'name = "plain"\ntags = ["edited"]'))
    reload = gnomon(gnomon_home, "daemon", "reload", "--config", str(config))
    count = len(runs(store, "calendared"))
    wait_for(completed(store, "calendared", count + 2), timeout=60, what="the old version firing")
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err

    assert (window["source"], window["name"], window["reason"]) == (
        "config",
        "far-off",
        "a long way ahead",
    )
    assert refused.returncode != 0
    assert "is the config file's [[maintenance]] entry 'far-off'" in refused.stderr
    assert reload.returncode != 0, reload.stdout  # partial: one deployment kept
    assert (
        "calendar \"never\": country 'XX': no public holidays known for it"
        in reload.stdout + reload.stderr
    )
    assert 'deployment "calendared": exclude.0 "never"' in reload.stdout + reload.stderr
    assert store.read_deployment("plain").tags == ["edited"]
    kept = store.read_deployment("calendared").schedule_specs
    assert kept["exclude"] == [{"name": "never", "dates": ["2001-01-01"]}]


def test_explain_notes_an_active_window_not_begun_and_a_paused_deployment_s_fires(
    tmp_path: Path, gnomon_home: Path, store
) -> None:
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "later"
        flow = "flows.py:tick"
        cron = "0 6 * * *"
        active_from = 2099-01-01
        """,
    )
    assert gnomon(gnomon_home, "deployments", "apply", "--config", str(config)).returncode == 0
    assert gnomon(gnomon_home, "pause", "later", "--reason", "not yet").returncode == 0
    shown = gnomon(gnomon_home, "deployments", "explain", "later", "-n", "2")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "later: At 06:00 (from 2099-01-01)"
    assert lines[1] == "  note: active_from 2099-01-01: no fire before it"
    assert lines[2:4] == ["last decisions (newest first):", "  none"]
    assert lines[4] == "next fires:"
    assert lines[5].startswith("  2099-01-01T06:00:00.000Z  paused by ")
    assert lines[5].endswith(" until resumed (not yet)")
