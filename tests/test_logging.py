"""Run logging: stderr rendering, run context, stored run logs and ``log_prints``."""

from __future__ import annotations

import builtins
import io
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import create_run, logs_of
from gnomon._settings import reset_settings
from gnomon.exceptions import MissingContextError
from gnomon.flows import _log_hold, _logging, cap_run_logs
from gnomon.flows._context import FlowRunContext, TaskRunContext, flow_run_var, task_run_var
from gnomon.flows._logging import (
    configure_logging,
    engine_logger,
    get_run_logger,
    install_print_redirect,
    log_run_event,
)

FLOW_RUN_ID = "f" * 32
TASK_RUN_ID = "t" * 32
REAL_STORE_SINK = _logging._store_sink


def flow_run(*, log_prints: bool = False, flow_run_id: str = FLOW_RUN_ID) -> FlowRunContext:
    return FlowRunContext(
        flow=SimpleNamespace(name="etl"),  # type: ignore[arg-type]
        flow_run_id=flow_run_id,
        flow_run_name="brave-fox",
        parameters={},
        task_runner=None,  # type: ignore[arg-type]
        log_prints=log_prints,
    )


def task_run(flow: FlowRunContext | None, *, log_prints: bool = False) -> TaskRunContext:
    return TaskRunContext(
        task=SimpleNamespace(name="extract"),  # type: ignore[arg-type]
        task_run_id=TASK_RUN_ID,
        task_run_name="extract-0",
        flow_run=flow,
        parameters={},
        attempt=2,
        log_prints=log_prints,
    )


@contextmanager
def running(flow: FlowRunContext | None, task: TaskRunContext | None = None) -> Iterator[None]:
    """Code in the block runs as if inside the given flow run (and task run)."""
    flow_token = flow_run_var.set(flow)
    task_token = task_run_var.set(task)
    try:
        yield
    finally:
        task_run_var.reset(task_token)
        flow_run_var.reset(flow_token)


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The rows the store handler hands to the store, in order."""
    rows: list[dict[str, Any]] = []
    monkeypatch.setattr(_logging, "_store_sink", lambda: rows.append)
    return rows


@pytest.fixture
def configure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, stored: list[dict[str, Any]]
) -> Iterator[Callable[..., None]]:
    """Configure logging from GNOMON_* settings; undo it and restore ``print`` afterwards.

    Stored rows go to the ``stored`` list, not to a real store.
    """
    monkeypatch.chdir(tmp_path)  # no stray ./gnomon.toml
    monkeypatch.setenv("GNOMON_HOME", str(tmp_path))
    monkeypatch.setattr(builtins, "print", builtins.print)

    def configure(log_format: str = "json", log_level: str = "INFO") -> None:
        monkeypatch.setenv("GNOMON_LOG_FORMAT", log_format)
        monkeypatch.setenv("GNOMON_LOG_LEVEL", log_level)
        reset_settings()
        configure_logging(force=True)

    yield configure
    _logging._unconfigure()
    reset_settings()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_json_lines_carry_flow_and_task_context(configure, capsys) -> None:
    configure(log_format="auto")  # stderr is captured, not a terminal: JSON
    flow = flow_run()
    with running(flow, task_run(flow)):
        get_run_logger().info("loaded %d rows", 3)

    [line] = json_lines(capsys.readouterr().err)
    assert set(line) == {
        *("timestamp", "level", "logger", "event"),
        *("flow_run_id", "flow_run_name", "flow", "task_run_id", "task", "attempt"),
    }
    assert line["event"] == "loaded 3 rows"
    assert line["level"] == "info"
    assert line["logger"] == "gnomon.task_runs"
    assert datetime.fromisoformat(line["timestamp"]).utcoffset().total_seconds() == 0
    assert line["flow_run_id"] == FLOW_RUN_ID
    assert line["flow_run_name"] == "brave-fox"
    assert line["flow"] == "etl"
    assert line["task_run_id"] == TASK_RUN_ID
    assert line["task"] == "extract-0"
    assert line["attempt"] == 2


def test_flow_run_logger_outside_tasks_has_no_task_keys(configure, capsys) -> None:
    configure()
    with running(flow_run()):
        get_run_logger(source="api").warning("slow")

    [line] = json_lines(capsys.readouterr().err)
    assert line["logger"] == "gnomon.flow_runs"
    assert line["level"] == "warning"
    assert line["source"] == "api"
    assert line["flow_run_id"] == FLOW_RUN_ID
    assert "task_run_id" not in line


def test_engine_events_render_as_json_with_run_context(configure, capsys) -> None:
    configure()
    with running(flow_run()):
        engine_logger().info("Finished in state %s", "Completed()", state_type="COMPLETED")

    [line] = json_lines(capsys.readouterr().err)
    assert line["event"] == "Finished in state Completed()"
    assert line["logger"] == "gnomon.engine"
    assert line["state_type"] == "COMPLETED"
    assert line["flow"] == "etl"


def test_subflow_inside_a_task_is_not_attributed_to_the_task(configure, capsys) -> None:
    configure()
    parent = flow_run()
    with running(parent, task_run(parent)), running(flow_run(flow_run_id="s" * 32)):
        get_run_logger().info("in subflow")

    [line] = json_lines(capsys.readouterr().err)
    assert line["logger"] == "gnomon.flow_runs"
    assert line["flow_run_id"] == "s" * 32
    assert "task_run_id" not in line


def test_console_format_when_forced(configure, capsys) -> None:
    configure(log_format="console")
    with running(flow_run()):
        get_run_logger().info("hello")

    err = capsys.readouterr().err
    assert not err.startswith("{")
    assert "hello" in err
    assert "gnomon.flow_runs" in err
    assert f"flow_run_id={FLOW_RUN_ID}" in err
    assert "\x1b[" not in err  # no colours when stderr is not a terminal


def test_auto_format_on_a_terminal_is_coloured_console(configure, monkeypatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("NO_COLOR", raising=False)
    configure(log_format="auto")
    with running(flow_run()):
        get_run_logger().info("hello")

    assert "hello" in terminal.getvalue()
    assert "\x1b[" in terminal.getvalue()


def test_log_level_sets_the_stderr_threshold(configure, capsys) -> None:
    configure(log_level="WARNING")
    logging.getLogger("gnomon.store").info("hidden")
    logging.getLogger("gnomon.store").warning("shown")

    assert [line["event"] for line in json_lines(capsys.readouterr().err)] == ["shown"]


def test_get_run_logger_outside_a_run_raises(configure) -> None:
    configure()
    with pytest.raises(MissingContextError, match="outside a flow or task run"):
        get_run_logger()


def test_run_logger_records_are_stored_with_ids_and_level(configure, stored) -> None:
    configure()
    flow = flow_run()
    with running(flow, task_run(flow)):
        logger = get_run_logger(source="api")
        logger.debug("not stored at INFO")
        logger.info("loaded %d rows", 3, extra={"table": "users"})
        logger.warning("slow")

    assert [(row["level"], row["message"]) for row in stored] == [
        (logging.INFO, "loaded 3 rows"),
        (logging.WARNING, "slow"),
    ]
    row = stored[0]
    assert row["flow_run_id"] == FLOW_RUN_ID
    assert row["task_run_id"] == TASK_RUN_ID
    assert row["logger"] == "gnomon.task_runs"
    assert row["timestamp"].tzinfo is not None
    assert row["timestamp"].utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - row["timestamp"]).total_seconds()) < 60
    assert row["extra"]["source"] == "api"
    assert row["extra"]["table"] == "users"
    assert row["extra"]["task"] == "extract-0"
    json.dumps(row["extra"])


def test_stored_run_logs_mask_secret_fields_and_arguments(configure, stored, capsys) -> None:
    configure()
    with running(flow_run()):
        logger = get_run_logger(api_token="tok-1")
        logger.info("connecting as %(user)s with %(password)s", {"user": "ann", "password": "pw-2"})
        logger.info("config %s and %s", {"db_password": "pw-3"}, "done", extra={"secret": "s-4"})
        engine_logger().info("event with fields", client_secret="s-5", rows=3)

    assert [row["message"] for row in stored] == [
        "connecting as ann with ********",
        "config {'db_password': '********'} and done",
        "event with fields",
    ]
    assert [row["extra"].get("api_token") for row in stored[:2]] == ["********"] * 2
    assert stored[1]["extra"]["secret"] == "********"
    assert (stored[2]["extra"]["client_secret"], stored[2]["extra"]["rows"]) == ("********", 3)
    everything = json.dumps([row["message"] for row in stored] + [r["extra"] for r in stored])
    printed = capsys.readouterr().err
    for secret in ("tok-1", "pw-2", "pw-3", "s-4", "s-5"):
        assert secret not in everything
        assert secret not in printed


def test_run_info_is_stored_even_when_stderr_shows_only_warnings(configure, stored, capsys) -> None:
    configure(log_level="WARNING")
    with running(flow_run()):
        get_run_logger().info("progress")

    assert capsys.readouterr().err == ""
    assert [row["message"] for row in stored] == ["progress"]


def test_debug_records_are_stored_when_log_level_is_debug(configure, stored) -> None:
    configure(log_level="DEBUG")
    with running(flow_run()):
        get_run_logger().debug("details")

    assert [(row["level"], row["message"]) for row in stored] == [(logging.DEBUG, "details")]
    assert stored[0]["task_run_id"] is None


def test_engine_events_are_stored_only_inside_a_run(configure, stored) -> None:
    configure()
    engine_logger().info("outside any run")
    with running(flow_run()):
        engine_logger().info("Finished in state %s", "Completed()", state=object())

    [row] = stored
    assert row["logger"] == "gnomon.engine"
    assert row["message"] == "Finished in state Completed()"
    assert row["flow_run_id"] == FLOW_RUN_ID
    assert row["extra"]["state"].startswith("<object object")  # made JSON-safe
    json.dumps(row["extra"])


def test_a_daemon_worker_leaves_a_runs_start_and_end_lines_to_the_daemons_summary(
    configure, stored, monkeypatch
) -> None:
    configure()
    monkeypatch.setattr(_logging, "_run_events_summarised", False)  # restored afterwards
    with running(flow_run()):
        log_run_event("begin", "Beginning flow run 'a' for flow 'f'", subflow=False)
        _logging.summarise_run_events()  # what a daemon's worker does at start
        log_run_event("begin", "Beginning flow run 'b' for flow 'f'", subflow=False)
        log_run_event("end", "Finished in state Completed()", subflow=False, state="Completed")
        log_run_event("begin", "Beginning flow run 'c' for flow 'sub'", subflow=True)
        engine_logger().error("Finished in state Failed('boom')")

    assert [(row["message"], row["extra"].get("run_event")) for row in stored] == [
        ("Beginning flow run 'a' for flow 'f'", "begin"),
        ("Beginning flow run 'c' for flow 'sub'", "begin"),  # no summary tells a subflow's
        ("Finished in state Failed('boom')", None),
    ]


def test_logs_of_a_task_called_outside_a_flow_are_stored(configure, stored) -> None:
    configure()
    with running(None, task_run(None)):
        get_run_logger().info("standalone")

    [row] = stored
    assert (row["flow_run_id"], row["task_run_id"]) == (None, TASK_RUN_ID)


def test_stored_exceptions_include_the_traceback(configure, stored) -> None:
    configure()
    with running(flow_run()):
        try:
            raise ValueError("bad row")
        except ValueError:
            get_run_logger().exception("load failed")
            engine_logger().exception("Task run failed")

    assert [row["level"] for row in stored] == [logging.ERROR, logging.ERROR]
    for row in stored:
        assert "Traceback" in row["message"]
        assert "ValueError: bad row" in row["message"]
    assert stored[0]["message"].startswith("load failed\n")
    assert stored[1]["message"].startswith("Task run failed\n")


def test_a_failing_store_does_not_break_the_run(configure, monkeypatch, capsys) -> None:
    def broken_sink(row: dict[str, Any]) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(_logging, "_store_sink", lambda: broken_sink)
    configure()
    with running(flow_run()):
        get_run_logger().info("first")
        get_run_logger().info("second")

    lines = json_lines(capsys.readouterr().err)
    events = [line["event"] for line in lines]
    assert "first" in events
    assert "second" in events
    failures = [line for line in lines if "Could not store" in line["event"]]
    assert len(failures) == 1
    assert "disk full" in failures[0]["exception"]


def test_prints_go_to_the_run_logger_with_log_prints(configure, stored, capsys) -> None:
    configure()
    install_print_redirect()
    with running(flow_run(log_prints=True)):
        print("rows:", 3, sep=" = ")

    out, err = capsys.readouterr()
    assert out == ""
    [line] = json_lines(err)
    assert line["event"] == "rows: = 3"
    assert line["logger"] == "gnomon.flow_runs"
    assert [(row["level"], row["message"]) for row in stored] == [(logging.INFO, "rows: = 3")]


def test_prints_to_stderr_are_redirected_too_as_in_prefect(configure, stored, capsys) -> None:
    configure()
    install_print_redirect()
    with running(flow_run(log_prints=True)):
        print("warning: low disk", file=sys.stderr)

    [line] = json_lines(capsys.readouterr().err)
    assert line["event"] == "warning: low disk"
    assert [row["message"] for row in stored] == ["warning: low disk"]


def test_prints_to_other_files_are_not_redirected(configure, stored, capsys, tmp_path) -> None:
    configure()
    install_print_redirect()
    with running(flow_run(log_prints=True)), (tmp_path / "out.txt").open("w") as handle:
        print("to a file", file=handle)

    assert (tmp_path / "out.txt").read_text() == "to a file\n"
    assert stored == []


def test_prints_are_untouched_without_log_prints(configure, stored, capsys) -> None:
    configure()
    install_print_redirect()
    install_print_redirect()  # idempotent: still one plain print
    print("outside", end="!\n")
    flow = flow_run(log_prints=True)
    with running(flow, task_run(flow, log_prints=False)):
        print("task without log_prints")

    assert capsys.readouterr().out == "outside!\ntask without log_prints\n"
    assert stored == []


def test_task_log_prints_applies_inside_a_flow_without_it(configure, stored, capsys) -> None:
    configure()
    install_print_redirect()
    flow = flow_run(log_prints=False)
    with running(flow, task_run(flow, log_prints=True)):
        print("from task")

    assert capsys.readouterr().out == ""
    [row] = stored
    assert (row["logger"], row["message"], row["task_run_id"]) == (
        "gnomon.task_runs",
        "from task",
        TASK_RUN_ID,
    )


def test_run_logs_reach_the_real_store(configure, monkeypatch) -> None:
    store_module = pytest.importorskip("gnomon.store")
    monkeypatch.setattr(_logging, "_store_sink", REAL_STORE_SINK)
    configure()
    store_module.reset_store()  # a store on this test's GNOMON_HOME
    try:
        store = store_module.get_store()
        create_run(store, {"id": FLOW_RUN_ID, "name": "brave-fox", "flow_name": "etl"})
        with running(flow_run()):
            get_run_logger(source="api").warning("stored for %s", "real")
            engine_logger().info("Finished in state %s", "Completed()")
        store.flush()
        rows = logs_of(store, flow_run_id=FLOW_RUN_ID)
    finally:
        store_module.reset_store()

    assert [(row.level, row.logger, row.message) for row in rows] == [
        (logging.WARNING, "gnomon.flow_runs", "stored for real"),
        (logging.INFO, "gnomon.engine", "Finished in state Completed()"),
    ]
    assert rows[0].extra["source"] == "api"
    assert rows[0].extra["flow_run_name"] == "brave-fox"
    assert rows[0].timestamp.utcoffset().total_seconds() == 0


def test_daemon_log_lines_are_written_from_a_background_thread_with_tracebacks_and_masking(
    configure, tmp_path, monkeypatch
) -> None:
    configure()
    log_file = tmp_path / "logs" / "gnomon.jsonl"
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # not a terminal: JSON lines
    _logging.configure_daemon_logging(log_file)
    writers: set[str] = set()

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            writers.add(threading.current_thread().name)

    spy = _logging.in_background(Spy())
    logging.getLogger("gnomon.daemon").addHandler(spy)
    try:
        try:
            raise ValueError("the CRM is down")
        except ValueError:
            logging.getLogger("gnomon.daemon").exception(
                "sync failed", extra={"api_password": "hunter2", "deployment": "sync-crm"}
            )
    finally:
        logging.getLogger("gnomon.daemon").removeHandler(spy)
        spy.stop()
    _logging._unconfigure()  # stops the outputs' thread: what was queued is written

    (line,) = json_lines(log_file.read_text())
    assert (line["event"], line["deployment"], line["level"]) == (
        "sync failed",
        "sync-crm",
        "error",
    )
    assert "ValueError: the CRM is down" in line["exception"]
    assert "hunter2" not in log_file.read_text()
    assert sys.stdout.getvalue() == log_file.read_text()  # rendered once, written to both
    assert writers  # the spy ran, and not in the logging thread
    assert threading.current_thread().name not in writers


def test_background_log_lines_wait_while_runs_wait_for_a_worker_and_then_all_arrive() -> None:
    written: list[str] = []
    arrived = threading.Event()

    class Sink(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            written.append(record.getMessage())
            arrived.set()

    _log_hold.hold_background(True)
    handler = _logging.in_background(Sink())
    logger = logging.getLogger("gnomon.test.held")
    logger.addHandler(handler)
    try:
        logger.warning("first")
        logger.warning("second")
        assert not arrived.wait(0.2)  # held while runs wait for a worker
        _log_hold.hold_background(False)
        assert arrived.wait(5)
    finally:
        logger.removeHandler(handler)
        handler.stop()
        _log_hold.hold_background(False)
    assert written == ["first", "second"]


def test_a_hold_lasts_at_most_max_hold_in_one_busy_spell(monkeypatch) -> None:
    timeouts: list[float] = []

    class Quiet(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            assert timeout is not None  # a hold always ends
            timeouts.append(timeout)
            return super().wait(timeout)

    monkeypatch.setattr(_log_hold, "MAX_HOLD", 0.1)
    monkeypatch.setattr(_log_hold, "_quiet", Quiet())
    _log_hold.hold_background(True)  # and it stays busy: a long backlog of runs
    try:
        _log_hold.wait_while_held()
        _log_hold.wait_while_held()  # a later line of the same spell
    finally:
        _log_hold.hold_background(False)
        _log_hold.wait_while_held()  # the spell ends
    assert 0 < timeouts[0] <= 0.1
    assert timeouts[1] == 0  # not held again


def test_a_line_is_stamped_with_when_its_record_was_made_not_when_it_is_rendered() -> None:
    record = logging.makeLogRecord(
        {"name": "gnomon.daemon", "msg": "fired", "levelno": logging.INFO, "levelname": "INFO"}
    )
    record.created = 1_000_000_000.5  # rendered now, made in 2001

    line = json.loads(_logging._formatter("json").format(record))

    assert line["timestamp"] == "2001-09-09T01:46:40.500000Z"


# A run's log cap, as a daemon's worker sets it for each run.


@pytest.fixture
def capped(configure: Callable[..., None]) -> Iterator[Callable[[int, int], None]]:
    """Set the cap as a worker does at a run's start; lifted after the test."""
    configure()
    yield cap_run_logs
    cap_run_logs(None, None)


def messages(rows: list[dict[str, Any]]) -> list[str]:
    return [row["message"] for row in rows]


def test_a_capped_run_keeps_its_first_lines_then_one_truncation_warning_whatever_its_threads(
    capped,
    stored,
    capsys,
) -> None:
    capped(100, 10**9)
    flow = flow_run()

    def chatter(thread: int) -> None:
        with running(flow, task_run(flow)):
            for number in range(50):
                get_run_logger().info("thread %d line %d", thread, number)

    threads = [threading.Thread(target=chatter, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = [row for row in stored if row["message"].startswith("thread")]
    truncations = [row for row in stored if row["message"].startswith("log truncated")]
    assert len(lines) == 100
    assert [(row["level"], row["message"]) for row in truncations] == [
        (
            logging.WARNING,
            "log truncated: the run reached 100 lines (max_log_lines);"
            " the rest of what it logs is dropped",
        )
    ]
    assert truncations[0]["flow_run_id"] == flow.flow_run_id
    assert truncations[0]["extra"]["log_truncated"] is True
    printed = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    # The console got the same lines as the store. Not in the same order: a thread whose
    # line was the last admitted may print it after another thread, refused, printed the
    # truncation line (admitting and printing are not one step; in one thread they are
    # in order, as the other cap tests check).
    assert sorted(line["event"] for line in printed) == sorted(
        row["message"] for row in [*lines, *truncations]
    )


def test_the_byte_cap_counts_encoded_bytes_and_engine_events_too(capped, stored) -> None:
    capped(1000, 100)
    with running(flow_run()):
        get_run_logger().info("é" * 30)  # 60 bytes in UTF-8
        engine_logger().info("an engine event of 30 bytes...")
        get_run_logger().info("one byte too many")

    assert messages(stored) == [
        "é" * 30,
        "an engine event of 30 bytes...",
        "log truncated: the run reached 100 bytes (max_log_bytes);"
        " the rest of what it logs is dropped",
    ]


def test_each_run_starts_a_new_count_and_lifting_the_cap_lets_everything_through(
    capped,
    stored,
) -> None:
    for run in ("a" * 32, "b" * 32):
        capped(2, 10**9)
        with running(flow_run(flow_run_id=run)):
            for number in range(3):
                get_run_logger().info("%s %d", run[0], number)
    cap_run_logs(None, None)
    with running(flow_run()):
        for number in range(5):
            get_run_logger().info("free %d", number)

    assert [message for message in messages(stored) if not message.startswith("log")] == [
        "a 0",
        "a 1",
        "b 0",
        "b 1",
        *(f"free {number}" for number in range(5)),
    ]
    assert sum(message.startswith("log truncated") for message in messages(stored)) == 2
