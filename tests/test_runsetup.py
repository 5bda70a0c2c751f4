"""A run's env and working directory as a worker applies them (``daemon._runsetup``,
reached directly: the worker's side of the run request has no public face, and these
cases need no daemon): references read at the run's start, a missing one named, and
everything put back after the run, since workers are reused across deployments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gnomon.daemon._runsetup import RunSetup, RunSetupError, applied, resolve_env


def test_references_are_read_when_the_run_starts_a_files_last_newline_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("first\n")
    monkeypatch.setenv("GNOMON_TEST_SOURCE", "from-env")
    env = {"A": "plain", "B": {"from_env": "GNOMON_TEST_SOURCE"}, "C": {"file": str(secret)}}

    assert resolve_env("d", env) == {"A": "plain", "B": "from-env", "C": "first"}
    secret.write_text("rotated\n\n")  # read afresh by the next run; one newline dropped
    assert resolve_env("d", env)["C"] == "rotated\n"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ({"from_env": "GNOMON_TEST_ABSENT"}, "environment variable GNOMON_TEST_ABSENT is not set"),
        ({"file": "/nonexistent/pw"}, "no such file '/nonexistent/pw'"),
    ],
)
def test_a_missing_reference_names_the_deployment_and_the_variable(
    reference: dict[str, str], message: str
) -> None:
    with pytest.raises(RunSetupError) as raised:
        resolve_env("nightly", {"TOKEN": reference})

    assert str(raised.value) == f"deployment 'nightly': env TOKEN: {message}"


def test_the_variables_and_the_directory_are_put_back_after_the_run(tmp_path: Path) -> None:
    before_env, before_cwd = dict(os.environ), os.getcwd()
    setup = RunSetup("d", {"GNOMON_TEST_RUN_VAR": "inside"}, str(tmp_path))

    with applied(setup) as become:
        assert become is None  # no user: nothing to change for good
        assert os.environ["GNOMON_TEST_RUN_VAR"] == "inside"
        assert os.getcwd() == str(tmp_path)
        os.environ["GNOMON_TEST_SET_BY_FLOW"] = "leaks?"  # a flow's own change goes too

    assert dict(os.environ) == before_env
    assert os.getcwd() == before_cwd


def test_a_working_dir_that_is_gone_fails_before_the_run_and_changes_nothing(
    tmp_path: Path,
) -> None:
    before_env = dict(os.environ)
    setup = RunSetup("d", {"GNOMON_TEST_RUN_VAR": "x"}, str(tmp_path / "gone"))

    with (
        pytest.raises(RunSetupError, match=r"deployment 'd': working_dir '.*gone': "),
        applied(setup),
    ):
        pass

    assert dict(os.environ) == before_env
