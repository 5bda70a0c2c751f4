"""The network-namespace fixture (``netns.py``) proved on gnomon itself: the command line
in a namespace reaches the private PostgreSQL over its veth link; cut off, it fails in one
line within its connection timeout instead of hanging; linked again, it works. And a
statement in flight when the link goes fails within the store's TCP timeout rather than
after the kernel's ~15 minutes of retransmissions."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
from gnomon.store import HEAD_REVISION, store_name

pytestmark = pytest.mark.slow

# Bounds, not timings: the store gives up on a silent server after 10 s (connecting) or
# 25 s (a statement in flight); these only keep a hang from stalling the suite.
CONNECT_BOUND = 60
IN_FLIGHT_BOUND = 80  # under the suite's per-test timeout


def namespace_env(url: str, home: Path) -> dict[str, str]:
    paths = [str(REPO / "src"), os.environ.get("PYTHONPATH")]
    return {
        **os.environ,
        "GNOMON_DATABASE_URL": url,
        "GNOMON_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(filter(None, paths)),
    }


def gnomon_in(netns, home: Path, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """``gnomon ARGS`` run in the fixture's namespace, on its database."""
    process = netns.run_in_namespace(
        [sys.executable, "-m", "gnomon.cli", *args],
        namespace_env(netns.url, home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = process.communicate(timeout=CONNECT_BOUND)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"gnomon {' '.join(args)} hung past {CONNECT_BOUND} s") from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_the_command_line_in_a_cut_off_namespace_fails_in_one_line_and_recovers(
    netns, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    upgraded = gnomon_in(netns, home, "db", "upgrade")
    assert (upgraded.returncode, upgraded.stdout) == (
        0,
        f"store migrated from empty to {HEAD_REVISION}\n",
    ), upgraded.stderr
    assert gnomon_in(netns, home, "runs", "list").returncode == 0

    netns.cut()
    try:
        for command in (["runs", "list"], ["deployments", "list"]):  # fast path, Store
            cut_off = gnomon_in(netns, home, *command)
            assert cut_off.returncode == 1
            assert cut_off.stderr.startswith(f"Error: store {store_name(netns.url)}: "), (
                cut_off.stderr
            )
            assert "timeout" in cut_off.stderr
            assert cut_off.stderr.count("\n") == 1  # one line, no traceback
        import psycopg  # the cut is the namespace's: the root namespace still reaches it

        with psycopg.connect(netns.url.replace("+psycopg", ""), connect_timeout=5) as direct:
            assert direct.execute("SELECT 1").fetchone() == (1,)
    finally:
        netns.restore()

    restored = gnomon_in(netns, home, "runs", "list")
    assert restored.returncode == 0, restored.stderr


IN_FLIGHT = textwrap.dedent(
    """
    import sys
    from gnomon.store import get_store, store_fault
    store = get_store()
    store.read_runs(limit=1)
    print("connected", flush=True)
    sys.stdin.readline()  # the test cuts the link meanwhile
    try:
        store.read_runs(limit=1)
    except Exception as error:
        print("failed:", store_fault(error, store.url), flush=True)
    """
)


def test_a_statement_in_flight_when_the_link_goes_fails_instead_of_hanging(
    netns, tmp_path: Path
) -> None:
    """Keepalives probe only idle connections; a statement sent into a dead link is
    bounded by the store's TCP user timeout."""
    reader = netns.run_in_namespace(
        [sys.executable, "-c", IN_FLIGHT],
        namespace_env(netns.url, tmp_path / "home"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert reader.stdout.readline() == "connected\n", reader.stderr.read()
        netns.cut()
        reader.stdin.write("go\n")
        reader.stdin.flush()
        out, err = reader.communicate(timeout=IN_FLIGHT_BOUND)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the statement hung past {IN_FLIGHT_BOUND} s") from None
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.communicate()
        netns.restore()
    # The pool's pre-ping times out, then its new connection: either is the fault told.
    assert out.startswith("failed: "), (out, err)
    assert "timeout" in out or "timed out" in out, out


LEFT_BEHIND = textwrap.dedent(
    """
    import subprocess, time
    from pathlib import Path
    from netns import private_network
    with private_network() as network:
        link = Path(f"/sys/class/net/{network.bridge}/ifindex").read_text().strip()
        # A daemon the test left (its output not in the test's pipe, which it would hold).
        sleeper = network.run_in_namespace(["sleep", "600"], stdout=subprocess.DEVNULL)
        print(link, sleeper.pid, network.url, flush=True)
        time.sleep(600)
    """
)


def test_a_network_left_by_a_killed_test_process_is_taken_down_by_the_next(
    tmp_path: Path,
) -> None:
    """A suite killed mid-test (a CI timeout) leaves no PostgreSQL running, and its
    namespaces, what runs in them, and its links go at the next use of the fixture (which
    may reuse their names)."""
    import psycopg

    from netns import private_network, require_namespaces
    from test_daemon import wait_for

    require_namespaces()
    env = namespace_env("", tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), env["PYTHONPATH"]])
    left = subprocess.Popen(
        [sys.executable, "-c", LEFT_BEHIND], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        link, sleeper, url = left.stdout.readline().split()
    finally:
        left.kill()
        left.communicate()

    def refused() -> bool:
        try:
            psycopg.connect(url.replace("+psycopg", ""), connect_timeout=2).close()
        except psycopg.OperationalError:
            return True
        return False

    wait_for(refused, timeout=30, what="its PostgreSQL to quit with it")
    with private_network():
        assert link not in interface_indexes()
    assert ended(int(sleeper))  # killed with its namespace


def interface_indexes() -> set[str]:
    """The indexes of this namespace's network interfaces (one that another test takes
    down while they are read is left out)."""
    found = set()
    for path in Path("/sys/class/net").glob("*/ifindex"):
        with contextlib.suppress(OSError):
            found.add(path.read_text().strip())
    return found


def ended(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie (an orphan may be this process's to reap, if an
    earlier test made it a subreaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")
