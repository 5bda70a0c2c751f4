"""The daemon's two log outputs: its stdout and its JSON lines file.

Both take the daemon's own records and the lines its workers write (JSON already, relayed by
``daemon_lines``), so that each output has one format whatever wrote the line:

- stdout: coloured text on a terminal (a worker's line rendered as the daemon's own are),
  JSON lines otherwise. When stdout is journald's stream (systemd says so in
  ``JOURNAL_STREAM``), each line starts with the kernel-style priority prefix journald reads
  (``<3>`` for ERROR, ``<4>`` WARNING, ``<6>`` INFO), so ``journalctl -p warning`` and the
  journal's colours follow the lines' levels; journald strips the prefix.
- the file: JSON lines, created private (``gnomon._files``), rotated by size keeping a
  number of older files (``gnomon.jsonl.1`` the newest), and reopened when logrotate moves
  it or when the daemon calls ``reopen_daemon_log()`` (logrotate's ``postrotate``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gnomon._files import open_private
from gnomon._space import SpaceFloor, floor_from_env

# syslog priorities (sd-daemon.h's SD_ERR, ...) by logging level, highest level first.
_PRIORITIES = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG_PRIORITY = 7
_LEVELS = logging.getLevelNamesMapping()


def journal_priority(levelno: int) -> int:
    """The syslog priority journald records for a line at ``levelno``."""
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return _DEBUG_PRIORITY


def is_journal_stream(stream: Any) -> bool:
    """Whether ``stream`` is the one systemd connected to journald: ``JOURNAL_STREAM`` holds
    its device and inode numbers ("dev:inode"), as systemd.exec(5) documents."""
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        status = os.fstat(stream.fileno())
        return (status.st_dev, status.st_ino) == (int(device), int(inode))
    except (AttributeError, OSError, ValueError):
        return False


def _level_of(event: dict[str, Any]) -> int:
    level = event.get("level")
    return _LEVELS.get(level.upper(), logging.INFO) if isinstance(level, str) else logging.INFO


class DaemonStdout(logging.Handler):
    """The daemon's stdout. ``render`` turns an event dict into a terminal line (None:
    stdout takes JSON lines); the handler's formatter renders the daemon's own records the
    same way."""

    def __init__(
        self, stream: Any, level: int, render: Callable[[dict[str, Any]], str] | None
    ) -> None:
        super().__init__(level)
        self.stream = stream
        self.render = render
        self.journal = render is None and is_journal_stream(stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(self.format(record), record.levelno)
        except Exception:
            self.handleError(record)

    def write(self, line: str, levelno: int) -> None:
        """Write one rendered line (with journald's prefix when stdout is the journal)."""
        if self.journal:
            line = f"<{journal_priority(levelno)}>{line}"
        with self.lock or contextlib.nullcontext():
            self.stream.write(line.rstrip("\n") + "\n")
            self.stream.flush()

    def relay(self, line: str) -> None:
        """Write a worker's JSON line as this output writes the daemon's own lines."""
        if self.render is None and not self.journal:
            self.write(line, logging.INFO)
            return
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self.write(line, logging.INFO)
            return
        levelno = _level_of(event)
        self.write(self.render(event) if self.render is not None else line, levelno)


class LogFile(logging.Handler):
    """The daemon's JSON lines file, and, when stdout takes the same JSON lines, stdout too
    (``echo``): each record is rendered once, not once per output (the daemon logs a few
    records per run, and rendering is most of their cost).

    Before each line, one ``stat`` of the path tells whether logrotate moved the file
    (reopen it) and whether the line would take it past ``max_bytes`` (rotate: ``.1`` the
    newest of ``keep`` older files; 0 never rotates).
    """

    def __init__(
        self,
        path: Path,
        max_bytes: int = 0,
        keep: int = 1,
        echo: DaemonStdout | None = None,
        notice: DaemonStdout | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = max(1, keep)
        self.echo = echo
        self.notice = notice  # where to say that the file cannot be written, and since
        self._fd = -1
        self._identity: tuple[int, int] | None = None
        self._failing: str | None = None
        self._dropped = 0
        self._room = SpaceFloor(self.path.parent, floor_from_env())
        self._open()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.relay(line)
        if self.echo is not None:
            with contextlib.suppress(OSError, ValueError):  # stdout closed: nothing to tell
                self.echo.write(line, record.levelno)

    def relay(self, line: str) -> None:
        """Append one JSON line (a record's, or a worker's as it came). A file that cannot
        be written (a full disk, an I/O error) or a disk below the free-space floor drops
        the line: the daemon must not stop over its log, and stdout still has every line.
        The first failure and the recovery are told once each on stdout."""
        data = (line.rstrip("\n") + "\n").encode("utf-8", "replace")
        with self.lock or contextlib.nullcontext():
            if not self._room.room():
                self._dropped += 1
                return
            try:
                self._make_room(len(data))
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as error:
                self._dropped += 1
                self._failed(f"{type(error).__name__}: {error.strerror or error}")
                return
            if self._failing is not None:
                self._recovered()

    def _failed(self, reason: str) -> None:
        if self._failing is None:
            self._failing = reason
            self._tell(
                logging.ERROR,
                f"cannot write the log file {self.path} ({reason}); its lines are dropped "
                "until it can be written again (stdout still has them)",
            )
        if self._fd >= 0 and self._identity is not None:
            with contextlib.suppress(OSError):
                self._close()  # reopened at the next line: the path may be back

    def _recovered(self) -> None:
        self._tell(
            logging.WARNING,
            f"the log file {self.path} is written again; {self._dropped} lines were dropped",
        )
        self._failing, self._dropped = None, 0

    def _tell(self, level: int, message: str) -> None:
        if self.notice is None:
            return
        event = {
            "event": message,
            "level": logging.getLevelName(level).lower(),
            "logger": "gnomon.daemon",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        with contextlib.suppress(OSError, ValueError):
            self.notice.relay(json.dumps(event))

    def reopen(self) -> None:
        """Close the file and open the path again (created anew if it was moved away)."""
        with self.lock or contextlib.nullcontext():
            self._close()
            self._open()

    def close(self) -> None:
        with self.lock or contextlib.nullcontext():
            self._close()
        super().close()

    def _open(self) -> None:
        fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)
        status = os.fstat(fd)
        self._fd, self._identity = fd, (status.st_dev, status.st_ino)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._identity = -1, None

    def _make_room(self, size: int) -> None:
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            status = None
        if self._fd < 0 or status is None or (status.st_dev, status.st_ino) != self._identity:
            self._close()  # moved or removed by logrotate: write to a new file at the path
            self._open()
        elif self.max_bytes and status.st_size and status.st_size + size > self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._close()
        for number in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{number + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._open()


class DaemonLines:
    """Where the workers' output goes in the daemon: lines the worker rendered as JSON
    already, written to the log file as they are and to stdout as stdout's own lines are."""

    def __init__(self) -> None:
        self.stdout: DaemonStdout | None = None
        self.file: LogFile | None = None

    def write(self, line: str) -> None:
        for output in (self.file, self.stdout):
            if output is not None:
                # A closed or full output must not stop the daemon.
                with contextlib.suppress(OSError, ValueError):
                    output.relay(line)


daemon_lines = DaemonLines()


def reopen_daemon_log() -> None:
    """Reopen the daemon's log file, for logrotate's ``postrotate`` (the daemon's loop calls
    it on request; a signal handler must not). Does nothing without a log file."""
    log_file = daemon_lines.file
    if log_file is not None:
        log_file.reopen()
