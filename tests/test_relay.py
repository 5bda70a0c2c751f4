"""The pool's relay of a worker's output pipe: a run's cap on the lines it passes on and
stores, and the log lines of a worker that died mid-run stored after all. A real pipe and a
real SQLite store; the relay is a private module, reached here because its edge cases (a
byte cap met mid-run, lines stored or not when the worker died) are cheaper to pin down
with literal lines than with a daemon, whose fault tests cover the whole path."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

import pytest

from conftest import logs_of, schedule_run
from gnomon.daemon._relay import OUTPUT_LOGGER, start_relay
from gnomon.daemon._worker import RUN_MARKER


@pytest.fixture
def run(store: Any) -> str:
    """A run's id, of a run in the store (log rows belong to one)."""
    return schedule_run(store, "relayed.py:job")


def relay(store: Any, lines: list[str | dict[str, Any]]) -> list[dict[str, Any]]:
    """Pass ``lines`` (text, or JSON objects) through a relay as a worker's output; what it
    sent to the daemon's log, once the pipe has closed."""
    sent: list[dict[str, Any]] = []
    read, write = os.pipe()
    thread = start_relay(read, 4242, lambda line, _pid: sent.append(json.loads(line)), store)
    with os.fdopen(write, "w") as pipe:
        for line in lines:
            pipe.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    thread.join(timeout=30)
    assert not thread.is_alive()
    store.flush()
    return sent


def logged(message: str, moment: datetime, run: str) -> dict[str, Any]:
    """A run's log line as a worker writes it (a JSON event of a run logger)."""
    return {
        "event": message,
        "level": "info",
        "logger": "gnomon.flow_runs",
        "timestamp": moment.isoformat().replace("+00:00", "Z"),
        "flow_run_id": run,
    }


def test_printed_lines_past_the_byte_cap_leave_one_truncation_line_in_each_output(
    store, run: str
) -> None:
    begin = {RUN_MARKER: run, "log_lines": 1000, "log_bytes": 50}
    printed = ["x" * 20, "y" * 20, "z" * 20, "w" * 20]  # 21 bytes a line with its newline

    sent = relay(store, [begin, *printed, {RUN_MARKER: None}, "after the run"])

    truncation = (
        "log truncated: the run's output reached max_log_bytes = 50 bytes; the rest is dropped"
    )
    assert [line["event"] for line in sent] == ["x" * 20, "y" * 20, truncation, "after the run"]
    assert sent[2]["level"] == "warning"
    rows = logs_of(store, flow_run_id=run)
    assert [(row.logger, row.message) for row in rows] == [
        (OUTPUT_LOGGER, "x" * 20),
        (OUTPUT_LOGGER, "y" * 20),
        (OUTPUT_LOGGER, truncation),
    ]


def test_logged_lines_past_the_cap_are_relayed_no_more_and_only_a_print_stores_a_truncation(
    store, run: str
) -> None:
    now = datetime.now(UTC)
    begin = {RUN_MARKER: run, "log_lines": 2, "log_bytes": 10**6}
    events = [logged(f"line {n}", now, run) for n in range(4)]

    sent = relay(store, [begin, *events, "printed after the cap", "and again", {RUN_MARKER: None}])

    assert [line["event"] for line in sent][:2] == ["line 0", "line 1"]
    assert len(sent) == 3
    assert sent[2]["event"].startswith("log truncated")
    # The worker stores what it logs; the relay stores the truncation once it drops a print.
    assert [row.message for row in logs_of(store, flow_run_id=run)] == [sent[2]["event"]]


def test_a_worker_dying_mid_run_gets_the_log_lines_the_store_lacks_stored(store, run: str) -> None:
    moments = [datetime(2027, 5, 1, 12, 0, 0, n, tzinfo=UTC) for n in range(1, 4)]
    events = [logged(f"line {n}", moment, run) for n, moment in enumerate(moments)]
    for event, moment in zip(events[:2], moments, strict=False):  # committed by the worker
        store.add_log(
            {
                "flow_run_id": run,
                "task_run_id": None,
                "timestamp": moment,
                "level": logging.INFO,
                "logger": "gnomon.flow_runs",
                "message": event["event"],
                "extra": {},
            }
        )
    store.flush()

    relay(store, [{RUN_MARKER: run}, *events])  # no end marker: the worker died

    rows = logs_of(store, flow_run_id=run)
    assert [row.message for row in rows] == ["line 0", "line 1", "line 2"]
    assert rows[2].timestamp.replace(tzinfo=UTC) == moments[2]
    assert rows[2].extra["stored_by"] == "daemon"


def test_a_run_that_ended_normally_has_nothing_stored_after_it(store, run: str) -> None:
    events = [logged("stored by the worker, not here", datetime.now(UTC), run)]

    relay(store, [{RUN_MARKER: run}, *events, {RUN_MARKER: None}])

    assert logs_of(store, flow_run_id=run) == []
