"""Loading the deployments config: every problem named by file, deployment, field and value;
valid deployments loaded alongside bad ones; includes, defaults from [daemon], durations."""

from __future__ import annotations

import os
import sys
import textwrap
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gnomon.deployments import (
    Catchup,
    ConfigProblem,
    DaemonConfig,
    Deployment,
    Overlap,
    load_config,
    load_config_or_raise,
)
from gnomon.exceptions import ConfigError
from gnomon.scheduling import CronTrigger, IntervalTrigger, ScheduleError

FLOWS = """
from datetime import datetime

from gnomon import flow


@flow
def sync(n: int = 1, label: str = "x") -> int:
    return n


@flow
def needs(n: int) -> int:
    return n


@flow
def dated(when: datetime) -> str:
    return when.isoformat()


def plain() -> None:
    pass
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory with flows/etl.py beside where gnomon.toml will be written."""
    write(tmp_path / "flows" / "etl.py", FLOWS)
    write(tmp_path / "flows" / "broken.py", "raise RuntimeError('boom at import')\n")
    return tmp_path


def load(project: Path, text: str, **kwargs: bool) -> list[str]:
    result = load_config(write(project / "gnomon.toml", text), **kwargs)
    return [str(problem) for problem in result.problems]


def one_deployment(lines: str, flow: str = "flows/etl.py:sync", name: str = "d") -> str:
    return f'[[deployments]]\nname = "{name}"\nflow = "{flow}"\n{textwrap.dedent(lines)}'


D = 'gnomon.toml: deployment "d": '
NAME_RULE = "must be 1 to 100 letters, digits, '-', '_' or '.', not only dots"
ENTRYPOINT_RULE = "must look like 'package.module:function' or 'path/to/file.py:function'"
SETTINGS_ONLY = """
home = "x"
database_url = "sqlite://"
log_level = "INFO"
log_format = "json"
task_runner_max_workers = 2
flush_interval = 0.1
"""

# (the deployment's lines, the exact rendered problem)
EXACT = [
    (
        'cron = "* * * * *"\ntimezone = "Mars/Base"',
        D + "timezone \"Mars/Base\": unknown timezone 'Mars/Base'",
    ),
    (
        'cron = "* * * * *"\ninterval = "5m"',
        D + "set exactly one of cron or interval (both are set)",
    ),
    ("", D + "set one of cron, interval, schedules or after (none is set)"),
    (
        'cron = "* * * * *"\nanchor = 2027-01-01T00:00:00Z',
        D + "anchor applies to interval deployments only, not cron",
    ),
    (
        'interval = "5m"\noverlap = "sometimes"',
        D + "overlap \"sometimes\": Input should be 'skip', 'queue', 'allow' or 'cancel_previous'",
    ),
    (
        'interval = "5m"\ncatchup = "some"',
        D + "catchup \"some\": Input should be 'latest', 'all' or 'none'",
    ),
    ('interval = "5m"\nretries = "3"', D + 'retries "3": Input should be a valid integer'),
    ('interval = "5m"\nretries = -1', D + "retries -1: Input should be greater than or equal to 0"),
    (
        'interval = "5m"\nmax_concurrent = 0',
        D + "max_concurrent 0: Input should be greater than or equal to 1",
    ),
    ('interval = "5m"\npaused = "yes"', D + 'paused "yes": Input should be a valid boolean'),
    ('interval = "5m"\ntimeout = 0', D + "timeout 0: must be longer than zero"),
    ('interval = "5m"\njitter = -1', D + "jitter -1: must not be negative"),
    (
        'interval = "5m"\nmisfire_grace = true',
        D + 'misfire_grace true: must be a duration like 30 (seconds), "90s" or "PT15M"',
    ),
    ('interval = "5m"\ntimzone = "UTC"', D + 'timzone: unknown key (did you mean "timezone"?)'),
    ('interval = "5m"\nsource_file = "x.toml"', D + 'source_file "x.toml": unknown key'),
    ('interval = "5m"\ntags = ["a", 1]', D + "tags.1 1: Input should be a valid string"),
    (
        'interval = "5m"\nparameters = { m = 3 }',
        D + "parameters.m 3: flow 'sync' has no parameter 'm' (it takes: n, label)",
    ),
]


@pytest.mark.parametrize(("lines", "expected"), EXACT)
def test_each_problem_names_the_file_deployment_field_and_value(
    project: Path, lines: str, expected: str
) -> None:
    assert load(project, one_deployment(lines)) == [expected]


# (the deployment's lines, the exact prefix, what the scheduling module or pydantic says after it)
FROM_ELSEWHERE = [
    ('cron = "61 * * * *"', D + 'cron "61 * * * *": ', "minute 61 is outside 0-59"),
    ('cron = "0 0 30 2 *"', D + 'cron "0 0 30 2 *": ', "never fires"),
    ('cron = "* * *"', D + 'cron "* * *": ', "field"),
    ('interval = "abc"', D + 'interval "abc": ', "not a duration"),
    ('interval = "P1M"', D + 'interval "P1M": ', "no fixed length"),
    ('interval = "5m"\ntimeout = "soon"', D + 'timeout "soon": ', "not a duration"),
    ('interval = "5m"\nparameters = { n = "x" }', D + 'parameters.n "x": ', "valid integer"),
]


@pytest.mark.parametrize(("lines", "prefix", "detail"), FROM_ELSEWHERE)
def test_schedule_and_type_problems_carry_the_checker_s_own_words(
    project: Path, lines: str, prefix: str, detail: str
) -> None:
    [problem] = load(project, one_deployment(lines))

    assert problem.startswith(prefix)
    assert detail in problem.removeprefix(prefix)


def test_the_issue_s_example_from_an_included_file_renders_exactly(project: Path) -> None:
    write(
        project / "deployments" / "crm.toml",
        '[[deployments]]\nname = "sync-crm"\nflow = "../flows/etl.py:sync"\ncron = "61 * * * *"\n',
    )

    [problem] = load(project, 'include = ["deployments/*.toml"]\n')

    assert (
        problem == 'deployments/crm.toml: deployment "sync-crm": cron "61 * * * *": '
        "minute 61 is outside 0-59"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            '"bad name!"',
            'gnomon.toml: deployment "bad name!": name "bad name!": ' + NAME_RULE,
        ),
        (
            '".."',
            'gnomon.toml: deployment "..": name "..": ' + NAME_RULE,
        ),
        (
            f'"{"x" * 101}"',
            f'gnomon.toml: deployment "{"x" * 101}": name "{"x" * 101}": ' + NAME_RULE,
        ),
        ("7", "gnomon.toml: deployments[0].name 7: Input should be a valid string"),
    ],
)
def test_names_are_letters_digits_dash_underscore_dot_up_to_100(
    project: Path, name: str, expected: str
) -> None:
    text = f'[[deployments]]\nname = {name}\nflow = "flows/etl.py:sync"\ninterval = "1m"\n'

    assert load(project, text) == [expected]


def test_a_100_character_name_with_every_allowed_character_is_fine(project: Path) -> None:
    name = ("Az09-_." * 15)[:100]
    result = load_config(
        write(project / "gnomon.toml", one_deployment('interval = "1m"', name=name))
    )

    assert result.ok, result.problems
    assert [d.name for d in result.config.deployments] == [name]


def test_a_nameless_entry_is_pointed_at_by_its_place_in_the_file(project: Path) -> None:
    text = """
        [[deployments]]
        name = "a"
        flow = "flows/etl.py:sync"
        interval = "1m"

        [[deployments]]
        flow = "flows/etl.py:sync"
        cron = "61 * * * *"
        """

    problems = load(project, text)

    assert problems[0] == "gnomon.toml: deployments[1].name: required key is missing"
    assert problems[1].startswith('gnomon.toml: deployments[1].cron "61 * * * *": minute 61')


def flow_problem(project: Path) -> dict[str, str]:
    etl = project / "flows" / "etl.py"
    return {
        "flows/etl.py:nowhere": f"{etl} has no attribute 'nowhere'",
        "flows/missing.py:sync": f"no such file {project / 'flows' / 'missing.py'}",
        "flows/etl.py:plain": f"'plain' in {etl} is not a @flow",
        "flows/broken.py:f": (
            f"cannot import {project / 'flows' / 'broken.py'}: RuntimeError: boom at import"
        ),
        "no_such_package_xyz.jobs:sync": (
            "cannot import no_such_package_xyz.jobs: "
            "ModuleNotFoundError: No module named 'no_such_package_xyz'"
        ),
        "not an entrypoint": ENTRYPOINT_RULE,
        "flows/etl.py:": ENTRYPOINT_RULE,
    }


@pytest.mark.parametrize(
    "flow",
    [
        "flows/etl.py:nowhere",
        "flows/missing.py:sync",
        "flows/etl.py:plain",
        "flows/broken.py:f",
        "no_such_package_xyz.jobs:sync",
        "not an entrypoint",
        "flows/etl.py:",
    ],
)
def test_a_flow_that_does_not_import_is_a_problem_at_load_naming_the_import_error(
    project: Path, flow: str
) -> None:
    problems = load(project, one_deployment('interval = "1m"', flow=flow))

    assert problems == [f'{D}flow "{flow}": {flow_problem(project)[flow]}']


@pytest.mark.parametrize(
    ("top_level", "reported"),
    [
        ("import os\nos._exit(3)\n", "it ended the flow check process (exit code 3)"),
        (
            "import ctypes\nctypes.string_at(0)\n",
            "it ended the flow check process (killed by signal SIGSEGV)",
        ),
    ],
)
def test_a_flow_module_that_ends_the_check_process_is_reported_and_the_others_still_checked(
    project: Path, top_level: str, reported: str
) -> None:
    write(project / "flows" / "fatal.py", top_level)
    text = (
        one_deployment('interval = "1m"', flow="flows/fatal.py:f", name="fatal")
        + "\n"
        + one_deployment('interval = "1m"\nparameters = { m = 1 }', name="after")
    )

    problems = load(project, text)

    fatal = project / "flows" / "fatal.py"
    assert problems == [
        f'gnomon.toml: deployment "fatal": flow "flows/fatal.py:f": cannot import {fatal}: '
        + reported,
        "gnomon.toml: deployment \"after\": parameters.m 1: flow 'sync' has no parameter 'm' "
        "(it takes: n, label)",
    ]


def test_a_flow_module_that_does_not_answer_in_time_is_reported_naming_the_timeout(
    project: Path,
) -> None:
    write(project / "flows" / "slow.py", "import time\ntime.sleep(60)\n")
    text = '[daemon]\nflow_check_timeout = "1s"\n\n' + one_deployment(
        'interval = "1m"', flow="flows/slow.py:f"
    )

    problems = load(project, text)

    assert problems == [
        f'{D}flow "flows/slow.py:f": cannot import {project / "flows" / "slow.py"}: '
        "no answer within 1 s (see flow_check_timeout)"
    ]


def test_the_check_reports_each_flow_s_parameter_schema_and_whether_every_flow_passed(
    project: Path,
) -> None:
    good = load_config(write(project / "gnomon.toml", one_deployment('interval = "1m"')))
    bad = load_config(
        write(project / "gnomon.toml", one_deployment('interval = "1m"', flow="flows/broken.py:f"))
    )

    [(entrypoint, schema)] = good.schemas.items()
    assert entrypoint == f"{project / 'flows' / 'etl.py'}:sync"
    assert schema["title"] == "sync"
    assert schema["properties"]["n"]["type"] == "integer"
    assert (good.flows_ok, bad.flows_ok, dict(bad.schemas)) == (True, False, {})


def test_without_check_flows_nothing_is_imported(project: Path) -> None:
    text = one_deployment('interval = "1m"\nparameters = { zzz = 1 }', flow="flows/broken.py:f")

    assert load(project, text, check_flows=False) == []


def test_a_flow_module_on_the_working_directory_is_found(project: Path) -> None:
    write(
        project / "cfg_test_jobs.py",
        "from gnomon import flow\n\n@flow\ndef job(n: int) -> int:\n    return n\n",
    )
    try:
        result = load_config(
            write(
                project / "gnomon.toml",
                one_deployment('interval = "1m"\nparameters = { n = 2 }', flow="cfg_test_jobs:job"),
            )
        )
    finally:
        sys.modules.pop("cfg_test_jobs", None)

    assert result.ok, result.problems
    assert result.config.deployments[0].flow == "cfg_test_jobs:job"


def test_parameters_are_bound_to_the_signature_and_validated_against_type_hints(
    project: Path,
) -> None:
    text = (
        one_deployment('interval = "1m"\nparameters = { n = "x", label = 5, m = [1, 2] }')
        + "\n"
        + one_deployment('interval = "1m"', flow="flows/etl.py:needs", name="e")
    )

    problems = load(project, text)

    assert (
        problems[0]
        == D + "parameters.m [1, 2]: flow 'sync' has no parameter 'm' (it takes: n, label)"
    )
    assert problems[1].startswith(D + 'parameters.n "x": Input should be a valid integer')
    assert problems[2].startswith(D + "parameters.label 5: Input should be a valid string")
    assert (
        problems[3]
        == "gnomon.toml: deployment \"e\": parameters.n: required by flow 'needs' and not given"
    )
    assert len(problems) == 4


def test_parameters_are_coerced_as_a_run_would_and_toml_dates_stay_json(project: Path) -> None:
    text = (
        one_deployment('interval = "1m"\nparameters = { n = "5" }')
        + "\n"
        + one_deployment(
            'interval = "1m"\nparameters = { when = 2027-01-01T09:00:00Z }',
            flow="flows/etl.py:dated",
            name="e",
        )
    )

    result = load_config(write(project / "gnomon.toml", text))

    assert result.ok, result.problems
    first, second = result.config.deployments
    assert first.parameters == {"n": "5"}  # stored as written; the run validates it
    assert second.parameters == {"when": "2027-01-01T09:00:00+00:00"}


def test_valid_deployments_load_alongside_bad_ones(project: Path) -> None:
    text = (
        one_deployment('interval = "1m"', name="good")
        + "\n"
        + one_deployment('cron = "61 * * * *"', name="bad-cron")
        + "\n"
        + one_deployment('interval = "1m"', flow="flows/etl.py:nowhere", name="bad-flow")
        + "\n"
        + one_deployment('cron = "0 * * * *"', name="also-good")
    )

    result = load_config(write(project / "gnomon.toml", text))

    assert [d.name for d in result.config.deployments] == ["good", "also-good"]
    assert len(result.problems) == 2
    assert result.failed == {"bad-cron", "bad-flow"}
    assert not result.ok


def test_a_clean_config_is_ok(project: Path) -> None:
    result = load_config(write(project / "gnomon.toml", one_deployment('interval = "1m"')))

    assert result.ok
    assert result.problems == []


def test_relative_flow_paths_resolve_against_the_declaring_file(
    project: Path, tmp_path: Path
) -> None:
    write(
        project / "deployments" / "a.toml",
        one_deployment('interval = "1m"', flow="../flows/etl.py:sync"),
    )
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    write(elsewhere / "flows" / "other.py", FLOWS)
    write(
        elsewhere / "b.toml",
        one_deployment('interval = "1m"', flow="flows/other.py:sync", name="e"),
    )
    text = f'include = ["deployments/*.toml", "{elsewhere}/*.toml"]\n'

    result = load_config(write(project / "gnomon.toml", text))

    assert result.ok, result.problems
    assert [d.flow for d in result.config.deployments] == [
        f"{project}/flows/etl.py:sync",
        f"{elsewhere}/flows/other.py:sync",
    ]
    assert result.config.files == (
        project / "gnomon.toml",
        project / "deployments" / "a.toml",
        elsewhere / "b.toml",
    )


def test_includes_load_in_sorted_order_and_problems_outside_the_main_directory_show_full_paths(
    project: Path, tmp_path: Path
) -> None:
    for name in ("b", "a"):
        write(
            project / "deployments" / f"{name}.toml",
            one_deployment('interval = "1m"', flow="../flows/etl.py:sync", name=name),
        )
    elsewhere = write(
        tmp_path.parent / f"{tmp_path.name}-out" / "x.toml",
        one_deployment('cron = "61 * * * *"', flow="/nowhere.py:f"),
    )

    result = load_config(
        write(project / "gnomon.toml", f'include = ["deployments/*.toml", "{elsewhere}"]\n'),
        check_flows=False,
    )

    assert [d.name for d in result.config.deployments] == ["a", "b"]
    assert str(result.problems[0]).startswith(f'{elsewhere}: deployment "d": cron "61 * * * *": ')


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        ('["deployments/crm.toml"]', ['gnomon.toml: include "deployments/crm.toml": no such file']),
        ('["deployments/*.toml"]', []),  # an empty directory of deployments is fine
        (
            "3",
            [
                "gnomon.toml: include 3: "
                'must be a list of glob patterns, like ["deployments/*.toml"]'
            ],
        ),
    ],
)
def test_include_patterns_that_name_nothing(
    project: Path, include: str, expected: list[str]
) -> None:
    assert load(project, f"include = {include}\n") == expected


def test_an_included_file_holds_only_deployments(project: Path) -> None:
    write(
        project / "deployments" / "a.toml",
        "[daemon]\nworkers = 2\n\n"
        + one_deployment('interval = "1m"', flow="../flows/etl.py:sync"),
    )

    result = load_config(write(project / "gnomon.toml", 'include = ["deployments/*.toml"]\n'))

    assert [str(p) for p in result.problems] == [
        "deployments/a.toml: daemon: unknown key: an included file holds only [[deployments]]"
    ]
    assert [d.name for d in result.config.deployments] == ["d"]
    assert result.config.daemon.workers == os.cpu_count()


def test_a_name_defined_twice_is_a_problem_on_the_second_and_the_first_is_kept(
    project: Path,
) -> None:
    write(
        project / "deployments" / "a.toml",
        one_deployment('cron = "0 * * * *"', flow="../flows/etl.py:sync"),
    )

    result = load_config(
        write(
            project / "gnomon.toml",
            'include = ["deployments/*.toml"]\n' + one_deployment('interval = "1m"'),
        )
    )

    assert [str(p) for p in result.problems] == [
        'deployments/a.toml: deployment "d": also defined in gnomon.toml'
    ]
    [kept] = result.config.deployments
    assert kept.schedule_kind == "interval"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1\n", ["gnomon.toml: colour: unknown key"]),
        (
            "deployment = []\n",
            ['gnomon.toml: deployment: unknown key (did you mean "deployments"?)'],
        ),
        (
            "[deployments]\nname = 'x'\n",
            ["gnomon.toml: deployments: must be an array of tables: write [[deployments]]"],
        ),
        (
            "deployments = [1]\n",
            ["gnomon.toml: deployments[0] 1: must be a table: write [[deployments]]"],
        ),
        ("daemon = 3\n", ["gnomon.toml: daemon 3: must be a table: write [daemon]"]),
        (
            "[daemon]\nworker = 2\n",
            ['gnomon.toml: daemon.worker: unknown key (did you mean "workers"?)'],
        ),
        (
            "[daemon]\nworkers = 0\n",
            ["gnomon.toml: daemon.workers 0: Input should be greater than or equal to 1"],
        ),
        (
            '[daemon]\ntimezone = "Mars/Base"\n',
            ["gnomon.toml: daemon.timezone \"Mars/Base\": unknown timezone 'Mars/Base'"],
        ),
        (
            '[daemon]\nmax_memory_per_worker = "lots"\n',
            [
                'gnomon.toml: daemon.max_memory_per_worker "lots": '
                "could not parse value and unit from byte string"
            ],
        ),
        (
            SETTINGS_ONLY,
            [],
        ),
    ],
)
def test_top_level_and_daemon_keys(project: Path, text: str, expected: list[str]) -> None:
    assert load(project, text) == expected


def test_a_bad_daemon_setting_is_reported_and_the_others_still_apply(project: Path) -> None:
    result = load_config(
        write(
            project / "gnomon.toml",
            """
            [daemon]
            workers = 0
            overshoot = 1
            overshoot_too = 2
            max_queued = 3
            timezone = "Europe/Berlin"
            """,
        )
    )

    assert len(result.problems) == 3
    assert result.config.daemon.workers == os.cpu_count()
    assert (result.config.daemon.max_queued, result.config.daemon.timezone) == (3, "Europe/Berlin")


def test_toml_syntax_errors_name_the_file_and_line(project: Path) -> None:
    [problem] = load(project, "[daemon]\nworkers = 2\nnonsense here\n")

    assert problem.startswith("gnomon.toml: invalid TOML: ")
    assert "line 3" in problem


def test_an_included_file_with_a_syntax_error_does_not_stop_the_main_file(project: Path) -> None:
    write(project / "deployments" / "bad.toml", "[[deployments]\n")

    result = load_config(
        write(
            project / "gnomon.toml",
            'include = ["deployments/*.toml"]\n' + one_deployment('interval = "1m"'),
        )
    )

    assert [str(p).split(":")[0:2] for p in result.problems] == [
        ["deployments/bad.toml", " invalid TOML"]
    ]
    assert [d.name for d in result.config.deployments] == ["d"]


def test_no_config_file_at_all_is_a_problem_saying_where_to_put_one(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gnomon._location.CONFIG_SEARCH_PATH", (Path("gnomon.toml"),))

    result = load_config()

    assert [str(p) for p in result.problems] == [
        "no config file: set GNOMON_CONFIG or create ./gnomon.toml (also looked for "
        "~/.config/gnomon/config.toml and /etc/gnomon/config.toml)"
    ]
    assert result.config.deployments == ()
    assert result.config.path is None


def test_the_config_file_is_found_like_the_settings_find_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GNOMON_CONFIG", str(project / "missing.toml"))
    assert [str(p) for p in load_config().problems] == [
        f"GNOMON_CONFIG={project / 'missing.toml'}: no such file"
    ]

    monkeypatch.setenv(
        "GNOMON_CONFIG", str(write(project / "elsewhere.toml", one_deployment('interval = "1m"')))
    )
    result = load_config()
    assert result.ok, result.problems
    assert result.config.path == project / "elsewhere.toml"

    monkeypatch.delenv("GNOMON_CONFIG")
    write(project / "gnomon.toml", one_deployment('cron = "@hourly"'))
    assert load_config().config.deployments[0].schedule == "@hourly"  # ./gnomon.toml


def test_an_explicit_path_that_does_not_exist_is_a_problem(project: Path) -> None:
    assert [str(p) for p in load_config(project / "nope.toml").problems] == [
        "nope.toml: no such file"
    ]


def test_load_config_or_raise_lists_every_problem_one_per_line(project: Path) -> None:
    path = write(project / "gnomon.toml", "colour = 1\n" + one_deployment('cron = "61 * * * *"'))

    with pytest.raises(ConfigError) as raised:
        load_config_or_raise(path)

    lines = str(raised.value).splitlines()
    assert lines[0] == "gnomon.toml: colour: unknown key"
    assert lines[1].startswith(D + 'cron "61 * * * *": minute 61')
    assert len(lines) == 2
    assert (
        load_config_or_raise(write(path, one_deployment('interval = "1m"')))
        .config.deployments[0]
        .name
        == "d"
    )


DAEMON_DEFAULTS = """
[daemon]
timezone = "Europe/Berlin"
overlap = "queue"
max_queued = 3
catchup = "all"
max_catchup = 7
misfire_grace = "5m"
jitter = 30
timeout = "PT1H"
retries = 2
max_concurrent = 4
pause_after_failures = 3

[[deployments]]
name = "silent"
flow = "flows/etl.py:sync"
cron = "0 9 * * *"

[[deployments]]
name = "explicit"
flow = "flows/etl.py:sync"
cron = "0 9 * * *"
timezone = "UTC"
overlap = "allow"
retries = 0
jitter = "0s"
pause_after_failures = 1
"""


def test_deployments_inherit_policies_and_timezone_from_daemon_unless_they_state_them(
    project: Path,
) -> None:
    result = load_config(write(project / "gnomon.toml", DAEMON_DEFAULTS))
    assert result.ok, result.problems
    silent, explicit = result.config.deployments

    assert silent.timezone == "Europe/Berlin"
    assert silent.policies() == {
        "overlap": "queue",
        "max_concurrent": 4,
        "max_queued": 3,
        "catchup": "all",
        "max_catchup": 7,
        "misfire_grace": 300.0,
        "jitter": 30.0,
        "timeout": 3600.0,
        "retries": 2,
        "memory_limit": None,
        "max_log_lines": 10_000,
        "max_log_bytes": 10_000_000,
        "pause_after_failures": 3,
        "late_after": None,
        "deadline": None,
        "cancel_at_deadline": False,
        "min_duration": None,
        "fresh_within": None,
        "priority": 0,
        "pool": None,
        "env": {},
        "working_dir": None,
        "user": None,
    }
    assert (explicit.timezone, explicit.overlap, explicit.retries, explicit.jitter) == (
        "UTC",
        Overlap.ALLOW,
        0,
        timedelta(0),
    )
    assert explicit.pause_after_failures == 1
    assert explicit.catchup is Catchup.ALL  # not stated: still inherited
    assert silent.timing().specs[0].trigger == CronTrigger("0 9 * * *", "Europe/Berlin")


def test_built_in_defaults_when_daemon_is_silent(project: Path) -> None:
    result = load_config(write(project / "gnomon.toml", one_deployment('interval = "1m"')))
    daemon, [deployment] = result.config.daemon, result.config.deployments

    assert (daemon.workers, daemon.timezone, daemon.shutdown_grace, daemon.kill_grace) == (
        os.cpu_count(),
        "UTC",
        timedelta(seconds=30),
        timedelta(seconds=10),
    )
    assert (daemon.max_runs_per_worker, daemon.max_memory_per_worker, daemon.log_file) == (
        None,
        None,
        None,
    )
    assert deployment.policies() == {
        "overlap": "skip",
        "max_concurrent": 1,
        "max_queued": 10,
        "catchup": "latest",
        "max_catchup": 100,
        "misfire_grace": None,
        "jitter": 0.0,
        "timeout": None,
        "retries": 0,
        "memory_limit": None,
        "max_log_lines": 10_000,
        "max_log_bytes": 10_000_000,
        "pause_after_failures": None,
        "late_after": None,
        "deadline": None,
        "cancel_at_deadline": False,
        "min_duration": None,
        "fresh_within": None,
        "priority": 0,
        "pool": None,
        "env": {},
        "working_dir": None,
        "user": None,
    }
    assert (deployment.timezone, deployment.paused, deployment.description, deployment.tags) == (
        "UTC",
        None,
        None,
        (),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("1.5", timedelta(seconds=1.5)),
        ('"90s"', timedelta(seconds=90)),
        ('"15m"', timedelta(minutes=15)),
        ('"1h30m"', timedelta(hours=1, minutes=30)),
        ('"PT1H"', timedelta(hours=1)),
        ('"500ms"', timedelta(milliseconds=500)),
        ('"0"', timedelta(0)),
        ("0", timedelta(0)),
    ],
)
def test_durations_are_seconds_or_interval_strings(value: str, expected: timedelta) -> None:
    parsed = tomllib.loads(f"shutdown_grace = {value}")

    assert DaemonConfig.model_validate(parsed).shutdown_grace == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("512MB", 512_000_000), ("1GiB", 2**30), (1048576, 2**20), ("1.5KiB", 1536)],
)
def test_byte_sizes_accept_units_and_plain_bytes(value: str | int, expected: int) -> None:
    assert (
        DaemonConfig.model_validate({"max_memory_per_worker": value}).max_memory_per_worker
        == expected
    )


def test_a_relative_log_file_is_relative_to_the_config_file(project: Path) -> None:
    result = load_config(
        write(project / "gnomon.toml", '[daemon]\nlog_file = "logs/gnomon.jsonl"\n')
    )

    assert result.config.daemon.log_file == project / "logs" / "gnomon.jsonl"


def test_a_cron_deployment_exposes_its_schedule_and_trigger(project: Path) -> None:
    lines = """
        cron = "*/5 * * * *"
        timezone = "America/New_York"
        paused = true
        tags = ["etl"]
        description = "five"
        """
    [cron] = load_config(write(project / "gnomon.toml", one_deployment(lines))).config.deployments

    assert (cron.schedule_kind, cron.schedule, cron.every) == ("cron", "*/5 * * * *", None)
    assert (cron.paused, cron.tags, cron.description) == (True, ("etl",), "five")
    assert cron.timing().specs[0].trigger == CronTrigger("*/5 * * * *", "America/New_York")
    assert cron.timing().describe() == "Every 5 minutes"


def test_an_interval_deployment_s_anchor_comes_from_the_file_or_the_store(project: Path) -> None:
    text = "\n".join(
        [
            one_deployment(
                'interval = "1h"\ntimezone = "America/New_York"\nanchor = 2027-01-01T09:00:00',
                name="naive",
            ),
            one_deployment('interval = "90s"\nanchor = "2027-01-01T09:00:00+02:00"', name="offset"),
            one_deployment('interval = "PT15M"', name="stored"),
        ]
    )
    result = load_config(write(project / "gnomon.toml", text))
    assert result.ok, result.problems
    naive, offset, stored = result.config.deployments
    anchor = datetime(2027, 3, 1, tzinfo=UTC)

    # A naive anchor is a wall-clock time in the deployment's zone.
    assert naive.anchor == datetime(2027, 1, 1, 14, tzinfo=UTC)
    assert (naive.schedule_kind, naive.schedule, naive.every) == (
        "interval",
        "1h",
        timedelta(hours=1),
    )
    assert offset.timing().specs[0].trigger == IntervalTrigger(
        timedelta(seconds=90), datetime(2027, 1, 1, 7, tzinfo=UTC)
    )
    assert offset.timing(anchor) == offset.timing()  # the file's anchor wins
    assert stored.timing(anchor).next_fire(anchor) == anchor + timedelta(minutes=15)
    with pytest.raises(ScheduleError, match="needs an anchor"):
        stored.timing()


def test_a_deployment_built_in_code_resolves_a_relative_flow_against_its_source_file(
    tmp_path: Path,
) -> None:
    deployment = Deployment(
        name="x",
        flow="./a/../flows.py:job",
        interval="1m",
        source_file=tmp_path / "conf" / "gnomon.toml",
    )

    assert deployment.flow == f"{tmp_path}/conf/flows.py:job"


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        (
            ConfigProblem(
                Path("/etc/g/deployments/crm.toml"),
                "sync-crm",
                "cron",
                "61 * * * *",
                "minute 61 is outside 0-59",
                Path("/etc/g"),
            ),
            'deployments/crm.toml: deployment "sync-crm": cron "61 * * * *": '
            "minute 61 is outside 0-59",
        ),
        (
            ConfigProblem(Path("/srv/crm.toml"), "a", "retries", 3, "too many", Path("/etc/g")),
            '/srv/crm.toml: deployment "a": retries 3: too many',
        ),
        (
            ConfigProblem(
                Path("/etc/g/gnomon.toml"), None, "daemon.workers", 0, "no", Path("/etc/g")
            ),
            "gnomon.toml: daemon.workers 0: no",
        ),
        (
            ConfigProblem(
                Path("/etc/g/gnomon.toml"), "a", "parameters.xs", [1, "b"], "bad", Path("/etc/g")
            ),
            'gnomon.toml: deployment "a": parameters.xs [1, "b"]: bad',
        ),
        (
            ConfigProblem(Path("/etc/g/gnomon.toml"), "a", "paused", False, "bad", Path("/etc/g")),
            'gnomon.toml: deployment "a": paused false: bad',
        ),
        (
            ConfigProblem(
                Path("/etc/g/gnomon.toml"), "a", "flow", None, "required", Path("/etc/g")
            ),
            'gnomon.toml: deployment "a": flow: required',
        ),
        (
            ConfigProblem(Path("/etc/g/gnomon.toml"), "a", None, None, "twice"),  # no root
            '/etc/g/gnomon.toml: deployment "a": twice',
        ),
        (ConfigProblem(None, None, None, None, "no config file"), "no config file"),
        (
            ConfigProblem(Path("/g/x.toml"), 'say "hi"', "description", 'a "b"', "odd", Path("/g")),
            'x.toml: deployment "say \\"hi\\"": description "a \\"b\\"": odd',
        ),
    ],
)
def test_problems_render_file_deployment_field_value_and_message(
    problem: ConfigProblem, expected: str
) -> None:
    assert str(problem) == expected


def test_gnomon_daemon_variables_override_the_daemon_table(tmp_path, monkeypatch) -> None:
    """An empty one is unset (an empty log_file would be the config's directory)."""
    config = tmp_path / "gnomon.toml"
    config.write_text(
        '[daemon]\nworkers = 2\nshutdown_grace = "30s"\ntimezone = "UTC"\nlog_file = "d.log"\n'
    )
    monkeypatch.setenv("GNOMON_DAEMON_WORKERS", "8")
    monkeypatch.setenv("GNOMON_DAEMON_SHUTDOWN_GRACE", "5s")
    monkeypatch.setenv("GNOMON_DAEMON_LOG_FILE", "")
    monkeypatch.setenv("GNOMON_DAEMON_TIMEZONE", "")

    result = load_config(config)

    assert result.ok, [str(problem) for problem in result.problems]
    daemon = result.config.daemon
    assert (daemon.workers, daemon.shutdown_grace, daemon.timezone, daemon.log_file) == (
        8,
        timedelta(seconds=5),
        "UTC",
        tmp_path / "d.log",
    )


def test_a_bad_gnomon_daemon_variable_is_reported_naming_it(tmp_path, monkeypatch) -> None:
    config = tmp_path / "gnomon.toml"
    config.write_text("[daemon]\nworkers = 2\n")
    monkeypatch.setenv("GNOMON_DAEMON_WORKERS", "0")
    monkeypatch.setenv("GNOMON_DAEMON_WROKERS", "3")

    result = load_config(config)

    messages = [str(problem) for problem in result.problems]
    assert any("daemon.workers 0" in m and "GNOMON_DAEMON_WORKERS" in m for m in messages), messages
    assert any("GNOMON_DAEMON_WROKERS" in m for m in messages), messages
    assert result.config.daemon.workers == 2


def test_an_empty_path_in_the_daemon_table_is_refused(tmp_path) -> None:
    """It would be read as the config's directory (Path(""))."""
    config = tmp_path / "gnomon.toml"
    config.write_text('[daemon]\nlog_file = ""\n')

    (problem,) = load_config(config).problems

    assert 'daemon.log_file "": an empty path' in str(problem)
