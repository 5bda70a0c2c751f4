"""Telling systemd how the daemon is doing: the sd_notify protocol, without libsystemd.

Under ``Type=notify`` systemd passes the path of a datagram socket in ``NOTIFY_SOCKET`` and
waits for ``READY=1`` before it considers the service started; with ``WatchdogSec=`` it
restarts the service unless ``WATCHDOG=1`` arrives in time. The protocol is one datagram of
newline-separated ``KEY=value`` fields (sd_notify(3)), so a few lines of socket code do what
linking libsystemd would. Outside systemd every call is a cheap no-op that returns False.

Sending never raises: a daemon must not die because its supervisor's socket went away. The
first failure of an outage is logged on ``gnomon.daemon``; the next success resets that.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger("gnomon.daemon")

# A full receive queue on systemd's side must not stall the scheduling loop for long.
_SEND_TIMEOUT = 1.0

_lock = threading.Lock()
_socket: socket.socket | None = None
_failing = False


def _address(value: str) -> bytes | None:
    """The socket address in ``NOTIFY_SOCKET``: a path, or ``@name`` for an abstract socket."""
    if value.startswith("@"):
        return b"\0" + os.fsencode(value[1:])
    if value.startswith("/"):
        return os.fsencode(value)
    return None


def _report(message: str, *args: object) -> None:
    global _failing
    if not _failing:
        _failing = True
        log.warning(message, *args)


def notify(*fields: str) -> bool:
    """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) to systemd as one datagram.

    Returns True if the datagram was sent; False if ``NOTIFY_SOCKET`` is unset (not running
    under systemd) or the send failed. One unbound socket is kept open and reused, since the
    scheduling loop calls this every tick.
    """
    global _socket, _failing
    value = os.environ.get("NOTIFY_SOCKET")
    if not value:
        return False
    address = _address(value)
    if address is None:
        _report("NOTIFY_SOCKET=%r is not a unix socket address; not notifying systemd", value)
        return False
    message = "\n".join(fields).encode()
    try:
        with _lock:
            if _socket is None:
                _socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                _socket.settimeout(_SEND_TIMEOUT)
            _socket.sendto(message, address)
    except OSError as error:
        _report("cannot notify systemd at NOTIFY_SOCKET=%s: %s", value, error)
        return False
    _failing = False
    return True


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings, or None when systemd's watchdog is not enabled.

    It is half of ``WATCHDOG_USEC``, as sd_watchdog_enabled(3) recommends, so that one late
    tick does not get the service killed. A ``WATCHDOG_PID`` naming another process means the
    watchdog is meant for that process (the variables were inherited), so it is None here.
    """
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 2 / 1_000_000


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """The daemon's side of ``Type=notify``: readiness, status, watchdog, reload and stop.

    ``watchdog()`` is rate-limited to ``watchdog_interval``, so the loop can call it on every
    tick; the loop must also wake at least that often (cap its sleep at the interval) while
    the watchdog is enabled. ``monotonic`` is the clock seam for tests.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.watchdog_interval = watchdog_interval()
        self._monotonic = monotonic
        self._last_ping: float | None = None

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) finished: systemd marks the service started."""
        return notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        return notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        """Ping the watchdog if the interval has passed since the last ping.

        True if a ping was sent; False if the watchdog is off, it is not yet time, or the
        send failed.
        """
        if self.watchdog_interval is None:
            return False
        now = self._monotonic()
        if self._last_ping is not None and now - self._last_ping < self.watchdog_interval:
            return False
        self._last_ping = now
        return notify("WATCHDOG=1")

    def reloading(self, status: str | None = None) -> bool:
        """A reload started; call ``ready()`` when it is done.

        ``MONOTONIC_USEC`` lets systemd (253+) tell this reload from an earlier one.
        """
        return notify("RELOADING=1", f"MONOTONIC_USEC={_monotonic_usec()}", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown started: systemd shows the service as deactivating."""
        return notify("STOPPING=1", *_status(status))


def _status(text: str | None) -> tuple[str, ...]:
    return () if text is None else (f"STATUS={text}",)
