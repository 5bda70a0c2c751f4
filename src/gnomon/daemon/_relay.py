"""Relaying a worker's output to the daemon's log, within each run's cap, and keeping the
last lines of a run whose worker died.

A worker's stdout and stderr are one pipe. Each line is gnomon's JSON log line (passed on
with ``worker_pid`` added) or anything else a run prints (C libraries, child processes,
``print``): that becomes an ``OUTPUT_LOGGER`` event and a log row of the run. The worker
writes a marker line where each run's output begins (with the run's log cap) and ends, so
every line is attributed to the run that wrote it.

A run's cap (``max_log_lines``, ``max_log_bytes``) counts every line of it the relay passes
on, logged or printed: past it, the daemon's outputs get one "log truncated" line and
nothing more of the run, and its printed lines are no longer stored (one truncation row
says so). What a run logs is stored by its worker, which caps it the same way.

The worker stores its run's log rows through a batched writer that commits every 50 ms, so
a worker that dies (a segfault, a SIGKILL) loses the last of them. The relay has seen them
go by: when the pipe ends in the middle of a run, it stores those the store does not have.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gnomon.daemon._worker import RUN_MARKER, SUMMARISED_EVENTS, parse_object
from gnomon.flows import STORED_LOGGERS
from gnomon.store import LogQuery

if TYPE_CHECKING:
    from gnomon.store import ScheduleStore
    from gnomon.store.rows import NewLog

log = logging.getLogger("gnomon.daemon.pool")

OUTPUT_LOGGER = "gnomon.worker.output"  # what flows print, as log records
MAX_LINE = 1 << 20  # longer output lines are relayed in pieces
# The log lines of a run kept to store if its worker dies: more than its batched writer
# holds uncommitted (50 ms of lines) in any but a pathological run.
RECENT_LINES = 1000
_EVENT_KEYS = ("event", "level", "logger", "timestamp", "exception")


def start_relay(
    fd: int, pid: int, sink: Callable[[str, int], None], store: ScheduleStore
) -> threading.Thread:
    """Relay a worker's output pipe to ``sink`` in a daemon thread, until it closes."""
    relay = _Relay(pid, sink, store)
    thread = threading.Thread(
        target=relay.serve, args=(fd,), name=f"gnomon-worker-{pid}-output", daemon=True
    )
    thread.start()
    return thread


class _RunOutput:
    """One run's output as the relay sees it: its cap, what it has used, its last lines."""

    def __init__(self, flow_run_id: str, lines: Any, size: Any) -> None:
        self.flow_run_id = flow_run_id
        capped = isinstance(lines, int) and isinstance(size, int)
        self.max_lines: int | None = lines if capped else None
        self.max_bytes: int = size if capped else 0
        self.lines = self.bytes = 0
        self.truncated = False
        self.announced = False  # the outputs got the truncation line
        self.truncation_stored = False  # the store got it (once a printed line was dropped)
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_LINES)

    def admit(self, size: int) -> bool:
        """Count a line of ``size`` bytes; whether it is within the cap."""
        if self.max_lines is None:
            return True
        if self.truncated:
            return False
        self.lines += 1
        self.bytes += size
        self.truncated = self.lines > self.max_lines or self.bytes > self.max_bytes
        return not self.truncated

    def truncation(self) -> str:
        reached = (
            f"max_log_lines = {self.max_lines} lines"
            if self.lines > (self.max_lines or 0)
            else f"max_log_bytes = {self.max_bytes} bytes"
        )
        return f"log truncated: the run's output reached {reached}; the rest is dropped"


class _Relay:
    """Relays one worker's output pipe (see the module's docstring)."""

    def __init__(self, pid: int, sink: Callable[[str, int], None], store: ScheduleStore) -> None:
        self.pid = pid
        self.sink = sink
        self.store = store
        self.run: _RunOutput | None = None

    def serve(self, fd: int) -> None:
        from gnomon.flows import wait_while_held

        with os.fdopen(fd, "rb") as stream:
            while True:
                wait_while_held()  # while runs wait for a worker, their start comes first
                raw = stream.readline(MAX_LINE)
                if not raw:
                    break
                self.line(raw)
        if self.run is not None:  # the worker died in the middle of the run
            store_unsaved(self.store, self.run.flow_run_id, list(self.run.recent))

    def line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not text.strip():
            return
        event = parse_object(text)
        if event is not None and RUN_MARKER in event:
            run_id = event[RUN_MARKER]
            self.run = None
            if run_id is not None:
                self.run = _RunOutput(run_id, event.get("log_lines"), event.get("log_bytes"))
            return
        run = self.run
        if event is None or "event" not in event:  # printed, not logged
            if run is None or run.admit(len(raw)):
                self._send(self._printed(text, run, logging.INFO))
            else:
                self._drop(run, printed=True)
            return
        if _summarised(event):
            return
        if run is not None and not run.admit(len(raw)):
            self._drop(run, printed=False)
            return
        if run is not None and event.get("logger") in STORED_LOGGERS:
            run.recent.append(event)
        self._send(event)

    def _drop(self, run: _RunOutput, printed: bool) -> None:
        """A line past the run's cap: the outputs, and the store if it was printed, get
        one truncation line."""
        if printed and not run.truncation_stored:
            run.truncation_stored = True
            event = self._printed(run.truncation(), run, logging.WARNING)
        else:
            event = _event(run.truncation(), logging.WARNING, datetime.now(UTC))
        if not run.announced:
            run.announced = True
            event["log_truncated"] = True
            self._send(event)

    def _printed(self, text: str, run: _RunOutput | None, level: int) -> dict[str, Any]:
        """A printed line as an event, stored as a log row of the run it belongs to."""
        now = datetime.now(UTC)
        if run is not None:
            self.store.add_log(
                {
                    "flow_run_id": run.flow_run_id,
                    "task_run_id": None,
                    "timestamp": now,
                    "level": level,
                    "logger": OUTPUT_LOGGER,
                    "message": text,
                    "extra": {"worker_pid": self.pid},
                }
            )
        return _event(text, level, now)

    def _send(self, event: dict[str, Any]) -> None:
        event.setdefault("worker_pid", self.pid)
        if self.run is not None:
            event.setdefault("flow_run_id", self.run.flow_run_id)
        try:
            self.sink(json.dumps(event), self.pid)
        except Exception:
            log.exception("the worker log sink failed")


def _event(text: str, level: int, now: datetime) -> dict[str, Any]:
    return {
        "event": text,
        "level": logging.getLevelName(level).lower(),
        "logger": OUTPUT_LOGGER,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
    }


def _summarised(event: dict[str, Any]) -> bool:
    return (
        event.get("run_event") in SUMMARISED_EVENTS
        and event.get("level") == "info"
        and not log.isEnabledFor(logging.DEBUG)
    )


def store_unsaved(store: ScheduleStore, flow_run_id: str, recent: list[dict[str, Any]]) -> int:
    """Store the log lines of a run (and its subflows) in ``recent``, as its worker wrote
    them to its output, that the store does not have: the worker died before its batched
    writer committed them. Returns how many were stored."""
    if not recent:
        return 0
    try:
        run = store.read_flow_run(flow_run_id)
        deployment = run.deployment_name if run is not None else None
        missing: list[dict[str, Any]] = []
        for run_id in dict.fromkeys(event.get("flow_run_id") for event in recent):
            if isinstance(run_id, str):
                events = [event for event in recent if event.get("flow_run_id") == run_id]
                missing += _not_stored(store, run_id, events)
        for event in missing:
            store.add_log(_log_row(event, deployment))
    except Exception:
        log.exception("could not store the last log lines of run %s", flow_run_id)
        return 0
    if missing:
        log.warning(
            "stored %d log lines of run %s that its worker wrote but did not store",
            len(missing),
            flow_run_id,
            extra={"flow_run_id": flow_run_id},
        )
    return len(missing)


def _not_stored(
    store: ScheduleStore, flow_run_id: str, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The events of ``flow_run_id`` that have no stored row: a row and an event match by
    time (the record's own, to the microsecond) and logger."""
    rows = store.search_logs(LogQuery(flow_run_id=flow_run_id), None, newest=False)
    stored: Counter[tuple[datetime | None, Any]] = Counter(
        (_utc(row.timestamp), row.logger) for row in rows
    )
    missing = []
    for event in events:
        key = (_moment(event.get("timestamp")), event.get("logger"))
        if stored[key] > 0:
            stored[key] -= 1
        else:
            missing.append(event)
    return missing


def _log_row(event: dict[str, Any], deployment: str | None) -> NewLog:
    message = str(event.get("event", ""))
    if event.get("exception"):
        message = f"{message}\n{event['exception']}"
    level = logging.getLevelNamesMapping().get(str(event.get("level", "")).upper(), logging.INFO)
    extra = {key: value for key, value in event.items() if key not in _EVENT_KEYS}
    return {
        "flow_run_id": event.get("flow_run_id"),
        "task_run_id": event.get("task_run_id"),
        "timestamp": _moment(event.get("timestamp")) or datetime.now(UTC),
        "level": level,
        "logger": event.get("logger"),
        "message": message,
        "extra": {**extra, "stored_by": "daemon"},
        "deployment_name": deployment,
    }


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
