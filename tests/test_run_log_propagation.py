"""Run loggers propagate to the root logger, as Prefect's do: pytest's ``caplog`` and a
handler on the root logger see run logs, and a line is never printed twice."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import run_python
from gnomon import flow, get_run_logger, task


def test_caplog_sees_flow_and_task_run_logs(caplog: pytest.LogCaptureFixture) -> None:
    @task
    def extract() -> None:
        get_run_logger().warning("task line %d", 2)

    @flow
    def pipeline() -> None:
        get_run_logger().info("flow line")
        extract()

    with caplog.at_level(logging.INFO):
        pipeline()

    lines = [(record.name, record.getMessage()) for record in caplog.records]
    assert ("gnomon.flow_runs", "flow line") in lines
    assert ("gnomon.task_runs", "task line 2") in lines


FLOW = """
import logging, sys
from gnomon import flow, get_run_logger
{setup}

@flow
def hello() -> None:
    get_run_logger().info("hello once")

hello()
"""


def _stderr_of(setup: str, home: Path) -> str:
    result = run_python(FLOW.format(setup=setup), home, GNOMON_LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_a_root_console_handler_prints_run_logs_once(gnomon_home: Path) -> None:
    stderr = _stderr_of(
        'logging.basicConfig(level=logging.INFO, format="ROOT %(name)s %(message)s")',
        gnomon_home,
    )
    assert stderr.count("hello once") == 1
    assert "ROOT gnomon.flow_runs hello once" in stderr


def test_without_a_root_handler_gnomon_prints_run_logs_once(gnomon_home: Path) -> None:
    stderr = _stderr_of("", gnomon_home)
    assert stderr.count("hello once") == 1
    assert '"event": "hello once"' in stderr  # gnomon's own JSON line


def test_a_root_handler_writing_elsewhere_leaves_gnomons_line(
    gnomon_home: Path, tmp_path: Path
) -> None:
    log_file = tmp_path / "forwarded.log"
    stderr = _stderr_of(
        f"logging.basicConfig(filename={str(log_file)!r}, level=logging.INFO,"
        ' format="FORWARDED %(message)s")',
        gnomon_home,
    )
    assert stderr.count("hello once") == 1
    assert "FORWARDED hello once" in log_file.read_text()


def test_a_root_handler_above_the_records_level_leaves_gnomons_line(gnomon_home: Path) -> None:
    stderr = _stderr_of(
        "handler = logging.StreamHandler(sys.stderr); handler.setLevel(logging.ERROR)\n"
        "logging.getLogger().addHandler(handler)",
        gnomon_home,
    )
    assert stderr.count("hello once") == 1
    assert '"event": "hello once"' in stderr
