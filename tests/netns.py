"""Hosts cut off from the database: network namespaces linked to a private PostgreSQL.

For the tests of several daemons on several hosts (issue 19): each "host" is a network
namespace (``ip netns``) joined by a veth pair to a bridge in the root namespace, where a
PostgreSQL instance of the test's own listens on the bridge's address. ``cut()`` takes a
namespace's link down, as a pulled cable or a partition would: its packets are dropped
(not refused), so a connection attempt waits for its timeout and an open connection is
found dead by TCP keepalives; ``restore()`` brings it back.

Use it through the ``netns`` fixture (``conftest.py``)::

    def test_a_cut_host(netns):
        host = netns.namespaces[0]
        env = {**os.environ, "GNOMON_DATABASE_URL": netns.url, "GNOMON_HOME": str(home)}
        daemon = host.run([sys.executable, "-m", "gnomon.cli", "daemon"], env)
        ...
        host.cut()      # the daemon's host loses the database
        host.restore()  # and gets it back

or ``private_network(namespaces=3)`` for several hosts on one database. ``netns.url`` is
how every namespace reaches the database (``postgresql+psycopg://postgres@10.200.N.1:PORT/
postgres``, trust authentication); the test itself reaches it the same way from the root
namespace, which no cut affects.

Everything is made as root and taken down at the end even when the test fails: the
processes left in the namespaces are killed, the namespaces, links and bridge removed, and
PostgreSQL stopped (it also gets SIGQUIT if the test process dies). Where namespaces cannot
be made (not root, no ``ip``, no PostgreSQL server binaries, a container that forbids it)
the test is skipped with the reason, or fails if ``GNOMON_TEST_REQUIRE_NETNS`` is set.

Parallel runs (pytest-xdist workers, other worktrees' suites) get subnets of their own:
``10.200.N.0/24`` with N taken under a lock file, the first whose bridge ``gnbrN`` does not
exist. A bridge left by a test process that died (its pid is in the bridge's alias) is
taken down and its N reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

LOCK = Path(tempfile.gettempdir()) / "gnomon-test-netns.lock"
OWNER = "gnomon-test pid "  # the bridge's alias: who made it
SUBNETS = range(1, 255)
# Become the postgres user, ask for SIGQUIT when the parent dies (PR_SET_PDEATHSIG, after
# the change of user, which clears it), and exec the server: it quits at once if the test
# process dies. Not preexec_fn: the test process has threads.
_TIED = """
import ctypes, os, sys
parent, uid, gid, program = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
ctypes.CDLL(None).prctl(1, 3, 0, 0, 0)
if os.getppid() != parent:
    sys.exit("the test process is gone")
os.execv(program, sys.argv[4:])
"""


class NamespacesUnavailable(Exception):
    """Network namespaces or a private PostgreSQL cannot be made here; says why."""


@dataclass(frozen=True)
class Namespace:
    """One host: a network namespace whose veth link reaches the database's bridge."""

    name: str  # of the namespace (``ip netns exec NAME``)
    link: str  # the veth end on the bridge, in the root namespace: what ``cut`` takes down
    address: str  # the namespace's own address

    def run(
        self, command: Sequence[str], env: Mapping[str, str] | None = None, **popen: object
    ) -> subprocess.Popen[str]:
        """Start ``command`` inside the namespace (``ip netns exec``, which execs it: the
        Popen's pid is the command's); ``popen`` goes to ``subprocess.Popen``."""
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            ["ip", "netns", "exec", self.name, *command],
            env=dict(env) if env is not None else None,
            text=True,
            **popen,
        )

    run_in_namespace = run

    def cut(self) -> None:
        """Drop every packet between this namespace and the database, until ``restore``."""
        _ip("link", "set", self.link, "down")

    def restore(self) -> None:
        """Link the namespace to the database again."""
        _ip("link", "set", self.link, "up")


@dataclass(frozen=True)
class Network:
    """The private PostgreSQL and the namespaces that reach it."""

    url: str  # the database, as every namespace (and the test) reaches it
    namespaces: tuple[Namespace, ...]
    bridge: str
    data: Path  # PostgreSQL's data directory (its log is ``postgres.log`` beside it)

    def run_in_namespace(
        self, command: Sequence[str], env: Mapping[str, str] | None = None, **popen: object
    ) -> subprocess.Popen[str]:
        """``run`` in the first namespace."""
        return self.namespaces[0].run(command, env, **popen)

    def cut(self) -> None:
        """``cut`` the first namespace."""
        self.namespaces[0].cut()

    def restore(self) -> None:
        """``restore`` the first namespace."""
        self.namespaces[0].restore()


def require_namespaces() -> None:
    """Skip (or fail, under ``GNOMON_TEST_REQUIRE_NETNS``) where namespaces cannot be made."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("GNOMON_TEST_REQUIRE_NETNS"):
        pytest.fail(f"GNOMON_TEST_REQUIRE_NETNS is set, but {reason}")
    pytest.skip(reason)


def unavailable() -> str | None:
    """Why namespaces and a private PostgreSQL cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "network namespaces need the ip command (iproute2)"
    if postgres_binaries() is None:
        return "a private PostgreSQL needs its server binaries (initdb, postgres)"
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        return "a private PostgreSQL needs the postgres user (initdb refuses root)"
    return None


def postgres_binaries() -> Path | None:
    """The directory of the newest PostgreSQL server's ``initdb`` and ``postgres``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextlib.contextmanager
def private_network(namespaces: int = 1) -> Iterator[Network]:
    """``namespaces`` namespaces bridged to a private PostgreSQL, all taken down after."""
    require_namespaces()
    with contextlib.ExitStack() as stack:
        try:
            subnet = stack.enter_context(_subnet())
            made = tuple(
                stack.enter_context(_namespace(subnet, index)) for index in range(1, namespaces + 1)
            )
            url, data = stack.enter_context(_postgres(subnet))
        except NamespacesUnavailable as error:
            if os.environ.get("GNOMON_TEST_REQUIRE_NETNS"):
                raise
            pytest.skip(str(error))
        yield Network(url, made, f"gnbr{subnet}", data)


@contextlib.contextmanager
def _subnet() -> Iterator[int]:
    """A subnet number N of this process's own, with its bridge ``gnbrN`` (10.200.N.1/24)
    up; the bridge is removed after."""
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            subnet = _free_subnet()
            bridge = f"gnbr{subnet}"
            try:
                _ip("link", "add", bridge, "type", "bridge")
            except NamespacesUnavailable as error:
                message = f"network namespaces cannot be made here: {error}"
                raise NamespacesUnavailable(message) from None
            _ip("link", "set", bridge, "alias", f"{OWNER}{os.getpid()}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    try:
        _ip("addr", "add", f"10.200.{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        yield subnet
    finally:
        _remove(subnet)


def _free_subnet() -> int:
    """The first N without a bridge, once the networks of test processes that died are
    taken down (under the lock)."""
    free = []
    for subnet in SUBNETS:
        alias = _alias(f"gnbr{subnet}")
        owner = (alias or "").removeprefix(OWNER)
        if alias is not None and alias.startswith(OWNER) and owner.isdigit():
            if _alive(int(owner)):
                continue
            _remove(subnet)
        elif alias is not None:
            continue  # not a test's
        free.append(subnet)
    if not free:
        raise NamespacesUnavailable("every test subnet 10.200.1-254.0/24 is taken")
    return free[0]


def _alias(link: str) -> str | None:
    """The alias of ``link``; None if there is no such link."""
    try:
        return Path(f"/sys/class/net/{link}/ifalias").read_text().strip()
    except FileNotFoundError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(subnet: int) -> None:
    """Take down what subnet N's owner made: namespaces (and what runs in them), links,
    bridge; whatever part of it exists."""
    for line in _ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(f"gnomon-{subnet}-"):
            _end_namespace(name)
    for index in range(1, 64):
        if _alias(f"gnv{subnet}h{index}") is not None:
            _ip("link", "del", f"gnv{subnet}h{index}", check=False)
    _ip("link", "del", f"gnbr{subnet}", check=False)
    _stop_leftover_postgres(subnet)


@contextlib.contextmanager
def _namespace(subnet: int, index: int) -> Iterator[Namespace]:
    """Namespace ``gnomon-N-I`` at 10.200.N.(I+1), its veth's other end on the bridge."""
    name, link, inner = f"gnomon-{subnet}-{index}", f"gnv{subnet}h{index}", f"gnv{subnet}n{index}"
    address = f"10.200.{subnet}.{index + 1}"
    try:
        _ip("netns", "add", name)
        _ip("link", "add", link, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", name)
        _ip("link", "set", link, "master", f"gnbr{subnet}")
        _ip("link", "set", link, "up")
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", inner)
        _ip("-n", name, "link", "set", inner, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        # Neighbours fixed both ways, so that a cut drops packets silently, as a partition
        # beyond the next router does, rather than failing fast when ARP goes unanswered.
        bridge = f"gnbr{subnet}"
        host = f"10.200.{subnet}.1"
        _ip("-n", name, "neigh", "replace", host, "lladdr", _mac(bridge), "dev", inner, *_FIXED)
        _ip("neigh", "replace", address, "lladdr", _mac(inner, name), "dev", bridge, *_FIXED)
        yield Namespace(name, link, address)
    finally:
        _end_namespace(name)
        _ip("link", "del", link, check=False)  # takes its peer with it


_FIXED = ("nud", "permanent")


def _mac(link: str, namespace: str | None = None) -> str:
    """The hardware address of ``link`` (in ``namespace``, or the root one)."""
    where = ("-n", namespace) if namespace else ()
    return str(json.loads(_ip(*where, "-j", "link", "show", link))[0]["address"])


def _end_namespace(name: str) -> None:
    """Kill what still runs in namespace ``name``, then delete it."""
    for pid in _ip("netns", "pids", name, check=False).split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", name, check=False)


@contextlib.contextmanager
def _postgres(subnet: int) -> Iterator[tuple[str, Path]]:
    """A PostgreSQL server of its own on the bridge's address 10.200.N.1 (trust auth from
    the subnet, user postgres), in a temporary directory: its URL and data directory.
    Stopped and removed after."""
    import pwd

    binaries = postgres_binaries()
    assert binaries is not None
    user = pwd.getpwnam("postgres")
    address = f"10.200.{subnet}.1"
    root = _postgres_root(subnet)
    shutil.rmtree(root, ignore_errors=True)  # a dead test process's, whose subnet this was
    root.mkdir(mode=0o700)
    os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    log = root / "postgres.log"
    server: subprocess.Popen[bytes] | None = None
    try:
        initdb = subprocess.run(
            [binaries / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"],
            capture_output=True,
            text=True,
            check=False,
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
            cwd=root,
            env=_pg_env(),
        )
        if initdb.returncode != 0:
            raise NamespacesUnavailable(f"initdb failed: {initdb.stderr.strip()}")
        with (data / "pg_hba.conf").open("a") as hba:  # the namespaces, not the world
            hba.write(f"host all all 10.200.{subnet}.0/24 trust\n")
        port = _free_port(address)
        settings = {
            "listen_addresses": address,
            "port": port,
            "unix_socket_directories": root,
            "fsync": "off",
            "max_connections": 100,
        }
        with log.open("w") as output:
            os.chown(log, user.pw_uid, user.pw_gid)
            server = subprocess.Popen(
                [sys.executable, "-c", _TIED, str(os.getpid()), str(user.pw_uid)]
                + [str(user.pw_gid)]
                + [str(binaries / "postgres"), "-D", str(data)]
                + [f"-c{key}={value}" for key, value in settings.items()],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=root,
                env=_pg_env(),
            )
        _wait_for_server(server, binaries, address, port, log)
        yield f"postgresql+psycopg://postgres@{address}:{port}/postgres", data
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)  # fast shutdown: ends every session
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(root, ignore_errors=True)


def _postgres_root(subnet: int) -> Path:
    return Path(tempfile.gettempdir()) / f"gnomon-netns-pg-{subnet}"


def _stop_leftover_postgres(subnet: int) -> None:
    """Stop the server of a test process that died, if it outlived it, and remove its files."""
    root = _postgres_root(subnet)
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((root / "data" / "postmaster.pid").read_text().split()[0])
        if str(root).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():  # not a reused pid
            os.kill(pid, signal.SIGQUIT)
    shutil.rmtree(root, ignore_errors=True)


def _pg_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def _wait_for_server(
    server: subprocess.Popen[bytes], binaries: Path, address: str, port: int, log: Path
) -> None:
    """Wait until the server accepts connections (``pg_isready``), or fail saying why."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise NamespacesUnavailable(f"postgres exited: {log.read_text()[-2000:]}")
        ready = subprocess.run(
            [binaries / "pg_isready", "-q", "-h", address, "-p", str(port), "-t", "1"],
            check=False,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise NamespacesUnavailable(f"postgres did not start within 60 s: {log.read_text()[-2000:]}")


def _ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS``; its output. A failure raises ``NamespacesUnavailable`` with ip's
    message unless not ``check``."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NamespacesUnavailable(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout
