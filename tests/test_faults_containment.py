"""Every run is contained: what a run starts ends with it (timed out, cancelled, shut down
or finished), its memory and its log are capped while it runs, and the lines its worker
wrote right before a crash are stored. Real daemon subprocesses, real child processes and
signals, a real SQLite store; each test ends with the invariants users rely on."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import logs_of
from faults import assert_store_sound
from gnomon.daemon._containment import Containment
from gnomon.deployments import ContainmentMode
from gnomon.store import Store
from gnomon.store.rows import FlowRunRow
from test_cli_daemon import gnomon
from test_daemon import DaemonProcess, runs, start_daemon, wait_for, write_config

pytestmark = pytest.mark.slow

FLOWS = textwrap.dedent(
    '''
    import ctypes, os, subprocess, sys, time
    from gnomon import flow, get_run_logger

    # A child that forks a grandchild in a new session and exits at once: the grandchild,
    # orphaned in a session of its own, ignores SIGTERM and writes its pid.
    DOUBLE_FORK = """
    import os, signal, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with open(sys.argv[1], "a") as pids:
                pids.write(f"{os.getpid()}\\\\n")
            time.sleep(600)
        os._exit(0)
    os.wait()
    """

    @flow
    def spawner(pids: str, seconds: float = 600) -> None:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(pids, "a") as out:
            out.write(f"{child.pid}\\n")
        subprocess.run([sys.executable, "-c", DOUBLE_FORK, pids], check=True)
        deadline = time.monotonic() + 30
        while len(open(pids).read().split()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(seconds)

    @flow
    def leaks(step_mb: int = 10) -> None:
        hoard = []
        while True:
            hoard.append(b"x" * (step_mb * 1_000_000))
            time.sleep(0.02)

    @flow
    def chatty(lines: int = 100_000, width: int = 1000) -> None:
        line = "x" * width
        for _ in range(lines):
            print(line)

    @flow
    def verbose(lines: int = 20_000) -> None:
        logger = get_run_logger()
        for number in range(lines):
            logger.info("line %d", number)

    @flow
    def segfaults() -> None:
        logger = get_run_logger()
        print("printed before the crash")
        for number in range(20):
            logger.info("last words %d", number)
        ctypes.string_at(0)

    @flow
    def tick() -> None:
        pass
    '''
)


def on_request(name: str, flow: str, policies: str = "") -> str:
    """A deployment that runs only when asked to (its interval is an hour)."""
    return (
        f'\n[[deployments]]\nname = "{name}"\nflow = "contained.py:{flow}"\ninterval = "1h"\n'
        f"{policies}\n"
    )


def spawner(pids: Path, seconds: float = 600, policies: str = "") -> str:
    """The spawner flow's deployment, writing its children's pids to ``pids``."""
    return on_request(
        "spawner", "spawner", f'parameters = {{ pids = "{pids}", seconds = {seconds} }}\n{policies}'
    )


class Operator:
    """Starts daemons over the flows above and asks them for runs, as an operator does."""

    def __init__(self, tmp_path: Path, home: Path, daemons: list[DaemonProcess]) -> None:
        self.tmp_path, self.home, self.daemons = tmp_path, home, daemons
        self.config = tmp_path / "gnomon.toml"
        self.cgroup: Path | None = None  # where its daemons start (default: the test's)

    def start(self, deployments: str = "", daemon: str = "workers = 1") -> DaemonProcess:
        """A daemon on these deployments, once it is ready (the same config, if none)."""
        if deployments:
            (self.tmp_path / "contained.py").write_text(FLOWS)
            self.config = write_config(self.tmp_path, deployments, daemon)
            if "shutdown_grace" in daemon:  # instead of write_config's own
                text = self.config.read_text().replace('shutdown_grace = "5s"\n', "", 1)
                self.config.write_text(text)
        process = start_daemon(self.config, self.home, cgroup=self.cgroup)
        self.daemons.append(process)
        for line in process.output_lines(timeout=60):
            if "daemon ready" in line:
                return process
        process.kill()
        raise AssertionError(f"the daemon did not start: {process.communicate()}")

    def spawn(
        self, policies: str = "", daemon: str = "workers = 1"
    ) -> tuple[DaemonProcess, str, list[int]]:
        """A daemon running the spawner flow once its child and grandchild run: the daemon,
        the run's id, and their pids."""
        pids_file = self.tmp_path / "pids"
        process = self.start(spawner(pids_file, policies=policies), daemon=daemon)
        run_id = self.run("spawner")
        return process, run_id, spawned(pids_file)

    def run(self, name: str) -> str:
        """Ask for a run of ``name`` (``gnomon run``); its id."""
        result = gnomon(self.home, "run", name, "--config", str(self.config))
        assert result.returncode == 0, result.stderr
        return re.search(r"run ([0-9a-f]{32})", result.stdout).group(1)  # type: ignore[union-attr]


@pytest.fixture
def operator(tmp_path: Path, gnomon_home: Path, daemons: list) -> Operator:
    return Operator(tmp_path, gnomon_home, daemons)


def state_of(store: Store, run_id: str) -> str | None:
    row = store.read_flow_run(run_id)
    return row.state_name if row else None


def final(store: Store, run_id: str) -> FlowRunRow:
    """The run once it has a final state."""
    wait_for(
        lambda: getattr(store.read_flow_run(run_id), "end_time", None) is not None,
        timeout=60,
        what=f"run {run_id} to end",
    )
    return store.read_flow_run(run_id)  # type: ignore[return-value]


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def spawned(pids: Path) -> list[int]:
    """The child's and the double-forked grandchild's pids, once both are running."""
    wait_for(
        lambda: pids.exists() and len(pids.read_text().split()) == 2,
        what="the flow's child and grandchild",
    )
    found = [int(pid) for pid in pids.read_text().split()]
    assert all(map(running, found))
    return found


def none_running(pids: list[int]) -> None:
    wait_for(lambda: not any(map(running, pids)), timeout=10, what=f"{pids} to be gone")


def stop(daemon: DaemonProcess) -> str:
    """SIGTERM the daemon and wait for it; its stdout."""
    daemon.send_signal(signal.SIGTERM)
    out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    return out


def assert_invariants(store: Store, home: Path) -> None:
    """Nothing left Running or Pending, no run with two final states, an intact store."""
    assert_store_sound(home / "gnomon.db")


def cgroups_work() -> bool:
    """Whether this machine lets a daemon contain workers in cgroups (the test reaches the
    private module to ask as the daemon does)."""
    containment = Containment.detect()
    containment.close()
    return containment.mechanism is ContainmentMode.CGROUP


def containment_of(daemon: DaemonProcess) -> str:
    """The mechanism the daemon said it uses, from its one "worker containment" line."""
    lines = [
        json.loads(line)
        for line in daemon.output_path.read_text().splitlines()
        if '"worker containment' in line
    ]
    assert len(lines) == 1, lines
    return str(lines[0]["containment"])


@pytest.mark.parametrize("mechanism", ["cgroup", "subreaper"])
def test_a_timed_out_run_leaves_none_of_its_processes_behind(
    operator: Operator, gnomon_home: Path, store: Store, mechanism: str
) -> None:
    if mechanism == "cgroup" and not cgroups_work():
        pytest.skip("this machine gives the daemon no writable cgroup v2 group")
    daemon, run_id, pids = operator.spawn(
        'timeout = "3s"', daemon=f'workers = 1\ncontainment = "{mechanism}"'
    )

    assert final(store, run_id).state_name == "TimedOut"
    none_running(pids)
    stop(daemon)
    assert containment_of(daemon) == mechanism
    assert_invariants(store, gnomon_home)


def test_a_cancelled_run_leaves_none_of_its_processes_behind(
    operator: Operator, gnomon_home: Path, store: Store
) -> None:
    daemon, run_id, pids = operator.spawn()

    cancel = gnomon(gnomon_home, "runs", "cancel", run_id, "--config", str(operator.config))

    assert cancel.returncode == 0, cancel.stderr
    assert final(store, run_id).state_name == "Cancelled"
    none_running(pids)
    stop(daemon)
    assert_invariants(store, gnomon_home)


def test_a_run_still_going_when_the_daemon_stops_leaves_none_of_its_processes_behind(
    operator: Operator, gnomon_home: Path, store: Store
) -> None:
    daemon, run_id, pids = operator.spawn(daemon='workers = 1\nshutdown_grace = "1s"')

    stop(daemon)

    assert state_of(store, run_id) == "Cancelled"
    none_running(pids)
    assert_invariants(store, gnomon_home)


def test_what_a_finished_run_left_running_is_killed_and_said_so_in_its_logs(
    operator: Operator, tmp_path: Path, gnomon_home: Path, store: Store
) -> None:
    pids_file = tmp_path / "pids"
    daemon = operator.start(spawner(pids_file, seconds=0))

    run_id = operator.run("spawner")

    assert final(store, run_id).state_name == "Completed"
    pids = [int(pid) for pid in pids_file.read_text().split()]
    assert len(pids) == 2
    none_running(pids)  # gone before the worker took another run
    wait_for(
        lambda: any("left 2 processes running" in row.message for row in logs_of(store, run_id)),
        what="the warning about the leftovers stored with the run",
    )
    stop(daemon)
    assert_invariants(store, gnomon_home)


@pytest.fixture
def service_cgroup() -> Iterator[Path]:
    """A cgroup v2 group of its own beside the test's, as systemd gives each service one."""
    containment = Containment.detect()
    containment.close()
    if containment.mechanism is not ContainmentMode.CGROUP:
        pytest.skip("only the workers' cgroups outlive a killed daemon to say what is left")
    own = Path(f"/proc/{os.getpid()}/cgroup").read_text().split("0::", 1)[1].split()[0]
    mount = next(
        Path(line.split()[4])
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if " - cgroup2 " in line
    )
    group = mount / own.lstrip("/") / f"service-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    yield group
    wait_for(lambda: _removed(group), timeout=10, what=f"{group} to empty")


def _removed(group: Path) -> bool:
    for child in [*group.glob("*/*/"), *group.glob("*/")]:
        with contextlib.suppress(OSError):
            child.rmdir()
    try:
        group.rmdir()
    except OSError:
        return False
    return True


def test_what_runs_started_is_ended_by_the_next_daemon_after_a_sigkill(
    operator: Operator, gnomon_home: Path, store: Store, service_cgroup: Path
) -> None:
    # Any daemon that starts sweeps what dead daemons left in its cgroup: in the test's own
    # group, another test's daemon could sweep it first and say so in its own log.
    operator.cgroup = service_cgroup
    daemon, run_id, pids = operator.spawn()
    # A worker that outlives its daemon for a moment ends its run's processes itself (end of
    # file on its stdin); stopped, it cannot, as when it is killed together with the daemon.
    worker = store.read_flow_run(run_id).worker_pid  # type: ignore[index]
    os.kill(worker, signal.SIGSTOP)

    daemon.kill()
    daemon.wait(timeout=30)
    os.kill(worker, signal.SIGKILL)
    assert any(map(running, pids))
    restarted = operator.start()

    none_running(pids)
    said = re.search(
        r"ended (\d+) processes that the runs of a dead daemon", restarted.output_path.read_text()
    )
    assert said, "the restarted daemon did not say what it ended"
    assert int(said.group(1)) >= len(pids)
    assert final(store, run_id).state_name == "Crashed"
    stop(restarted)
    assert_invariants(store, gnomon_home)


def test_a_run_above_its_memory_limit_is_crashed_while_other_deployments_keep_running(
    operator: Operator, gnomon_home: Path, store: Store
) -> None:
    ticker = '\n[[deployments]]\nname = "ticker"\nflow = "contained.py:tick"\ninterval = "1s"\n'
    daemon = operator.start(
        on_request("leaky", "leaks", 'memory_limit = "200MB"') + ticker, daemon="workers = 2"
    )

    crashed = final(store, operator.run("leaky"))

    assert crashed.state_name == "Crashed"
    message = crashed.state_message
    match = re.fullmatch(r"memory limit 200 MB exceeded: (\d+) MB", message)
    assert match, message
    assert 200 < int(match.group(1)) < 1000
    after = crashed.end_time
    wait_for(
        lambda: any(
            row.state_name == "Completed" and row.start_time > after
            for row in runs(store, "ticker")
        ),
        what="the ticker to run after the crash",
    )
    stop(daemon)
    assert_invariants(store, gnomon_home)


def test_a_run_printing_100_mb_stores_and_relays_only_its_cap(
    operator: Operator, gnomon_home: Path, store: Store
) -> None:
    daemon = operator.start(on_request("chatty", "chatty", "max_log_lines = 1000"))
    log_file = gnomon_home / "logs" / "gnomon.jsonl"
    before = log_file.stat().st_size, daemon.output_path.stat().st_size

    run_id = operator.run("chatty")

    assert final(store, run_id).state_name == "Completed"
    out = stop(daemon)
    printed = [row for row in logs_of(store, run_id) if row.logger == "gnomon.worker.output"]
    truncations = [row for row in printed if row.message.startswith("log truncated")]
    assert len(printed) == 1001
    assert [row.message for row in truncations] == [
        "log truncated: the run's output reached max_log_lines = 1000 lines; the rest is dropped"
    ]
    # A thousand lines of a thousand bytes, as JSON: about a megabyte, not a hundred.
    assert log_file.stat().st_size - before[0] < 3_000_000
    assert daemon.output_path.stat().st_size - before[1] < 3_000_000
    relayed = [line for line in out.splitlines() if run_id in line and "xxxx" in line]
    assert len(relayed) == 1000
    assert out.count("log truncated") == 1
    assert_invariants(store, gnomon_home)


def test_a_run_logging_past_its_cap_stores_the_cap_and_one_truncation_line(
    operator: Operator, gnomon_home: Path, store: Store
) -> None:
    daemon = operator.start(
        on_request("verbose", "verbose"), daemon="workers = 1\nmax_log_lines = 500"
    )

    run_id = operator.run("verbose")

    assert final(store, run_id).state_name == "Completed"
    out = stop(daemon)
    logged = [row for row in logs_of(store, run_id) if row.logger == "gnomon.flow_runs"]
    assert [row.message for row in logged[:2]] == ["line 0", "line 1"]
    assert logged[499].message == "line 499"
    assert [row.message for row in logged[500:]] == [
        "log truncated: the run reached 500 lines (max_log_lines);"
        " the rest of what it logs is dropped"
    ]
    assert sum(run_id in line and '"line ' in line for line in out.splitlines()) == 500
    assert_invariants(store, gnomon_home)


def test_the_lines_a_worker_wrote_right_before_it_segfaulted_are_stored(
    operator: Operator, gnomon_home: Path, store: Store
) -> None:
    daemon = operator.start(on_request("segfaults", "segfaults"))

    run_id = operator.run("segfaults")
    crashed = final(store, run_id)

    assert (crashed.state_name, crashed.signal) == ("Crashed", "SIGSEGV")
    expected = ["printed before the crash", *(f"last words {n}" for n in range(20))]

    def stored() -> list[str]:
        return [row.message for row in logs_of(store, run_id)]

    wait_for(lambda: set(expected) <= set(stored()), what=f"{expected} stored")
    messages = stored()
    assert [message for message in messages if message.startswith("last words")] == expected[1:]
    assert any("Segmentation fault" in message for message in messages)  # faulthandler's
    stop(daemon)
    assert_invariants(store, gnomon_home)
