"""Whether the daemon is scheduling, measured from its loop's ticks.

Three states. **ok**: the loop ticked within ``stuck_after``. **degraded**: it ticks, but
something it relies on fails (the store cannot be written, the disk is nearly full); or it
is blocked waiting for the store's write lock, which another program holds: riding that out
is its job. **stuck**: it has not ticked within ``stuck_after`` for any other reason, which
only a restart cures.

``/healthz`` answers from ``Health.status()``; the ``HealthMonitor`` thread feeds systemd's
watchdog while the daemon is not stuck (so systemd restarts a stuck daemon, never one riding
out a locked database), pings ``[daemon] heartbeat_url`` likewise (a dead man's switch, so
a dead machine is noticed from outside), and writes the status to a small file beside the
daemon's lock for ``gnomon daemon status``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gnomon._files import open_private

log = logging.getLogger("gnomon.daemon")

STATUS_RECORD_SIZE = 1024  # the status file is rewritten in place: a full disk cannot fail it
HEARTBEAT_TIMEOUT = 10.0  # seconds per ping
STATUS_SILENCE = 5.0  # a status file not rewritten for this long: its daemon is not answering


class HealthState(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    STUCK = "stuck"


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """The daemon's health at one moment."""

    state: HealthState
    last_tick_age: float | None  # seconds since the loop last ticked; None before its first
    reason: str | None = None  # why it is degraded or stuck, in general terms
    detail: str | None = None  # the errors behind it, for operators (not for /healthz)
    # The worker pool's (busy, idle) workers, once the daemon has one (the dashboard shows
    # them; /healthz does not).
    workers: tuple[int, int] | None = None
    # The pruner's last pass (retain_runs / retain_logs), in a line: when and what it did.
    last_prune: str | None = None

    def as_json(self, *, detail: bool = False) -> dict[str, Any]:
        """What ``/healthz`` shows: the state, the age of the last tick, and the reason;
        with ``detail``, the errors too (``gnomon daemon status``)."""
        body: dict[str, Any] = {
            "status": self.state.value,
            "last_tick_age_seconds": (
                None if self.last_tick_age is None else round(self.last_tick_age, 3)
            ),
        }
        if self.reason is not None:
            body["reason"] = self.reason
        if detail and self.detail is not None:
            body["detail"] = self.detail
        if detail and self.last_prune is not None:
            body["last_prune"] = self.last_prune
        return body


class Health:
    """The loop's ticks and the problems it reports; read from any thread.

    ``store_wait`` returns when (on the ``monotonic`` clock) the loop began its current wait
    for the store's write lock, or None (see ``gnomon.store._db.bounded_wait_started``).
    """

    def __init__(
        self,
        stuck_after: float,
        *,
        store_wait: Callable[[], float | None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stuck_after = stuck_after
        self._store_wait = store_wait
        self._monotonic = monotonic
        self._last_tick: float | None = None
        # By source ("store", "disk"): the reason in general terms, and the error behind it.
        self._problems: dict[str, tuple[str, str | None]] = {}
        self._workers: Callable[[], tuple[int, int]] | None = None
        self._last_prune: Callable[[], str | None] = lambda: None

    def ticked(self) -> None:
        """The loop completed a pass (called by the loop thread)."""
        self._last_tick = self._monotonic()

    def report(self, source: str, reason: str | None, detail: str | None = None) -> None:
        """``source`` ("store", "disk") has a problem (``reason``, in general terms, and
        the error behind it, ``detail``), or none (``reason`` None)."""
        if reason is None:
            self._problems.pop(source, None)
        else:
            self._problems[source] = (reason, detail)

    def problem(self, source: str) -> str | None:
        """The reason ``source`` reported, if it has a problem now."""
        problem = self._problems.get(source)
        return None if problem is None else problem[0]

    def watch_workers(self, workers: Callable[[], tuple[int, int]]) -> None:
        """Report the worker pool's (busy, idle) workers in each status from now on."""
        self._workers = workers

    def watch_prune(self, last_prune: Callable[[], str | None]) -> None:
        """Report the pruner's last pass in each status from now on."""
        self._last_prune = last_prune

    def status(self) -> HealthStatus:
        """The health now, with the workers' counts if a pool is watched."""
        status = dataclasses.replace(self._measured(), last_prune=self._last_prune())
        workers = self._workers
        return status if workers is None else dataclasses.replace(status, workers=workers())

    def _measured(self) -> HealthStatus:
        now = self._monotonic()
        last = self._last_tick
        age = None if last is None else now - last
        problems = list(self._problems.values())
        reasons = [reason for reason, _ in problems]
        details = [detail for _, detail in problems if detail is not None]
        if age is not None and age > self.stuck_after:
            waiting = self._store_wait()
            if waiting is None:
                reason = f"the scheduling loop has not ticked for {age:.1f} s"
                return HealthStatus(HealthState.STUCK, age, reason, _join(details))
            reasons.insert(0, f"waiting {now - waiting:.1f} s for the store's write lock")
        if reasons:
            return HealthStatus(HealthState.DEGRADED, age, _join(reasons), _join(details))
        return HealthStatus(HealthState.OK, age)


def _join(parts: list[str]) -> str | None:
    return "; ".join(parts) or None


class HealthMonitor:
    """A thread that acts on the daemon's health every ``interval`` seconds: feeds systemd's
    watchdog and pings ``heartbeat_url`` (every ``heartbeat_interval``) unless stuck, logs
    each change of state, and writes the status file."""

    def __init__(
        self,
        health: Health,
        *,
        interval: float,
        watchdog: Callable[[], object],
        status_file: Path | None,
        heartbeat_url: str | None = None,
        heartbeat_interval: float = 60.0,
        systemd_status: Callable[[str], object] = lambda _text: None,
    ) -> None:
        self.health = health
        self.interval = interval
        self._watchdog = watchdog
        self._status_file = status_file
        self._systemd_status = systemd_status
        self._heartbeat = (
            _Heartbeat(heartbeat_url, heartbeat_interval) if heartbeat_url is not None else None
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gnomon-health", daemon=True)
        self._fd: int | None = None
        self._cannot_open = False  # told once, until the file can be opened again
        self._last: HealthStatus | None = None

    def start(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.start()
        self.check()  # `gnomon daemon status` has an answer from the start
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # a stopped daemon leaves no status behind
                os.close(self._fd)
            self._fd = None

    def check(self) -> HealthStatus:
        """One round: act on the status now (the thread calls it every ``interval``)."""
        status = self.health.status()
        if status.state is not HealthState.STUCK:
            self._watchdog()
            if self._heartbeat is not None:
                self._heartbeat.alive()
        previous, self._last = self._last, status
        if previous is None or previous.state is not status.state:
            self._changed(previous, status)
        self._write(status)
        return status

    def _changed(self, previous: HealthStatus | None, status: HealthStatus) -> None:
        self._systemd_status(f"{status.state.value}: {status.reason}" if status.reason else "ok")
        if previous is None:
            return
        level = logging.INFO if status.state is HealthState.OK else logging.ERROR
        log.log(
            level,
            "daemon health %s -> %s%s",
            previous.state.value,
            status.state.value,
            f": {status.reason}" if status.reason else "",
            extra={"health": status.state.value, "reason": status.reason},
        )

    def _write(self, status: HealthStatus) -> None:
        if self._fd is None:
            self._fd = self._open_status_file()
            if self._fd is None:
                return
        record = {
            "pid": os.getpid(),
            "boot_id": boot_id(),
            "written": time.monotonic(),
            **status.as_json(detail=True),
        }
        data = json.dumps(record).encode()[: STATUS_RECORD_SIZE - 1] + b"\n"
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, data.ljust(STATUS_RECORD_SIZE, b" "), 0)

    def _open_status_file(self) -> int | None:
        """The status file, created with its record reserved, or None if the disk refuses
        it now (read-only, say): tried again each round, so the status appears once it can
        (``read_status`` says why meanwhile)."""
        if self._status_file is None:
            return None
        try:
            fd = open_private(self._status_file, os.O_RDWR)
            try:
                os.ftruncate(fd, STATUS_RECORD_SIZE)  # reserved while there is room
            except OSError:
                os.close(fd)
                raise
        except OSError as error:
            if not self._cannot_open:
                self._cannot_open = True
                log.warning("cannot write the daemon status file %s: %s", self._status_file, error)
            return None
        if self._cannot_open:
            self._cannot_open = False
            log.info("the daemon status file %s is written again", self._status_file)
        return fd

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the monitor must outlive any one failure
                log.exception("health check failed")


class _Heartbeat:
    """Pings a dead man's switch URL every ``interval`` seconds while told the daemon is
    alive, from a thread of its own (a slow monitor must not delay the watchdog)."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self._alive_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gnomon-heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def alive(self) -> None:
        self._alive_at = time.monotonic()

    def _run(self) -> None:
        next_ping = 0.0
        while not self._stop.wait(min(1.0, self.interval)):
            now = time.monotonic()
            alive = self._alive_at is not None and now - self._alive_at < self.interval
            if now >= next_ping and alive:
                self._ping()
                next_ping = now + self.interval

    def _ping(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=HEARTBEAT_TIMEOUT) as response:
                response.read(1024)
        except Exception as error:  # an unreachable monitor must never stop the daemon
            if not self._failing:
                self._failing = True
                log.warning("heartbeat ping failed: %s: %s", type(error).__name__, error)
            return
        if self._failing:
            self._failing = False
            log.info("heartbeat pings succeed again")


def status_path(lock_path: Path) -> Path:
    """The status file beside a daemon lock file (``daemon.lock`` -> ``daemon.status``)."""
    return lock_path.with_suffix(".status")


def boot_id() -> str | None:
    """This boot's id: monotonic times compare across processes only within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _read_only_status(lock_path: Path) -> HealthStatus | None:
    """Degraded, saying why, if the file system of the daemon's lock (and status file) is
    read-only; else None. The lock file is what is probed: it is there while the daemon
    runs, the status file only if the disk let the monitor create it."""
    from gnomon.store import read_only_file_system

    if not lock_path.exists() or not read_only_file_system(lock_path):
        return None
    reason = f"the file system of {lock_path.parent} is read-only: the store cannot be written"
    return HealthStatus(HealthState.DEGRADED, None, reason)


def read_status(lock_path: Path, silence: float = STATUS_SILENCE) -> HealthStatus | None:
    """The running daemon's health as its status file tells it (``gnomon daemon status``);
    None if there is no readable status, unless a read-only file system explains why. A
    file its monitor has not rewritten for ``silence`` seconds (the process is stopped or
    wedged) reads as stuck."""
    try:
        record = json.loads(status_path(lock_path).read_bytes() or b"null")
    except (OSError, ValueError):
        # A disk that turned read-only before the monitor could create the file leaves
        # none, and a disk error can lose what it wrote but never flushed (the file reads
        # back as zeros): the file system says why, as for a silent file below.
        return _read_only_status(lock_path)
    if not isinstance(record, dict) or record.get("boot_id") != boot_id():
        return None
    try:
        state = HealthState(record["status"])
        age = record.get("last_tick_age_seconds")
        silent = time.monotonic() - float(record["written"])
    except (KeyError, ValueError, TypeError):
        return None
    if silent > silence:
        # Its monitor cannot rewrite the file on a read-only file system; whether the loop
        # ticks, /healthz tells.
        read_only = _read_only_status(lock_path)
        if read_only is not None:
            return read_only
        reason = f"the daemon has not updated its status for {silent:.1f} s"
        return HealthStatus(HealthState.STUCK, None if age is None else age + silent, reason)
    return HealthStatus(
        state, age, record.get("reason"), record.get("detail"), last_prune=record.get("last_prune")
    )
