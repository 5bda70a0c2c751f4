"""The config's ``[[pools]]``, ``priority``, ``pool``, ``env``, ``working_dir`` and ``user``:
each problem named by file, deployment (or pool entry), field and value; ``env`` kept
masked wherever the store, the CLI and the API see it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gnomon.deployments import load_config
from test_deployments_config import D, load, one_deployment, write

CRON = 'cron = "0 * * * *"\n'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(
        tmp_path / "flows" / "etl.py",
        "from gnomon import flow\n\n@flow\ndef sync() -> None:\n    pass\n",
    )
    return tmp_path


def deployment(lines: str, name: str = "d") -> str:
    return one_deployment(CRON + lines, name=name)


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ('priority = "high"', 'priority "high": Input should be a valid integer'),
        ("env = { SECRET = 1234 }", 'env.SECRET: must be a text, { from_env = "NAME" } or'),
        ("priority = 1.5", "priority 1.5: Input should be a valid integer"),
        (
            'pool = "no such"',
            "pool \"no such\": must be 1 to 100 letters, digits, '-', '_' or '.', not only dots",
        ),
        (
            'env = { "1X" = "a" }',
            "env: '1X' is not a variable name (letters, digits, _)",
        ),
        (
            'env = { GNOMON_HOME = "/x" }',
            "env: GNOMON_HOME: GNOMON_* variables are gnomon's own, not a run's",
        ),
        (
            'env = { TOKEN = { from_env = "" } }',
            "env.TOKEN: '' is not a variable name (letters, digits, _)",
        ),
        (
            'env = { TOKEN = { from_file = "x" } }',
            'env.TOKEN: must be a text, { from_env = "NAME" } or { file = "path" }',
        ),
        ('working_dir = "missing"', 'working_dir "missing": '),
        ('user = "no-such-user-here"', 'user "no-such-user-here": '),
    ],
)
def test_a_bad_value_is_a_problem_naming_the_deployment_field_and_value(
    project: Path, lines: str, problem: str
) -> None:
    problems = load(project, deployment(lines), check_flows=False)

    assert any(line.startswith(D + problem) for line in problems), problems


def test_an_unknown_pool_is_refused_with_the_closest_name_and_the_others_load(
    project: Path,
) -> None:
    text = (
        '[[pools]]\nname = "warehouse"\nslots = 2\n\n'
        + deployment('pool = "warehose"')
        + "\n"
        + deployment('pool = "warehouse"', name="ok")
    )
    result = load_config(write(project / "gnomon.toml", text), check_flows=False)

    assert [str(problem) for problem in result.problems] == [
        D + 'pool "warehose": no [[pools]] entry has this name; did you mean "warehouse"?'
    ]
    assert result.problems[0].confined  # a reload keeps d's last good version
    assert [d.name for d in result.config.deployments] == ["ok"]
    assert [(p.name, p.slots) for p in result.config.pools] == [("warehouse", 2)]


def test_bad_pool_entries_are_named_by_their_place_and_field(project: Path) -> None:
    text = """
    pools = [
        { name = "warehouse", slots = 0 },
        { name = "lake" },
        { name = "warehouse", slots = 2 },
        { name = "warehouse", slots = 3 },
        { name = "x", slots = 1, size = 3 },
    ]
    """
    problems = load(project, text, check_flows=False)

    assert problems == [
        "gnomon.toml: pools[0].slots 0: Input should be greater than or equal to 1",
        "gnomon.toml: pools[1].slots: required key is missing",
        'gnomon.toml: pools[3].name "warehouse": another [[pools]] entry has this name',
        "gnomon.toml: pools[4].size: unknown key",
    ]


def test_env_file_and_working_dir_are_relative_to_the_config_file_and_env_is_masked(
    project: Path,
) -> None:
    (project / "work").mkdir()
    lines = """
    working_dir = "work"
    priority = -3

    [deployments.env]
    API_URL = "https://api.example.com"
    TOKEN = { from_env = "CRM_TOKEN" }
    PASSWORD = { file = "secrets/pw" }
    """
    result = load_config(write(project / "gnomon.toml", deployment(lines)), check_flows=False)
    assert result.ok, result.problems
    [loaded] = result.config.deployments

    policies = loaded.policies()
    assert (policies["working_dir"], policies["priority"]) == (str(project / "work"), -3)
    assert policies["env"] == {
        "API_URL": "********",
        "PASSWORD": {"file": str(project / "secrets" / "pw")},
        "TOKEN": {"from_env": "CRM_TOKEN"},
    }
    assert "api.example.com" not in repr(policies)


def test_user_when_the_daemon_is_not_root_is_a_problem_naming_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # the loader as a user's daemon sees it

    problems = load(project, deployment('user = "nobody"'), check_flows=False)

    assert problems == [
        D + "user \"nobody\": running flows as user 'nobody' needs the daemon to run as root"
        " (it runs as uid 1000); remove user, or start the daemon as root"
    ]


def test_a_problem_with_env_never_quotes_its_values(project: Path) -> None:
    lines = 'env = { GNOMON_TOKEN = "hunter2-secret", OK = "fine-value" }'

    problems = load(project, deployment(lines), check_flows=False)

    assert len(problems) == 1
    assert "hunter2" not in problems[0]
    assert "fine-value" not in problems[0]
