"""The daemon's log outputs in one process: the JSON lines file (private, rotated by size,
reopened for logrotate), stdout's priority prefix for journald, and the settings that
drive them."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gnomon.deployments import load_config
from gnomon.flows import _logging
from gnomon.flows._log_outputs import (
    DaemonStdout,
    daemon_lines,
    journal_priority,
    reopen_daemon_log,
)

LOG = logging.getLogger("gnomon.daemon.test-outputs")


@pytest.fixture
def daemon_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The daemon's logging set-up in this process, undone (and its lines written) after."""
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # not a terminal: JSON lines
    yield
    _logging._unconfigure()
    daemon_lines.stdout = daemon_lines.file = None


def written(log_file: Path) -> None:
    """Let the daemon's background thread write what was logged (it stops, then restarts)."""
    handler = next(h for _, h in _logging._installed if isinstance(h, _logging.QueuedHandler))
    handler.listener.stop()
    handler.listener.start()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_log_file_rotates_past_its_size_keeping_n_private_files(
    daemon_logging: None, tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "gnomon.jsonl"
    old = os.umask(0o022)  # as a daemon started from a shell would have it
    try:
        _logging.configure_daemon_logging(log_file, max_bytes=2000, keep=2)
        for number in range(100):
            LOG.warning("line %d %s", number, "x" * 50)
        written(log_file)
    finally:
        os.umask(old)

    rotated = sorted(path.name for path in log_file.parent.iterdir())
    assert rotated == ["gnomon.jsonl", "gnomon.jsonl.1", "gnomon.jsonl.2"]  # two kept
    numbers = []
    for name in reversed(rotated):  # oldest first
        path = log_file.parent / name
        assert path.stat().st_size <= 2000
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        numbers += [int(line["event"].split()[1]) for line in lines(path)]
    # The newest lines, in order, none lost between files; the oldest were rotated away.
    assert numbers == list(range(numbers[0], 100))
    assert numbers[0] > 0
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700


def test_reopen_after_logrotate_moved_the_file_writes_to_a_new_one(
    daemon_logging: None, tmp_path: Path
) -> None:
    log_file = tmp_path / "gnomon.jsonl"
    _logging.configure_daemon_logging(log_file, max_bytes=0)
    LOG.warning("before the move")
    written(log_file)
    log_file.rename(tmp_path / "gnomon.jsonl-20260101")  # logrotate's move ...
    reopen_daemon_log()  # ... and its postrotate, through the daemon's loop
    assert log_file.exists()  # the new file is there at once, private
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    LOG.warning("after the move")
    written(log_file)
    daemon_lines.write(json.dumps({"event": "a worker's line", "level": "info"}))

    assert [line["event"] for line in lines(tmp_path / "gnomon.jsonl-20260101")] == [
        "before the move"
    ]
    assert [line["event"] for line in lines(log_file)] == ["after the move", "a worker's line"]


def test_a_file_moved_away_without_a_reopen_is_noticed_at_the_next_line(
    daemon_logging: None, tmp_path: Path
) -> None:
    log_file = tmp_path / "gnomon.jsonl"
    _logging.configure_daemon_logging(log_file)
    LOG.warning("first")
    written(log_file)
    log_file.rename(tmp_path / "gnomon.jsonl.old")
    LOG.warning("second")
    written(log_file)

    assert [line["event"] for line in lines(log_file)] == ["second"]


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
    ],
)
def test_each_level_has_the_syslog_priority_journald_files_it_under(
    level: int, priority: int
) -> None:
    assert journal_priority(level) == priority


def test_stdout_connected_to_journald_prefixes_each_line_with_its_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "stdout").open("w+") as stream:
        status = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        journal = DaemonStdout(stream, logging.INFO, render=None)
        journal.write('{"event": "run finished: etl Failed"}', logging.ERROR)
        journal.relay('{"event": "retrying", "level": "warning"}')
        journal.relay("not json")
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino + 1}")
        elsewhere = DaemonStdout(stream, logging.INFO, render=None)  # another stream
        elsewhere.write('{"event": "plain"}', logging.ERROR)
        stream.seek(0)
        assert stream.read().splitlines() == [
            '<3>{"event": "run finished: etl Failed"}',
            '<4>{"event": "retrying", "level": "warning"}',
            "<6>not json",
            '{"event": "plain"}',
        ]


def config_with(tmp_path: Path, daemon: str) -> Path:
    path = tmp_path / "gnomon.toml"
    path.write_text(f"[daemon]\n{daemon}\n")
    return path


def test_log_rotation_settings_read_sizes_in_words_and_default_sensibly(tmp_path: Path) -> None:
    default = load_config(config_with(tmp_path, ""), check_flows=False).config.daemon
    assert (default.log_file_max_bytes, default.log_file_keep) == (100_000_000, 5)

    chosen = load_config(
        config_with(tmp_path, 'log_file_max_bytes = "10MiB"\nlog_file_keep = 2'),
        check_flows=False,
    ).config.daemon
    assert (chosen.log_file_max_bytes, chosen.log_file_keep) == (10 * 1024 * 1024, 2)

    never = load_config(config_with(tmp_path, "log_file_max_bytes = 0"), check_flows=False)
    assert never.config.daemon.log_file_max_bytes == 0  # logrotate's job then


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ('log_file_max_bytes = "lots"', "log_file_max_bytes"),
        ("log_file_max_bytes = -1", "log_file_max_bytes"),
        ("log_file_keep = 0", "log_file_keep"),
    ],
)
def test_a_bad_log_rotation_setting_is_a_problem_naming_it(
    tmp_path: Path, setting: str, field: str
) -> None:
    problems = load_config(config_with(tmp_path, setting), check_flows=False).problems

    assert len(problems) == 1
    assert f"daemon.{field}" in str(problems[0])
