"""The ``gnomon`` command, run as a user runs it: the installed script or ``python -m``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import gnomon
from gnomon.store import HEAD_REVISION, current_revision

SCRIPT = Path(sys.executable).with_name("gnomon")


@pytest.fixture(params=["installed script", "python -m gnomon.cli"])
def command(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "installed script":
        assert SCRIPT.is_file(), f"the gnomon script is not installed beside {sys.executable}"
        return [str(SCRIPT)]
    return [sys.executable, "-m", "gnomon.cli"]


def _run(command: list[str], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def test_db_upgrade_creates_the_store_on_a_fresh_home_and_reports_the_revision(
    command: list[str], gnomon_home: Path
) -> None:
    assert not gnomon_home.exists()

    first = _run(command, "db", "upgrade")

    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"store migrated from empty to {HEAD_REVISION}"
    database = gnomon_home / "gnomon.db"
    assert database.is_file()
    assert current_revision(f"sqlite:///{database}") == HEAD_REVISION

    second = _run(command, "db", "upgrade")

    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == f"store is up to date at revision {HEAD_REVISION}"


def test_db_upgrade_uses_gnomon_database_url_when_it_is_set(
    command: list[str], gnomon_home: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "shared" / "runs.db"

    result = _run(command, "db", "upgrade", GNOMON_DATABASE_URL=f"sqlite:///{elsewhere}")

    assert result.returncode == 0, result.stderr
    assert current_revision(f"sqlite:///{elsewhere}") == HEAD_REVISION
    assert not (gnomon_home / "gnomon.db").exists()


def test_help_lists_the_commands(command: list[str]) -> None:
    result = _run(command, "--help")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ")
    assert "db" in result.stdout
    db_help = _run(command, "db", "--help")
    assert db_help.returncode == 0, db_help.stderr
    assert "upgrade" in db_help.stdout


def test_version_prints_the_package_version(command: list[str]) -> None:
    result = _run(command, "--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"gnomon, version {gnomon.__version__}"


def test_unknown_command_fails_with_a_usage_error(command: list[str]) -> None:
    result = _run(command, "frobnicate")

    assert result.returncode == 2
    assert "No such command 'frobnicate'" in result.stderr
