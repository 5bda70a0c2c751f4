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
from pathlib import Path
from typing import Any

from gnomon._files import open_private

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
        self, path: Path, max_bytes: int = 0, keep: int = 1, echo: DaemonStdout | None = None
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = max(1, keep)
        self.echo = echo
        self._fd = -1
        self._identity: tuple[int, int] | None = None
        self._open()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            self.relay(line)
            if self.echo is not None:
                self.echo.write(line, record.levelno)
        except Exception:
            self.handleError(record)

    def relay(self, line: str) -> None:
        """Append one JSON line (a record's, or a worker's as it came)."""
        data = (line.rstrip("\n") + "\n").encode("utf-8", "replace")
        with self.lock or contextlib.nullcontext():
            self._make_room(len(data))
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]

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
        if status is None or (status.st_dev, status.st_ino) != self._identity:
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
