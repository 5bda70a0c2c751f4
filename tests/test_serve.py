"""``flow.serve`` and ``gnomon.serve``: a script scheduling its own flows with gnomon's
daemon, as Prefect's serve does, run as users run it: a real script in a subprocess, the
real command line beside it, real signals, a real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from gnomon import flow
from gnomon.schedules import Cron, Interval, RRule
from test_api import api  # noqa: F401 (the fixture)
from test_daemon import DaemonProcess, runs, start_daemon, wait_for, write_config

SCRIPT = textwrap.dedent(
    """
    from gnomon import flow

    @flow
    def greet(who: str = "world") -> str:
        print(f"hello {who}")
        return who

    # No `if __name__ == "__main__":` guard: the workers import this file, and the call
    # must not serve again there.
    greet.serve(name="greet-often", interval=1, parameters={"who": "served"}, tags=["demo"])
    """
)

TWO = textwrap.dedent(
    """
    from datetime import timedelta

    import gnomon
    from gnomon import flow

    @flow
    def first() -> str:
        return "first"

    @flow
    def second(n: int) -> int:
        return n * 2

    if __name__ == "__main__":
        gnomon.serve(
            first.to_deployment("first-dep", interval=timedelta(seconds=1)),
            second.to_deployment("second-dep", interval=[1], parameters={"n": 21}),
            limit=1,
            pause_on_shutdown=False,
        )
    """
)


def _env(home: Path) -> dict[str, str]:
    environment = {**os.environ, "GNOMON_HOME": str(home), "GNOMON_LOG_FORMAT": "json"}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "src"), environment.get("PYTHONPATH")])
    )
    return environment


def start_script(path: Path, text: str, home: Path) -> DaemonProcess:
    """``text`` written to ``path`` and run, against ``home``'s store, its output in files
    beside it."""
    path.write_text(text)
    home.mkdir(parents=True, exist_ok=True)
    return DaemonProcess(
        [sys.executable, str(path)], path.with_suffix(""), env=_env(home), cwd=path.parent
    )


def gnomon_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gnomon.cli", *args],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=60,
        check=False,
    )


def completed_of(store: Any, deployment: str) -> list[Any]:
    return [row for row in runs(store, deployment) if row.state_name == "Completed"]


@pytest.fixture
def served(tmp_path: Path, gnomon_home: Path) -> Iterator[tuple[Path, DaemonProcess]]:
    """SCRIPT serving in a subprocess (its path, its process); stopped at the end if the
    test has not stopped it."""
    script = tmp_path / "job.py"
    process = start_script(script, SCRIPT, gnomon_home)
    try:
        yield script, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


@pytest.mark.backends
def test_a_served_flow_runs_is_listed_paused_and_stopped_by_sigterm(
    gnomon_home: Path, store: Any, served: tuple[Path, DaemonProcess]
) -> None:
    script, process = served
    try:
        done = wait_for(lambda: completed_of(store, "greet-often")[1:], 60, "two served runs")
        assert done[0].parameters == {"who": "served"}
        assert done[0].entrypoint == f"{script.resolve()}:greet"

        listed = gnomon_cli(gnomon_home, "deployments", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        (view,) = json.loads(listed.stdout)
        assert view["name"] == "greet-often"
        assert view["source"] == f"serve:{script.resolve()}"
        assert view["tags"] == ["demo"]
        table = gnomon_cli(gnomon_home, "deployments", "list")
        assert f"serve:{script.resolve()}" in table.stdout

        # No config file to reload: refused, nothing changes.
        reload = gnomon_cli(gnomon_home, "daemon", "reload")
        assert reload.returncode != 0
        assert "reads no config file" in reload.stdout + reload.stderr
        assert store.read_deployment("greet-often").active

        paused = gnomon_cli(gnomon_home, "pause", "greet-often", "--reason", "enough")
        assert paused.returncode == 0, paused.stderr
        row = store.read_deployment("greet-often")
        assert row.paused
        # Fires due after the pause create nothing: two of them pass, then the count holds.
        before = len(runs(store, "greet-often"))
        wait_for(lambda: _seconds_since(row.paused_at) > 2.5, 10, "two fire times")
        assert len(runs(store, "greet-often")) <= before + 1  # one decided as it paused
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "daemon stopped" in stdout
    # Only the script's process printed the banner: no worker served again.
    assert stdout.count("Serving 1 deployment") == 1
    assert not [row for row in runs(store, "greet-often") if row.state_name == "Running"]
    # Stopped, the served deployment is no longer scheduled (Prefect pauses it).
    assert not store.read_deployment("greet-often").active


def test_a_daemon_started_while_a_script_serves_is_refused_naming_the_script(
    tmp_path: Path, gnomon_home: Path, store: Any, served: tuple[Path, DaemonProcess]
) -> None:
    script, process = served
    wait_for(lambda: completed_of(store, "greet-often"), 60, "a served run")
    config = write_config(tmp_path, "")

    refused = gnomon_cli(gnomon_home, "daemon", "--config", str(config))

    assert refused.returncode == 1
    assert f"pid {process.pid}" in refused.stderr
    assert f"the script {script.resolve()} (serve)" in refused.stderr


def _seconds_since(moment: Any) -> float:
    from datetime import UTC, datetime

    return (datetime.now(UTC) - moment).total_seconds()


def test_gnomon_serve_serves_several_deployments_and_stops_on_ctrl_c(
    tmp_path: Path, gnomon_home: Path, store: Any
) -> None:
    """With pause_on_shutdown=False they stay scheduled after it stops (the next serve
    catches up what it missed by their catch-up policy)."""
    process = start_script(tmp_path / "two.py", TWO, gnomon_home)
    try:
        wait_for(lambda: completed_of(store, "first-dep"), 60, "a run of first-dep")
        (second, *_) = wait_for(lambda: completed_of(store, "second-dep"), 60, "second-dep")
        assert second.parameters == {"n": 21}
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert sorted(row.name for row in store.read_deployments()) == ["first-dep", "second-dep"]


def test_with_webserver_the_api_lists_the_served_deployment_with_its_source(
    tmp_path: Path, gnomon_home: Path
) -> None:
    """Settings come from the config file's [daemon] table (here: the API's address and one
    worker); its deployments are not served."""
    import urllib.request

    from test_tls import api_url

    (tmp_path / "gnomon.toml").write_text(
        '[daemon]\napi = "127.0.0.1:0"\napi_auth = false\nworkers = 1\n\n'
        '[[deployments]]\nname = "not-served"\nflow = "job.py:greet"\ncron = "0 3 * * *"\n'
    )
    text = SCRIPT.replace('tags=["demo"])', 'tags=["demo"], webserver=True)')
    script = tmp_path / "job.py"
    process = start_script(script, text, gnomon_home)
    try:
        url = api_url(process)
        with urllib.request.urlopen(f"{url}/api/v1/deployments", timeout=30) as response:
            listed = json.load(response)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert [(each["name"], each["source"]) for each in listed] == [
        ("greet-often", f"serve:{script.resolve()}")
    ]
    assert process.returncode == 0, stderr
    assert "1 workers" in process.output_path.read_text()


def test_serve_refuses_while_a_daemon_holds_the_store_and_prints_its_toml(
    tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    config = write_config(
        tmp_path, '[[deployments]]\nname = "tick"\nflow = "flows.py:tick"\ncron = "0 3 * * *"\n'
    )
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(lambda: "daemon ready" in daemon.output_path.read_text(), 60, "the daemon")
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)

    refused = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=_env(gnomon_home),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )

    assert refused.returncode == 1
    assert f"pid {daemon.pid}" in refused.stderr
    assert "Traceback" not in refused.stderr
    toml = refused.stderr[refused.stderr.index("[[deployments]]") :]
    loaded = _load_toml(tmp_path, toml)
    (deployment,) = loaded.config.deployments
    assert deployment.name == "greet-often"
    assert deployment.flow == f"{script.resolve()}:greet"
    assert deployment.interval == "1s"
    assert deployment.parameters == {"who": "served"}
    assert deployment.tags == ("demo",)


def _load_toml(tmp_path: Path, toml: str) -> Any:
    """``toml`` loaded as a config file (its flows checked), with no problem."""
    from gnomon.deployments import load_config

    path = tmp_path / "printed.toml"
    path.write_text('[daemon]\napi = "off"\n\n' + toml)
    result = load_config(path)
    assert result.problems == []
    return result


@flow
def report(region: str, limit: int = 10) -> str:
    return f"{region}:{limit}"


def test_flow_deploy_raises_with_the_toml_that_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gnomon.exceptions import DeployNotSupported

    # The printed flow is this module's: the flow check's own process must find it.
    tests = str(Path(__file__).resolve().parent)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))
    )

    with pytest.raises(DeployNotSupported) as raised:
        report.deploy(
            "nightly-report",
            work_pool_name="my-pool",
            cron="30 2 * * *",
            parameters={"region": "eu", "limit": 5},
            timezone="Europe/Paris",
            retries=2,
        )

    message = str(raised.value)
    assert "gnomon deployments apply" in message
    loaded = _load_toml(tmp_path, message[message.index("[[deployments]]") :])
    (deployment,) = loaded.config.deployments
    assert deployment.name == "nightly-report"
    assert deployment.cron == "30 2 * * *"
    assert deployment.timezone == "Europe/Paris"
    assert deployment.parameters == {"region": "eu", "limit": 5}
    assert deployment.retries == 2
    assert deployment.flow == "test_serve:report"


class _Cron:
    """A schedule object as gnomon.schedules.Cron and Prefect's make them."""

    def __init__(self, cron: str, timezone: str | None = None) -> None:
        self.cron = cron
        self.timezone = timezone
        self.interval = None
        self.rrule = None
        self.parameters: dict[str, Any] = {}
        self.active = True


@pytest.mark.parametrize(
    ("options", "table"),
    [
        ({"interval": 90}, {"interval": "1m 30s"}),
        ({"interval": [3600]}, {"interval": "1h"}),
        ({"cron": ["0 * * * *"]}, {"cron": "0 * * * *"}),
        (
            {"schedules": [_Cron("0 9 * * 1-5", "America/New_York")]},
            {"cron": "0 9 * * 1-5", "timezone": "America/New_York"},
        ),
        ({"schedule": {"interval": 60}}, {"interval": "1m"}),
        ({"schedules": [Interval(300)]}, {"interval": "5m"}),
        (
            {"schedule": Cron("30 6 * * *", timezone="Europe/Paris")},
            {"cron": "30 6 * * *", "timezone": "Europe/Paris"},
        ),
        ({"rrule": "FREQ=DAILY"}, {"schedules": [{"rrule": "FREQ=DAILY"}]}),
        (
            {"cron": ["0 * * * *", "30 * * * *"]},
            {"schedules": [{"cron": "0 * * * *"}, {"cron": "30 * * * *"}]},
        ),
        (
            {
                "schedules": [
                    Cron("0 6 * * *", timezone="Europe/Paris", parameters={"region": "us"}),
                    Interval(3600, active=False),
                    RRule("FREQ=MONTHLY;BYMONTHDAY=1", timezone="Europe/Paris"),
                ]
            },
            {
                "schedules": [
                    {"cron": "0 6 * * *", "parameters": {"region": "us"}},
                    {"rrule": "FREQ=MONTHLY;BYMONTHDAY=1"},
                ],
                "timezone": "Europe/Paris",
            },
        ),
        ({"cron": "0 * * * *", "concurrency_limit": 3}, {"max_concurrent": 3, "overlap": "queue"}),
        ({"cron": "0 * * * *", "overlap": "allow", "timeout": "5m"}, {"overlap": "allow"}),
    ],
)
def test_to_deployment_takes_prefects_schedule_arguments(
    options: dict[str, Any], table: dict[str, Any]
) -> None:
    deployment = report.to_deployment("r", parameters={"region": "eu"}, **options)

    assert table.items() <= deployment.table.items()
    assert deployment.deployment().name == "r"


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"cron": "0 * * * *", "work_pool_name": "k8s"}, TypeError, "worker pool"),
        ({"cron": "0 * * * *", "triggers": ["x"]}, TypeError, "no event triggers"),
        ({"rrule": "FREQ=WEEKLY"}, ValueError, "FREQ=WEEKLY without DTSTART must name its days"),
        ({"rrule": "FREQ=DAILY", "cron": "0 * * * *"}, ValueError, "cron and rrule are given"),
        (
            {"schedules": [Cron("0 6 * * *", timezone="Europe/Paris"), RRule("FREQ=DAILY")]},
            ValueError,
            "schedules in several time zones",
        ),
        (
            {"schedules": [Cron("0 6 * * *"), Cron("0 7 * * *", parameters={"regio": "us"})]},
            ValueError,
            "parameters.regio 'us': flow 'report' has no parameter 'regio'",
        ),
        ({"cron": "0 * * * *", "version": "1.2"}, TypeError, "@flow(version"),
        ({"cron": "0 * * * *", "no_such_option": 1}, TypeError, "no_such_option"),
        ({}, ValueError, "has no schedule"),
        ({"interval": 0.5}, ValueError, "interval"),
        ({"cron": "61 * * * *"}, ValueError, "cron '61 * * * *'"),
        ({"cron": "0 * * * *", "parameters": {"regio": "eu"}}, ValueError, "regio"),
        ({"cron": "0 * * * *", "enforce_parameter_schema": False}, TypeError, "validate_param"),
    ],
)
def test_to_deployment_refuses_what_gnomon_lacks_naming_the_alternative(
    options: dict[str, Any], error: type[Exception], words: str
) -> None:
    options.setdefault("parameters", {"region": "eu"})
    with pytest.raises(error, match=words.replace("(", r"\(").replace("*", r"\*")):
        report.to_deployment("r", **options)


def test_a_flow_from_with_options_is_refused_as_a_worker_would_import_another(
    tmp_path: Path,
) -> None:
    renamed = report.with_options(name="other")

    with pytest.raises(ValueError, match="top level of its module"):
        renamed.to_deployment("r", cron="0 * * * *", parameters={"region": "eu"})


def test_the_dashboard_shows_a_served_deployment_and_its_script(api: Any) -> None:  # noqa: F811
    from datetime import UTC, datetime

    from gnomon.deployments import Deployment, sync_deployments
    from test_streams import session_client

    served = Deployment(name="served-one", flow="/srv/jobs/serve_me.py:greet", interval="5m")
    sync_deployments(api.store, [served], datetime.now(UTC), source="serve:/srv/jobs/serve_me.py")

    client = session_client(api, api.token)
    try:
        page = client.get("/deployments/served-one")
        listing = client.get("/deployments")
    finally:
        client.close()

    assert page.status_code == 200
    assert "<code>/srv/jobs/serve_me.py</code> (gnomon.serve)" in page.text
    assert "served-one" in listing.text


def _run_script(path: Path, text: str, home: Path) -> subprocess.CompletedProcess[str]:
    path.write_text(text)
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        env=_env(home),
        cwd=path.parent,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ("interval=-5", "-5"),
        ('interval="abc"', "abc"),
        ('cron="61 * * * *"', "61 * * * *"),
        ('cron="* * * * *", interval=5', "cron"),
        ("interval=5, tags=5", "tags = 5"),
        ('interval=5, parameters={"nope": 1}', "nope"),
    ],
)
def test_a_bad_serve_argument_is_one_line_naming_it(
    tmp_path: Path, gnomon_home: Path, arguments: str, named: str
) -> None:
    script = "from gnomon import flow\n\n@flow\ndef f() -> None: ...\n\n"
    script += f"f.serve(name='bad', {arguments})\n"
    done = _run_script(tmp_path / "bad.py", script, gnomon_home)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("gnomon serve: ")
    assert named in line


def test_a_serve_whose_stdout_is_closed_still_stops_on_sigterm(
    tmp_path: Path, gnomon_home: Path
) -> None:
    # A reader that went away (`python job.py | head -3`): writing the starting message
    # fails; serve must not be left started and unstoppable, holding the store.
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    read, write = os.pipe()
    os.close(read)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=write,
        stderr=subprocess.DEVNULL,
        env=_env(gnomon_home),
        cwd=tmp_path,
    )
    os.close(write)
    try:
        wait_for(lambda: _listed(gnomon_home, "greet-often"), 60, "served")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) is not None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    status = gnomon_cli(gnomon_home, "daemon", "status")
    assert "not running" in status.stdout


def test_serve_beside_another_serving_script_says_to_stop_it(
    tmp_path: Path, gnomon_home: Path, served: tuple[Path, DaemonProcess]
) -> None:
    wait_for(lambda: _listed(gnomon_home, "greet-often"), 60, "served")
    done = _run_script(tmp_path / "other.py", SCRIPT.replace("greet-often", "other"), gnomon_home)
    assert done.returncode == 1
    assert "stop that script first" in done.stderr
    assert "gnomon daemon reload" not in done.stderr


def _listed(home: Path, name: str) -> bool | None:
    return name in gnomon_cli(home, "deployments", "list").stdout or None


# A serving script killed (SIGKILL, a power loss) cannot retire its deployments: they stay
# active under its source. Whoever holds the store's lock next knows it is not running.


def _kill(process: DaemonProcess, home: Path) -> None:
    """SIGKILL the serving script, then wait until the store's lock is free."""
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    status = lambda: "not running" in gnomon_cli(home, "daemon", "status").stdout  # noqa: E731
    wait_for(status, 60, "the killed script's lock to drop")


@pytest.fixture
def killed(gnomon_home: Path, store: Any, served: tuple[Path, DaemonProcess]) -> Path:
    """SCRIPT's path, once it served a run and was SIGKILLed: its greet-often is left
    active under its source, and no process holds the store."""
    script, process = served
    wait_for(lambda: completed_of(store, "greet-often"), 60, "a served run")
    _kill(process, gnomon_home)
    assert store.read_deployment("greet-often").active
    return script


def _greet_in_config(tmp_path: Path, schedule: str) -> Path:
    """A config file defining greet-often, on flows.py's tick."""
    table = f'[[deployments]]\nname = "greet-often"\nflow = "flows.py:tick"\n{schedule}\n'
    return write_config(tmp_path, table)


def _log_events(path: Path, kind: str) -> list[dict[str, Any]]:
    """The JSON log lines in ``path`` of event kind ``kind``."""
    lines = (line for line in path.read_text().splitlines() if line.startswith("{"))
    return [each for each in map(json.loads, lines) if each.get("event_kind") == kind]


def test_a_daemon_takes_over_and_fires_a_name_a_killed_script_left_scheduled(
    tmp_path: Path, gnomon_home: Path, store: Any, killed: Path, daemons: Any
) -> None:
    from gnomon.store import AuditAction

    config = _greet_in_config(tmp_path, 'interval = "1s"\nparameters = { label = "config" }')

    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)

    fired = lambda: [  # noqa: E731
        row for row in completed_of(store, "greet-often") if row.parameters == {"label": "config"}
    ]
    wait_for(fired, 60, "a run of the config's greet-often")
    assert store.read_deployment("greet-often").source == "config"
    old = f"serve:{killed.resolve()}"
    (warning,) = _log_events(daemon.output_path, "deployment_taken_over")
    assert (warning["level"], warning["deployment"]) == ("warning", "greet-often")
    assert (warning["old_source"], warning["new_source"]) == (old, "config")
    (entry,) = store.read_audit(action=AuditAction.TAKEOVER)
    assert (entry.target, entry.detail) == ("greet-often", {"from": old, "to": "config"})
    # The config file's now, which release refuses (asked while a daemon holds the store).
    refused = gnomon_cli(gnomon_home, "deployments", "release", "greet-often")
    assert refused.returncode == 1
    assert "the config file's" in refused.stderr
    assert store.read_deployment("greet-often").active


def test_another_script_serves_a_name_a_killed_script_left_scheduled(
    tmp_path: Path, gnomon_home: Path, store: Any, killed: Path
) -> None:
    other = start_script(tmp_path / "other.py", SCRIPT.replace('"served"', '"other"'), gnomon_home)
    try:
        mine = lambda: [  # noqa: E731
            row for row in completed_of(store, "greet-often") if row.parameters == {"who": "other"}
        ]
        wait_for(mine, 60, "a run served by the other script")
        assert (
            store.read_deployment("greet-often").source
            == f"serve:{(tmp_path / 'other.py').resolve()}"
        )
    finally:
        other.send_signal(signal.SIGTERM)
        _, stderr = other.communicate(timeout=60)
    assert other.returncode == 0, stderr
    (warning,) = _log_events(other.output_path, "deployment_taken_over")
    assert warning["old_source"] == f"serve:{killed.resolve()}"
    assert not store.read_deployment("greet-often").active  # retired by the clean stop


def test_release_retires_a_killed_scripts_deployment_and_is_refused_while_it_serves(
    tmp_path: Path, gnomon_home: Path, store: Any, served: tuple[Path, DaemonProcess]
) -> None:
    from gnomon.store import AuditAction

    script, process = served
    wait_for(lambda: _listed(gnomon_home, "greet-often"), 60, "served")

    refused = gnomon_cli(gnomon_home, "deployments", "release", "greet-often")
    assert refused.returncode == 1
    assert f"the script {script.resolve()} (serve) still serves" in refused.stderr
    assert f"pid {process.pid}" in refused.stderr
    assert store.read_deployment("greet-often").active

    _kill(process, gnomon_home)
    released = gnomon_cli(gnomon_home, "deployments", "release", "greet-often")

    assert released.returncode == 0, released.stderr
    assert "released: greet-often" in released.stdout
    assert not store.read_deployment("greet-often").active
    (entry,) = store.read_audit(action=AuditAction.RELEASE)
    assert (entry.target, entry.detail) == ("greet-often", {"source": f"serve:{script.resolve()}"})
    assert not _listed(gnomon_home, "greet-often")
    again = gnomon_cli(gnomon_home, "deployments", "release", "greet-often")
    assert again.returncode == 2  # no longer a scheduled deployment
    assert "greet-often" in again.stderr


def test_a_killed_script_serves_again_and_catches_up_what_it_missed(
    tmp_path: Path, gnomon_home: Path, store: Any
) -> None:
    """Its own source: nothing to take over. Killed, or stopped with pause_on_shutdown=False,
    its deployments stay scheduled, and the next serve catches up the fires missed."""
    from datetime import UTC, datetime

    script = tmp_path / "two.py"
    first = start_script(script, TWO, gnomon_home)
    wait_for(lambda: completed_of(store, "first-dep"), 60, "a run of first-dep")
    _kill(first, gnomon_home)

    for catch_ups in (1, 2):  # after the kill, then after a clean stop
        down_since = datetime.now(UTC)
        missed = lambda since=down_since: _seconds_since(since) > 2.5  # noqa: E731
        wait_for(missed, 10, "two missed fire times")
        again = start_script(script, TWO, gnomon_home)
        try:
            caught_up = lambda count=catch_ups: _catch_ups(store) >= count  # noqa: E731
            wait_for(caught_up, 60, f"catch-up run {catch_ups}")
        finally:
            again.send_signal(signal.SIGINT)
            _, stderr = again.communicate(timeout=60)
        assert again.returncode == 0, stderr
        assert "refused" not in stderr
        assert store.read_deployment("first-dep").active  # pause_on_shutdown=False


def _catch_ups(store: Any) -> int:
    """first-dep's catch-up runs (by the default policy, the latest fire missed; the others
    are recorded Missed)."""
    return sum(
        row.trigger == "catchup" and row.state_name != "Missed" for row in runs(store, "first-dep")
    )


def test_apply_with_no_daemon_takes_over_a_name_a_killed_script_left_scheduled(
    tmp_path: Path, gnomon_home: Path, store: Any, killed: Path
) -> None:
    from gnomon.store import AuditAction

    config = _greet_in_config(tmp_path, 'cron = "0 3 * * *"')

    applied = gnomon_cli(gnomon_home, "deployments", "apply", "--config", str(config))

    assert applied.returncode == 0, applied.stderr
    assert "added: greet-often" in applied.stdout
    assert f"taken over by the config file from the script {killed.resolve()}" in applied.stderr
    row = store.read_deployment("greet-often")
    assert (row.source, row.schedule) == ("config", "0 3 * * *")
    (entry,) = store.read_audit(action=AuditAction.TAKEOVER)
    assert (entry.origin, entry.target) == ("cli", "greet-often")
