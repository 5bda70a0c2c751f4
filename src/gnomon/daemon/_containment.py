"""Containing each worker's process tree, so that a run leaves nothing behind.

A flow may start processes: a plain ``subprocess.Popen``, a pool, or a daemon that
double-forks into a new session. When the pool ends a run (timeout, cancellation, shutdown,
its memory limit) or the worker dies, every one of them must end too; and when a run ends
normally, what it left running must not live on into the next run of that worker, where its
output and memory would be counted against a run that never started it.

Two mechanisms, the first that works (``Containment.detect``, once per daemon):

- **cgroup**: a cgroup v2 directory per worker under one per pool
  (``<the daemon's cgroup>/gnomon-<daemon pid>-<id>/worker-<pid>``). Every process the worker
  starts stays in it whatever it does with sessions and parents, and ``cgroup.kill`` ends
  them all at once. It needs a cgroup v2 hierarchy whose part the daemon runs in is
  writable: root, or under systemd ``Delegate=yes``.
- **subreaper**: each worker makes itself a child subreaper (``_proctree``), so the
  orphans of its children (a double fork's grandchild) come back to it rather than to init,
  and the whole tree hangs under the worker while it lives. The tree is found through
  ``/proc/<pid>/task/*/children`` and the worker's process group. Its limit: processes the
  tree left in a new session when the worker itself died first (a crash, a SIGKILL) are out
  of reach.

Without either (``none``: not Linux, no ``/proc``, or as configured), only the worker's
process group is signalled. Whatever the mechanism, the worker kills what a run left behind
at the run's end (``_proctree.end_leftovers``): a run's processes end with it.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from pathlib import Path

from gnomon.daemon._proctree import (
    MAX_KILL_ROUNDS,
    descendants,
    exists,
    proportional,
    resident,
    signal_quietly,
    subreaper_problem,
)
from gnomon.deployments import ContainmentMode

log = logging.getLogger("gnomon.daemon.pool")

# How long stopping the pool waits for the workers' cgroups to empty before removing them.
CGROUP_EMPTY_WAIT = 2.0
# Processes remembered per tree (as pidfds) so they can be killed after the worker died.
MAX_REMEMBERED = 1024


class WorkerTree(abc.ABC):
    """One worker's process tree, as the pool handles it: the worker and everything it
    started. Methods never raise for processes that are gone."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """The processes of the tree now, the worker included while it lives."""

    @abc.abstractmethod
    def track(self) -> None:
        """Remember the tree's processes as they are now, to be reached later even once the
        worker (about to be signalled) is gone and they with it from its tree."""

    @abc.abstractmethod
    def terminate(self) -> None:
        """SIGTERM the processes of the tree, those tracked before included (the pool
        signals the worker itself, which may or may not be among them)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL every process of the tree, the worker included."""

    @abc.abstractmethod
    def close(self) -> None:
        """The worker has exited (and is not reaped yet): kill what is left of its tree and
        release what the tree holds. Later calls of the other methods do nothing."""

    def tree_rss(self) -> int:
        """The tree's resident memory in bytes: RSS summed over its processes."""
        return resident(self.pids())

    def tree_pss(self) -> int | None:
        """The tree's proportional memory in bytes (see ``proportional``)."""
        return proportional(self.pids())


def memory_over(tree: WorkerTree, limit: int) -> int | None:
    """The tree's memory if it is above ``limit`` bytes, else None.

    Summed RSS is cheap (one small read per process) and never below the truth, so it
    decides alone while under the limit; above it, pages shared between the tree's
    processes (a fork's copy-on-write heap) would count several times, so the summed PSS
    decides.
    """
    rss = tree.tree_rss()
    if rss <= limit:
        return None
    pss = tree.tree_pss()
    used = rss if pss is None else pss
    return used if used > limit else None


class _ProcessTree(WorkerTree):
    """A tree found through /proc: the worker's descendants (complete while the worker, a
    subreaper, lives) and its process group (if it leads one). Processes seen are
    remembered as pidfds, so they can still be killed, safely, once the worker is gone.
    Without ``walk`` (mechanism none), only the worker and its process group."""

    def __init__(self, pid: int, walk: bool = True) -> None:
        super().__init__(pid)
        self._walk = walk
        try:
            self._group: int | None = pid if os.getpgid(pid) == pid else None
        except OSError:
            self._group = None
        self._known: dict[int, int | None] = {}
        self._closed = False

    def pids(self) -> list[int]:
        if self._closed:
            return []
        return [self.pid, *self._descendants(self.pid)]

    def track(self) -> None:
        self._remember(self.pids())

    def terminate(self) -> None:
        found = self._descendants(self.pid)
        tracked = [pid for pid in self._known if pid != self.pid and pid not in found]
        self._signal_all([*found, *tracked], signal.SIGTERM)

    def kill(self) -> None:
        # Stopped before killed: a process killed as it forks leaves its new child to init,
        # outside the tree, while a stopped one forks no more and its children stay found.
        stopped: list[int] = []
        for _ in range(MAX_KILL_ROUNDS):
            found = [pid for pid in self.pids() if pid not in stopped]
            if not found:
                break
            self._signal_all(found, signal.SIGSTOP)
            stopped.extend(found)
        self._signal_all(stopped, signal.SIGKILL)

    def _descendants(self, pid: int) -> list[int]:
        return descendants(pid) if self._walk else []

    def close(self) -> None:
        if self._closed:
            return
        # The worker's death reparented its tree elsewhere: what is left of it is found
        # through the processes seen before (and their descendants), and its group.
        worker = self._known.pop(self.pid, None)
        if worker is not None:
            os.close(worker)
        for _ in range(MAX_KILL_ROUNDS):
            before = len(self._known)
            found = [pid for root in list(self._known) for pid in self._descendants(root)]
            self._signal_all(found, signal.SIGKILL)
            if len(self._known) == before:
                break
        self._signal_all(list(self._known), signal.SIGKILL)
        self._closed = True
        for pidfd in self._known.values():
            if pidfd is not None:
                os.close(pidfd)
        self._known.clear()

    def _remember(self, pids: list[int]) -> None:
        for pid in pids:
            if pid not in self._known and len(self._known) < MAX_REMEMBERED:
                self._known[pid] = _pidfd(pid)

    def _signal_all(self, pids: list[int], signum: int) -> None:
        if self._closed:
            return
        self._remember(pids)
        for pid in pids:
            self._send(pid, signum)
        if self._group is not None:
            # Safe while the worker is not reaped: its pid cannot name another group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._group, signum)

    def _send(self, pid: int, signum: int) -> None:
        pidfd = self._known.get(pid)
        if pidfd is None:
            signal_quietly(pid, signum)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            signal.pidfd_send_signal(pidfd, signum)


def _pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` (never names another process, even after ``pid`` is reused)."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


class _CgroupTree(WorkerTree):
    """A tree as the members of the worker's own cgroup."""

    def __init__(self, pid: int, path: Path, owner: Containment) -> None:
        super().__init__(pid)
        self.path = path
        self._owner = owner
        self._closed = False

    def pids(self) -> list[int]:
        return [] if self._closed else [int(pid) for pid in _members(self.path)]

    def track(self) -> None:
        pass  # the cgroup holds its members, whatever becomes of their parent

    def terminate(self) -> None:
        for pid in self.pids():
            if pid != self.pid:
                signal_quietly(pid, signal.SIGTERM)

    def kill(self) -> None:
        if not self._closed:
            _kill_cgroup(self.path)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _kill_cgroup(self.path)
        self._owner.discard(self.path)


def _kill_cgroup(path: Path) -> None:
    with contextlib.suppress(OSError):
        (path / "cgroup.kill").write_text("1")


class Containment:
    """The daemon's way of containing its workers' trees, chosen once at start.

    ``for_worker(pid)`` gives the tree of a worker just started (before it runs anything);
    ``close()``, once every worker is gone, removes what the daemon created (its cgroups).
    """

    def __init__(
        self, mechanism: ContainmentMode, description: str, base: Path | None = None
    ) -> None:
        self.mechanism = mechanism
        self.description = description
        self._base = base
        self._lock = threading.Lock()
        self._leftover_dirs: list[Path] = []  # worker cgroups not empty yet when closed

    @classmethod
    def detect(cls, requested: ContainmentMode | None = None) -> Containment:
        """The best mechanism that works here, ``requested`` (default: auto) or below it
        (cgroup, then subreaper, then none); why one is not used is in ``description``."""
        requested = requested or ContainmentMode.AUTO
        reasons: list[str] = []
        if requested in (ContainmentMode.AUTO, ContainmentMode.CGROUP):
            base, reason = _daemon_cgroup()
            if base is not None:
                return cls(ContainmentMode.CGROUP, f"cgroup v2 ({base}, cgroup.kill)", base)
            reasons.append(f"no cgroup: {reason}")
        if requested is not ContainmentMode.NONE:
            problem = subreaper_problem()
            if problem is None:
                subreaper = "subreaper workers and their process groups"
                return cls(ContainmentMode.SUBREAPER, "; ".join([subreaper, *reasons]))
            reasons.append(f"no subreaper: {problem}")
        else:
            reasons.append("as configured")
        return cls(ContainmentMode.NONE, "; ".join(["process groups only", *reasons]))

    def for_worker(self, pid: int) -> WorkerTree:
        """The tree of worker ``pid``, put in a cgroup of its own if the daemon uses them."""
        if self._base is None:
            return _ProcessTree(pid, walk=self.mechanism is not ContainmentMode.NONE)
        path = self._base / f"worker-{pid}"
        try:
            with contextlib.suppress(FileExistsError):  # a worker of that pid, gone
                path.mkdir()
            (path / "cgroup.procs").write_text(str(pid))
        except OSError as error:
            log.warning(
                "could not put worker %d in cgroup %s (%s); its tree is found through /proc",
                pid,
                path,
                error,
            )
            return _ProcessTree(pid)
        return _CgroupTree(pid, path, self)

    def discard(self, path: Path) -> None:
        """Remove a worker's cgroup once it is empty (now, or at a later call or close)."""
        with self._lock:
            self._leftover_dirs.append(path)
            self._leftover_dirs = [p for p in self._leftover_dirs if not _rmdir(p)]

    def close(self) -> None:
        """Remove the daemon's cgroups, waiting a little for killed processes to be gone."""
        if self._base is None:
            return
        deadline = time.monotonic() + CGROUP_EMPTY_WAIT
        with self._lock:
            pending = [*self._leftover_dirs, *_subgroups(self._base), self._base]
            while pending and time.monotonic() < deadline:
                for path in pending:
                    _kill_cgroup(path)
                pending = [path for path in pending if not _rmdir(path)]
                if pending:
                    time.sleep(0.02)
            self._leftover_dirs = []
        if pending:
            log.warning("could not remove cgroups %s: still in use", [str(p) for p in pending])


def _rmdir(path: Path) -> bool:
    """Remove an empty cgroup; True once it is gone."""
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _subgroups(path: Path) -> list[Path]:
    with contextlib.suppress(OSError):
        return [child for child in path.iterdir() if child.is_dir()]
    return []


def _daemon_cgroup() -> tuple[Path | None, str]:
    """Create ``gnomon-<pid>-<random>`` in this process's cgroup v2 directory (one per pool:
    tests run several in a process), after removing those of daemons that died; (its path,
    "") or (None, why not)."""
    root = _cgroup2_mount()
    if root is None:
        return None, "no cgroup v2 hierarchy is mounted"
    own = _own_cgroup()
    if own is None:
        return None, "this process is in no cgroup v2 group"
    here = root / own.lstrip("/")
    if not (here / "cgroup.procs").exists():
        return None, f"{here} is not visible"
    try:
        # Moving a process needs write access to the common ancestor's cgroup.procs: this
        # one's. Writing our own pid there moves nothing and checks it.
        (here / "cgroup.procs").write_text(str(os.getpid()))
        _remove_dead_daemons(here)
        base = here / f"gnomon-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        base.mkdir()
    except OSError as error:
        return None, f"{here} is not writable ({error.strerror or error})"
    if not (base / "cgroup.kill").exists():
        _rmdir(base)
        return None, "the kernel has no cgroup.kill (Linux 5.14 or later has)"
    return base, ""


def _remove_dead_daemons(here: Path) -> None:
    """End and remove what daemons that died without stopping (SIGKILL) left in ``here``:
    their workers died with them, but not what the workers' runs had started."""
    for path in here.glob("gnomon-*-*"):
        pid = path.name.split("-")[1]
        if not pid.isdigit() or exists(int(pid)):
            continue
        groups = [*_subgroups(path), path]
        left = sum(len(_members(group)) for group in groups)
        for group in groups:
            _kill_cgroup(group)
        deadline = time.monotonic() + CGROUP_EMPTY_WAIT
        while groups and time.monotonic() < deadline:
            groups = [group for group in groups if not _rmdir(group)]
            if groups:
                time.sleep(0.02)
        if left:
            log.warning(
                "ended %d processes that the runs of a dead daemon (pid %s) left in %s",
                left,
                pid,
                path,
            )


def _members(group: Path) -> list[str]:
    try:
        return (group / "cgroup.procs").read_text().split()
    except OSError:
        return []


def _cgroup2_mount() -> Path | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
            for line in mounts:
                fields, _, tail = line.partition(" - ")
                if tail.split(" ", 1)[0] == "cgroup2":
                    return Path(fields.split()[4])
    except OSError:
        return None
    return None


def _own_cgroup() -> str | None:
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as groups:
            for line in groups:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None
