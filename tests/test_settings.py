"""Settings precedence: ``GNOMON_*`` environment over the TOML config file over defaults."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gnomon._settings import get_settings, reset_settings
from gnomon.exceptions import ConfigError
from gnomon.task_runners import ThreadPoolTaskRunner

CONFIG = textwrap.dedent(
    """
    log_level = "warning"
    flush_interval = 0.2
    task_runner_max_workers = 3
    not_a_setting = "ignored"

    [daemon]
    log_level = "DEBUG"

    [[deployments]]
    name = "nightly"
    """
)


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No GNOMON_* variables but GNOMON_HOME, and a HOME without config files."""
    for name in ("GNOMON_LOG_LEVEL", "GNOMON_LOG_FORMAT", "GNOMON_FLUSH_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GNOMON_TASK_RUNNER_MAX_WORKERS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    reset_settings()
    return monkeypatch


def _use_config(monkeypatch: pytest.MonkeyPatch, path: Path, text: str) -> None:
    path.write_text(text)
    monkeypatch.setenv("GNOMON_CONFIG", str(path))
    reset_settings()


def test_defaults_apply_when_neither_environment_nor_config_sets_a_value(
    isolated: pytest.MonkeyPatch, gnomon_home: Path
) -> None:
    settings = get_settings()

    assert settings.home == gnomon_home
    assert settings.log_level == "INFO"
    assert settings.log_format == "auto"
    assert settings.flush_interval == 0.05
    assert settings.task_runner_max_workers is None
    assert settings.database_url is None


def test_config_file_top_level_keys_override_defaults_and_sections_are_ignored(
    isolated: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _use_config(isolated, tmp_path / "gnomon-config.toml", CONFIG)

    settings = get_settings()

    assert settings.log_level == "WARNING"  # not the [daemon] section's DEBUG
    assert settings.flush_interval == 0.2
    assert settings.task_runner_max_workers == 3
    assert ThreadPoolTaskRunner().max_workers == 3


def test_environment_variables_override_the_config_file(
    isolated: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _use_config(isolated, tmp_path / "gnomon-config.toml", CONFIG)
    isolated.setenv("GNOMON_LOG_LEVEL", "error")
    isolated.setenv("GNOMON_TASK_RUNNER_MAX_WORKERS", "7")
    reset_settings()

    settings = get_settings()

    assert settings.log_level == "ERROR"
    assert settings.task_runner_max_workers == 7
    assert settings.flush_interval == 0.2  # still from the file


def test_gnomon_toml_in_the_working_directory_is_used_without_gnomon_config(
    isolated: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # conftest makes tmp_path the working directory.
    (tmp_path / "gnomon.toml").write_text('log_level = "critical"\n')
    reset_settings()

    assert get_settings().log_level == "CRITICAL"


def test_home_starting_with_a_tilde_is_expanded_to_the_users_home(
    isolated: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolated.setenv("GNOMON_HOME", "~/state/gnomon")
    reset_settings()

    settings = get_settings()

    assert settings.home == tmp_path / "user" / "state" / "gnomon"
    assert settings.effective_database_url == f"sqlite:///{tmp_path}/user/state/gnomon/gnomon.db"


def test_home_from_the_config_file_is_expanded_too(
    isolated: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolated.delenv("GNOMON_HOME")
    _use_config(isolated, tmp_path / "gnomon-config.toml", 'home = "~/from-config"\n')

    assert get_settings().home == tmp_path / "user" / "from-config"


def test_unknown_log_level_is_rejected_with_a_message_naming_it(
    isolated: pytest.MonkeyPatch,
) -> None:
    isolated.setenv("GNOMON_LOG_LEVEL", "LOUD")
    reset_settings()

    with pytest.raises(ConfigError, match=r"log_level = 'LOUD'.*unknown log level 'LOUD'"):
        get_settings()


def test_database_url_defaults_to_sqlite_under_home_and_can_be_overridden(
    isolated: pytest.MonkeyPatch, gnomon_home: Path
) -> None:
    assert get_settings().effective_database_url == f"sqlite:///{gnomon_home}/gnomon.db"

    isolated.setenv("GNOMON_DATABASE_URL", "sqlite:////srv/elsewhere.db")
    reset_settings()

    assert get_settings().effective_database_url == "sqlite:////srv/elsewhere.db"


def test_settings_are_read_once_until_reset(isolated: pytest.MonkeyPatch) -> None:
    first = get_settings()
    isolated.setenv("GNOMON_LOG_LEVEL", "DEBUG")

    assert get_settings() is first
    reset_settings()
    assert get_settings().log_level == "DEBUG"


def test_a_missing_config_file_named_by_gnomon_config_is_an_error_naming_it(
    isolated: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "gnomon.toml"
    isolated.setenv("GNOMON_CONFIG", str(missing))
    reset_settings()

    with pytest.raises(ConfigError, match=f"GNOMON_CONFIG={missing}: no such file"):
        get_settings()


def test_malformed_toml_is_an_error_naming_the_file(
    isolated: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "gnomon.toml"
    config.write_text('home = "/srv/gnomon"\nlog_level = \n')
    isolated.setenv("GNOMON_CONFIG", str(config))
    reset_settings()

    with pytest.raises(ConfigError, match=f"{config}: invalid TOML: .*line 2"):
        get_settings()


def test_a_bad_value_in_the_config_file_names_the_file_the_setting_and_the_value(
    isolated: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "gnomon.toml"
    config.write_text("flush_interval = -1\n")
    isolated.setenv("GNOMON_CONFIG", str(config))
    reset_settings()

    with pytest.raises(ConfigError, match=f"{config}.*flush_interval = -1"):
        get_settings()


@pytest.mark.parametrize(
    "name", ["GNOMON_HOME", "GNOMON_SECRETS_KEY_FILE", "GNOMON_LOG_LEVEL", "GNOMON_DATABASE_URL"]
)
def test_an_empty_variable_is_unset_so_the_config_file_or_default_applies(
    isolated: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """An empty path would be the working directory (Path(""))."""
    from gnomon._location import store_location

    isolated.delenv("GNOMON_HOME")
    isolated.setenv(name, "")
    reset_settings()
    defaults = get_settings()
    assert (defaults.home, defaults.secrets_key_file) == (tmp_path / "user" / ".gnomon", None)
    assert (defaults.log_level, defaults.database_url) == ("INFO", None)
    _use_config(
        isolated,
        tmp_path / "gnomon.toml",
        f'home = "{tmp_path}/file-home"\nsecrets_key_file = "{tmp_path}/key"\n'
        f'log_level = "warning"\ndatabase_url = "sqlite:///{tmp_path}/file.db"\n',
    )

    settings = get_settings()

    assert (settings.home, settings.secrets_key_file) == (tmp_path / "file-home", tmp_path / "key")
    assert (settings.log_level, settings.database_url) == (
        "WARNING",
        f"sqlite:///{tmp_path}/file.db",
    )
    assert store_location() == (settings.home, settings.effective_database_url)


@pytest.mark.parametrize("setting", ["home", "secrets_key_file"])
def test_an_empty_path_in_the_config_file_is_refused_naming_it(
    isolated: pytest.MonkeyPatch, tmp_path: Path, setting: str
) -> None:
    isolated.delenv("GNOMON_HOME")
    config = tmp_path / "gnomon.toml"
    _use_config(isolated, config, f'{setting} = ""\n')

    with pytest.raises(ConfigError, match=f"{config}.*{setting} = '': .*an empty path"):
        get_settings()


def test_an_empty_gnomon_config_is_unset_so_the_search_path_applies(
    isolated: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "gnomon.toml").write_text('log_level = "error"\n')
    isolated.chdir(tmp_path)
    isolated.setenv("GNOMON_CONFIG", "")
    reset_settings()

    assert get_settings().log_level == "ERROR"


# The command line's fast path finds the store as Settings does.

LOCATION_CASES = {
    "defaults": ({}, None),
    "env home": ({"GNOMON_HOME": "{tmp}/env-home"}, None),
    "file home": ({}, 'home = "{tmp}/file-home"'),
    "env over file": ({"GNOMON_HOME": "{tmp}/env-home"}, 'home = "{tmp}/file-home"'),
    "file url": ({}, 'database_url = "sqlite:///{tmp}/elsewhere.db"'),
    "env url over file": (
        {"GNOMON_DATABASE_URL": "sqlite:///{tmp}/env.db"},
        'database_url = "sqlite:///{tmp}/file.db"',
    ),
    "relative home": ({"GNOMON_HOME": "state"}, None),
    "empty env home": ({"GNOMON_HOME": ""}, None),
    "tilde": ({"GNOMON_HOME": "~/g"}, None),
    "lower-case variable": ({"gnomon_home": "{tmp}/lower"}, None),
}


@pytest.mark.parametrize(("env", "toml"), LOCATION_CASES.values(), ids=LOCATION_CASES.keys())
def test_the_cli_fast_path_finds_the_store_where_settings_do(
    isolated: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], toml: str | None
) -> None:
    from gnomon._location import store_location

    isolated.delenv("GNOMON_HOME")
    for name, value in env.items():
        isolated.setenv(name, value.format(tmp=tmp_path))
    if toml is not None:
        config = tmp_path / "gnomon.toml"
        config.write_text(toml.format(tmp=tmp_path) + "\n")
        isolated.setenv("GNOMON_CONFIG", str(config))
    reset_settings()

    settings = get_settings()
    assert store_location() == (settings.home, settings.effective_database_url)


def test_the_cli_fast_path_names_a_config_with_invalid_toml(
    isolated: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gnomon._location import store_location

    config = tmp_path / "gnomon.toml"
    config.write_text("home = \n")
    isolated.setenv("GNOMON_CONFIG", str(config))
    isolated.delenv("GNOMON_HOME")

    with pytest.raises(ConfigError, match=f"{config}: invalid TOML"):
        store_location()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('home = "/srv/a"\nlog_level = "DEBUG"\n\n[daemon]\nworkers = 2\n', "/srv/a"),
        # A "[" line inside a multi-line string: the cut does not parse, the whole file does.
        (
            'notes = """\n[not a table]\n"""\nhome = "/srv/b"\n[[deployments]]\nname = "x"\n',
            "/srv/b",
        ),
        # An array over several lines, one of them starting with "[".
        ('matrix = [\n[1, 2],\n]\nhome = "/srv/c"\n[daemon]\n', "/srv/c"),
        ('[daemon]\nhome = "not top-level"\n', None),
    ],
)
def test_settings_read_the_top_level_keys_without_the_rest(tmp_path, text, expected) -> None:
    from gnomon._location import read_top_level

    config = tmp_path / "gnomon.toml"
    config.write_text(text)

    assert read_top_level(config).get("home") == expected
