"""What operators see and rely on around a real daemon, in real processes: files it creates
are private whatever the umask, another user cannot make the store unusable, failed runs
stand out in the logs and journald, a terminal shows one format, ``deployments list`` says
where the file and the daemon disagree, and notifications link to the API's real address.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, run_python
from gnomon.states import parse_state_filter
from gnomon.store import Store
from test_daemon import INTERVAL_TICK, DaemonProcess, completed, wait_for, write_config
from test_notify import Receiver

GNOMON = Path(sys.executable).with_name("gnomon")
NOBODY = 65534

FLOWS = textwrap.dedent(
    """
    import os
    from pathlib import Path
    from gnomon import flow, get_run_logger

    @flow(persist_result=True)
    def tick(label: str = "x") -> str:
        get_run_logger().info("tick %s", label)
        out = os.environ.get("FLOW_OUTPUT")
        if out:
            Path(out).write_text(label)  # the user's own file: the user's umask
        return label

    @flow
    def boom() -> None:
        get_run_logger().warning("about to fail")
        raise RuntimeError("boom")
    """
)

BROKEN = """
[[deployments]]
name = "broken"
flow = "flows.py:boom"
interval = "1s"
"""


def start(config: Path, home: Path, output: Path, **env: str) -> DaemonProcess:
    """A daemon whose own output files live outside ``home`` (so every file in the home is
    one gnomon made), started under umask 022 as from an ordinary shell."""
    (config.parent / "flows.py").write_text(FLOWS)
    environment = {**os.environ, "GNOMON_HOME": str(home), "GNOMON_LOG_FORMAT": "json", **env}
    environment["PYTHONPATH"] = str(REPO / "src")
    return DaemonProcess(
        [sys.executable, "-m", "gnomon.cli", "daemon", "--config", str(config)],
        output,
        env=environment,
        cwd=config.parent,
        preexec_fn=lambda: os.umask(0o022),
    )


def stop(daemon: DaemonProcess) -> str:
    daemon.send_signal(signal.SIGTERM)
    out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    return out


def gnomon(
    home: Path, *args: str, user: int | None = None, **options: Any
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``gnomon`` script on the store in ``home``; as ``user`` if given
    (with setpriv, which needs root)."""
    env = {**os.environ, "GNOMON_HOME": str(home), **options.pop("env", {})}
    return subprocess.run(
        [*as_user(user), str(GNOMON), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
        **options,
    )


def modes(root: Path) -> dict[str, int]:
    """Every file and directory under ``root`` (itself as "."), by relative path: its mode
    bits (setgid included)."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        mode = path.lstat().st_mode
        found[str(path.relative_to(root))] = stat.S_IMODE(mode)
    return found


@pytest.mark.slow
def test_a_daemon_under_umask_022_creates_every_file_private_and_flows_keep_the_umask(
    tmp_path: Path, daemons: list[Any]
) -> None:
    home = tmp_path / "state" / "home"  # neither exists: the daemon creates both
    flow_output = tmp_path / "flow-output.txt"
    config = write_config(
        tmp_path,
        INTERVAL_TICK,
        daemon='workers = 1\napi = "127.0.0.1:0"\nlog_file_max_bytes = "2KB"\nlog_file_keep = 2',
    )
    daemon = start(config, home, tmp_path / "daemon", FLOW_OUTPUT=str(flow_output))
    daemons.append(daemon)
    store = Store(f"sqlite:///{home / 'gnomon.db'}")
    try:
        wait_for(completed(store, "ticker", 2), what="two completed ticker runs")
        wait_for((home / "logs" / "gnomon.jsonl.1").exists, what="a rotated log")
        wal_seen = {name for name in ("gnomon.db-wal", "gnomon.db-shm") if (home / name).exists()}
        found = modes(home)
        stop(daemon)
    finally:
        store.close()

    assert wal_seen == {"gnomon.db-wal", "gnomon.db-shm"}  # checked while the daemon ran
    for must in (
        *("gnomon.db", "gnomon.db.writers", "gnomon.db.daemon.lock", "gnomon.db.daemon.status"),
        *("api-token", "results/.key", "logs"),
    ):
        assert must in found, sorted(found)
    assert any(name.startswith("results/") and "key" not in name for name in found)
    loose = {
        name: oct(mode)
        for name, mode in found.items()
        if mode != (0o700 if (home / name).is_dir() else 0o600)
    }
    assert loose == {}
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700  # made on the way
    # What the flow wrote itself is the user's business: umask 022 applies.
    assert stat.S_IMODE(flow_output.stat().st_mode) == 0o644


FLOW_RUN = """
import os
from gnomon import flow

@flow(persist_result=True)
def plain() -> int:
    open(os.environ["FLOW_OUTPUT"], "w").write("mine")
    return 42

os.umask(int(os.environ["TEST_UMASK"], 8))
assert plain() == 42
"""


def test_a_plain_flow_run_under_umask_022_creates_a_private_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_python(
        FLOW_RUN, home, TEST_UMASK="022", FLOW_OUTPUT=str(tmp_path / "flow-output.txt")
    )

    assert result.returncode == 0, result.stderr
    found = modes(home)
    assert {"gnomon.db", "results", "results/.key"} <= found.keys()
    assert {name: oct(mode) for name, mode in found.items() if mode & 0o077} == {}
    assert stat.S_IMODE((tmp_path / "flow-output.txt").stat().st_mode) == 0o644


def test_a_setgid_home_shares_the_store_with_its_group_read_only_but_never_the_key(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o2750)  # the operator's switch: share with the home's group
    result = run_python(
        FLOW_RUN, home, TEST_UMASK="077", FLOW_OUTPUT=str(tmp_path / "flow-output.txt")
    )

    assert result.returncode == 0, result.stderr
    found = modes(home)
    secret = {"results/.key"}
    for name, mode in found.items():
        path = home / name
        if name in secret:
            assert mode == 0o600, name
        elif path.is_dir():
            assert mode == 0o2750, (name, oct(mode))  # setgid: the rule carries down
        else:
            assert mode == 0o640, (name, oct(mode))  # exactly, though the umask was 077
    assert {"gnomon.db", "results"} <= found.keys()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory any user can reach (pytest's own temporary directories are root's
    alone), for a store another user owns or reads."""
    path = Path(tempfile.mkdtemp(prefix="gnomon-ops-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_user(uid: int | None) -> list[str]:
    """The command prefix that runs a command as ``uid`` and its group, with no others."""
    if uid is None:
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def root_or_skip() -> None:
    if os.geteuid() != 0:
        pytest.skip("switching users needs root: run the suite as root to check this")
    if shutil.which("setpriv") is None:
        pytest.skip("switching users needs setpriv (util-linux), which is not installed")
    probe = subprocess.run(
        [*as_user(NOBODY), sys.executable, "-c", "import gnomon"],
        capture_output=True,
        cwd="/",
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"uid {NOBODY} cannot run this Python: {probe.stderr.decode()[-200:]}")


SYNCED = """
from datetime import UTC, datetime
from gnomon.deployments import load_config, sync_deployments
from gnomon.store import get_store

store = get_store()
sync_deployments(store, load_config(check_flows=False).config.deployments, datetime.now(UTC))
store.close()
"""


def made_store(directory: Path) -> Path:
    """A store with the ticker deployment, made by this process's user."""
    home = directory / "home"
    config = write_config(directory, INTERVAL_TICK)
    result = run_python(SYNCED, home, GNOMON_CONFIG=str(config))
    assert result.returncode == 0, result.stderr
    return home


def owned_by(home: Path) -> set[int]:
    return {path.lstat().st_uid for path in [home, *home.rglob("*")]}


def test_a_command_that_changes_the_store_refuses_in_one_line_as_another_user(
    shared_dir: Path,
) -> None:
    root_or_skip()
    home = made_store(shared_dir)
    for path in [home, *home.rglob("*")]:
        os.lchown(path, NOBODY, NOBODY)  # a store the "gnomon" user owns; we are root
    # A write by root would create it again, root's: then no write of the owner could run.
    (home / "gnomon.db.writers").unlink()

    paused = gnomon(home, "pause", "ticker", cwd=shared_dir, env={"HOME": str(shared_dir)})
    applied = gnomon(
        home,
        "deployments",
        "apply",
        "--config",
        str(shared_dir / "gnomon.toml"),
        cwd=shared_dir,
    )
    listed = gnomon(home, "runs", "list", cwd=shared_dir)  # reading is allowed
    shown = gnomon(home, "deployments", "show", "ticker", cwd=shared_dir)

    for refused in (paused, applied):
        assert refused.returncode == 1
        (line,) = refused.stderr.strip().splitlines()
        assert "belongs to user nobody" in line
        assert "sudo -u nobody gnomon" in line
    assert (listed.returncode, shown.returncode) == (0, 0), listed.stderr + shown.stderr
    assert "ticker" in shown.stdout
    assert owned_by(home) == {NOBODY}  # nothing the owner could not open
    paused_by_owner = gnomon(
        home, "pause", "ticker", cwd=shared_dir, env={"HOME": str(shared_dir)}, user=NOBODY
    )
    assert paused_by_owner.returncode == 0, paused_by_owner.stderr


def test_another_user_who_cannot_read_the_store_is_told_so_in_one_line(
    shared_dir: Path,
) -> None:
    root_or_skip()
    home = made_store(shared_dir)  # root's, 0700

    for args in (("runs", "list"), ("pause", "ticker"), ("logs",)):
        result = gnomon(home, *args, cwd=shared_dir, env={"HOME": str(shared_dir)}, user=NOBODY)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert "permission denied for user nobody" in line or "belongs to user root" in line
    assert owned_by(home) == {0}


CONFIG_WITH_WARNER = """
[[deployments]]
name = "ticker"
flow = "flows.py:tick"
interval = "1s"

[[deployments]]
name = "broken"
flow = "flows.py:boom"
interval = "1s"
"""


@pytest.fixture(scope="module")
def journald_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A daemon whose stdout is "journald's stream" (JOURNAL_STREAM names its stdout file,
    as systemd does), left after a failed and a completed run: its home and its stdout."""
    root = tmp_path_factory.mktemp("journald")
    home = root / "home"
    config = write_config(root, CONFIG_WITH_WARNER)
    output = root / "daemon"
    stdout = output.with_suffix(".stdout")
    stdout.touch()
    status = stdout.stat()
    daemon = start(config, home, output, JOURNAL_STREAM=f"{status.st_dev}:{status.st_ino}")
    store = Store(f"sqlite:///{home / 'gnomon.db'}")
    try:
        wait_for(completed(store, "ticker", 1), what="a completed ticker run")
        wait_for(
            lambda: store.read_runs("broken", parse_state_filter("failed")), what="a failed run"
        )
        out = stop(daemon)
        yield home, out
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate(timeout=10)
        store.close()


@pytest.mark.slow
def test_a_failed_runs_summary_is_an_error_that_logs_level_warning_shows(
    journald_daemon: tuple[Path, str],
) -> None:
    home, _ = journald_daemon
    result = gnomon(home, "logs", "--level", "WARNING", "--json", "-n", "1000")

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summaries = [line for line in lines if line["extra"].get("event_kind") == "run_summary"]
    assert summaries, lines
    assert {line["deployment"] for line in summaries} == {"broken"}  # not the completed ones
    assert {line["level"] for line in summaries} == {"ERROR"}
    assert all(line["message"] == "run finished: broken Failed" for line in summaries)


@pytest.mark.slow
def test_on_journald_each_line_carries_its_level_as_the_priority_prefix(
    journald_daemon: tuple[Path, str],
) -> None:
    _, out = journald_daemon
    prefixed = [re.fullmatch(r"<(\d)>(\{.*\})", line) for line in out.splitlines()]
    unprefixed = [line for line in out.splitlines() if not re.fullmatch(r"<\d>\{.*\}", line)]
    assert unprefixed == []
    by_event = {}
    for match in prefixed:
        assert match is not None
        line = json.loads(match[2])
        by_event.setdefault(line["event"], set()).add(int(match[1]))
    assert by_event["run finished: broken Failed"] == {3}  # err
    assert by_event["run finished: ticker Completed"] == {6}  # info
    assert by_event["about to fail"] == {4}  # a worker's line: warning


@pytest.mark.slow
def test_a_workers_line_on_a_terminal_looks_like_the_daemons_own(
    tmp_path: Path, daemons: list[Any]
) -> None:
    config = write_config(tmp_path, INTERVAL_TICK)
    (tmp_path / "flows.py").write_text(FLOWS)
    primary, secondary = pty.openpty()
    env = {**os.environ, "GNOMON_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    env["GNOMON_LOG_FORMAT"] = "auto"  # a terminal: text, not JSON
    env["PYTHONPATH"] = str(REPO / "src")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "gnomon.cli", "daemon", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=tmp_path,
    )
    daemons.append(daemon)
    os.close(secondary)
    text = ""
    deadline = time.monotonic() + 30
    try:
        while "tick hello" not in text or "run finished: ticker Completed" not in text:
            assert time.monotonic() < deadline, text
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                text += os.read(primary, 65536).decode(errors="replace")
        daemon.send_signal(signal.SIGTERM)
        while True:  # drain, so the daemon never blocks on a full terminal
            ready, _, _ = select.select([primary], [], [], 0.5)
            try:
                chunk = os.read(primary, 65536) if ready else b""
            except OSError:  # the daemon closed its end
                break
            if not chunk and daemon.poll() is not None:
                break
            text += chunk.decode(errors="replace")
    finally:
        os.close(primary)
    assert daemon.wait(timeout=30) == 0

    lines = [line for line in text.replace("\r", "").splitlines() if line.strip()]
    assert not [line for line in lines if line.lstrip().startswith("{")]  # no raw JSON
    shape = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z \[(\w+)\s*\] (.+?)\s+\[([\w.]+)\]")
    flow_line = next(line for line in lines if "tick hello" in line)
    daemon_line = next(line for line in lines if "run finished: ticker Completed" in line)
    flow_match, daemon_match = shape.match(flow_line), shape.match(daemon_line)
    assert flow_match is not None, flow_line
    assert daemon_match is not None, daemon_line
    assert flow_match.group(3) == "gnomon.flow_runs"
    assert daemon_match.group(3) == "gnomon.daemon"
    assert "worker_pid=" in flow_line  # the relay's fields, as key=value like the daemon's


DRIFTING = """
[[deployments]]
name = "steady"
flow = "flows.py:tick"
interval = "1h"

[[deployments]]
name = "edited"
flow = "flows.py:tick"
interval = "1h"

[[deployments]]
name = "dropped"
flow = "flows.py:tick"
cron = "0 3 * * *"
"""


def listing(home: Path, config: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str], str]:
    """``deployments list`` as JSON and as a table (name -> CONFIG cell), and its stderr."""
    as_json = gnomon(home, "deployments", "list", "--config", str(config), "--json")
    table = gnomon(home, "deployments", "list", "--config", str(config))
    assert (as_json.returncode, table.returncode) == (0, 0), as_json.stderr + table.stderr
    header, *rows = (re.split(r"\s{2,}", line.strip()) for line in table.stdout.splitlines())
    assert header[-1] == "CONFIG"
    cells = {row[0]: row[-1] for row in rows}
    return {item["name"]: item for item in json.loads(as_json.stdout)}, cells, as_json.stderr


@pytest.mark.slow
def test_deployments_list_says_where_the_edited_file_and_the_running_daemon_disagree(
    tmp_path: Path, daemons: list[Any]
) -> None:
    home = tmp_path / "home"
    config = write_config(tmp_path, DRIFTING)
    daemon = start(config, home, tmp_path / "daemon")
    daemons.append(daemon)
    store = Store(f"sqlite:///{home / 'gnomon.db'}")
    try:
        wait_for(lambda: len(store.read_deployments()) == 3, what="the daemon's deployments")
        agreed, agreed_cells, _ = listing(home, config)
        config.write_text(
            config.read_text()
            .replace(
                'name = "edited"\nflow = "flows.py:tick"\ninterval = "1h"',
                'name = "edited"\nflow = "flows.py:tick"\ninterval = "2h"',
            )
            .replace('name = "dropped"', 'name = "added"')
        )
        listed, cells, stderr = listing(home, config)
        daemon.send_signal(signal.SIGHUP)  # the reload the list advises
        wait_for(
            lambda: listing(home, config)[1] == {"steady": "ok", "edited": "ok", "added": "ok"},
            what="file and daemon agreeing after the reload",
        )
        stop(daemon)
        after_stop = gnomon(home, "deployments", "list", "--config", str(config))
    finally:
        store.close()

    assert agreed_cells == {"steady": "ok", "edited": "ok", "dropped": "ok"}
    assert all(item["config_drift"] is None and item["loaded"] for item in agreed.values())
    assert cells == {
        "steady": "ok",
        "edited": "changed: schedule",
        "added": "not loaded",
        "dropped": "not in file",
    }
    assert (listed["edited"]["config_drift"], listed["edited"]["changed_fields"]) == (
        "changed",
        ["schedule"],
    )
    assert listed["edited"]["schedule"] == "interval 1h"  # what the daemon still fires
    assert listed["edited"]["next_fire"] is not None
    assert (listed["added"]["loaded"], listed["added"]["in_config"]) == (False, True)
    assert listed["added"]["next_fire"] is None  # nothing fires it yet
    assert (listed["dropped"]["loaded"], listed["dropped"]["in_config"]) == (True, False)
    assert listed["dropped"]["config_drift"] == "not_in_config"
    assert "3 deployment(s) differ" in stderr
    assert "gnomon daemon reload" in stderr
    assert after_stop.returncode == 0, after_stop.stderr
    assert "no daemon is running on this store" in after_stop.stderr
    assert "steady" in after_stop.stdout


def test_deployments_list_with_a_config_that_does_not_parse_shows_the_store_alone(
    tmp_path: Path,
) -> None:
    home = made_store(tmp_path)
    config = tmp_path / "gnomon.toml"
    config.write_text(config.read_text().replace("[[deployments]]", "[[deployments]", 1))

    listed = gnomon(home, "deployments", "list", "--config", str(config), "--json")

    assert listed.returncode == 0, listed.stderr
    (ticker,) = json.loads(listed.stdout)
    # Not "not in file": what the file holds is unknown, not removed.
    assert (ticker["name"], ticker["loaded"], ticker["in_config"]) == ("ticker", True, None)
    assert ticker["config_drift"] is None
    assert "invalid TOML" in listed.stderr
    assert "cannot compare with" in listed.stderr


NOTIFY = """
[[notify]]
name = "ops"
url_env = "OPS_HOOK"
events = ["failed"]
"""


@pytest.mark.slow
def test_a_notification_links_to_the_apis_real_address_and_the_link_answers(
    tmp_path: Path, daemons: list[Any]
) -> None:
    receiver = Receiver()
    home = tmp_path / "home"
    config = write_config(tmp_path, BROKEN + NOTIFY, daemon='workers = 1\napi = "0.0.0.0:0"')
    daemon = start(config, home, tmp_path / "daemon", OPS_HOOK=receiver.url("hook"))
    daemons.append(daemon)
    try:
        (post,) = receiver.wait_for(1)
        token = (home / "api-token").read_text().strip()
        link = post["json"]["url"]
        run_id = post["json"]["run_id"]
        match = re.fullmatch(r"http://([^:/]+):(\d+)/runs/([0-9a-f]{32})", link)
        assert match is not None, link
        # A wildcard bind is where the server listens, not where anyone reaches it.
        assert match[1] == socket.gethostname()
        assert match[3] == run_id
        assert f"<{link}|run {run_id[:8]}>" in post["json"]["text"]
        # The link is the run's dashboard page: without a session, the login first, and
        # the run page after it (the browser tests follow it); the JSON stays under /api/v1.
        local = f"http://127.0.0.1:{match[2]}/runs/{run_id}"
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(urllib.request.Request(local, headers={"Authorization": f"Bearer {token}"}))
        with redirect.value:
            assert redirect.value.code == 303
            assert redirect.value.headers["Location"] == f"/login?next=%2Fruns%2F{run_id}"
        api = f"http://127.0.0.1:{match[2]}/api/v1/runs/{run_id}"
        request = urllib.request.Request(api, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as followed:
            run = json.loads(followed.read())
        assert (run["id"], run["state"], run["deployment"]) == (run_id, "Failed", "broken")
        stop(daemon)
    finally:
        receiver.close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def test_logs_are_printed_in_time_order_though_stored_out_of_order(store: Any) -> None:
    base = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    # Stored in this order (ids ascending), as a late batch from another process would be.
    for seconds, message in [(0, "a"), (5, "d"), (2, "b"), (2, "c"), (9, "e")]:
        store.add_log(
            {
                "flow_run_id": None,
                "task_run_id": None,
                "timestamp": base + timedelta(seconds=seconds),
                "level": 20,
                "logger": "gnomon.daemon",
                "message": message,
                "extra": {},
                "deployment_name": "etl",
            }
        )
    store.flush()
    home = Path(os.environ["GNOMON_HOME"])

    printed = gnomon(home, "logs", "--json")
    last_three = gnomon(home, "logs", "-n", "3", "--deployment", "etl")

    assert printed.returncode == 0, printed.stderr
    assert [json.loads(line)["message"] for line in printed.stdout.splitlines()] == list("abcde")
    # The newest three by time, though "b" and "c" were stored after "d".
    assert [line.split()[-1] for line in last_three.stdout.splitlines()] == ["c", "d", "e"]
    # The store's own query (the API's) agrees with the command line's fast path.
    from gnomon.store import LogQuery

    rows = store.search_logs(LogQuery(deployment="etl"), 100, newest=True)
    assert [row.message for row in rows] == list("abcde")


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8787, "http://127.0.0.1:8787"),
        ("0.0.0.0", 8787, "http://box.example:8787"),
        ("::", 9000, "http://box.example:9000"),
        ("::1", 8787, "http://[::1]:8787"),
        ("gnomon.internal", 80, "http://gnomon.internal:80"),
    ],
)
def test_the_public_url_defaults_to_where_the_api_is_reached(
    host: str, port: int, url: str
) -> None:
    from gnomon._bind import public_url_for

    assert public_url_for(host, port, "box.example") == url


def test_with_no_api_and_no_public_url_a_notification_carries_no_link() -> None:
    from gnomon.daemon._notify import missed_event

    event = missed_event("etl", datetime(2026, 3, 1, tzinfo=UTC), run_id="ab" * 16)

    assert event.payload(None)["url"] is None
    assert event.text(None) == ":warning: etl missed its 2026-03-01T00:00:00+00:00 fire"
    assert event.payload("https://g.example/")["url"] == f"https://g.example/runs/{'ab' * 16}"
