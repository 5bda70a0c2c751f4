"""Settings: ``GNOMON_*`` environment variables over a TOML config file over defaults.

The config file is the same one the daemon reads (``[daemon]``, ``[[deployments]]``); the
engine only looks at its top-level keys and its ``[results]`` table, and ignores the rest
(the daemon's loader reads that). It is found at ``GNOMON_CONFIG``,
else ``./gnomon.toml``, ``~/.config/gnomon/config.toml``, ``/etc/gnomon/config.toml``.

An empty ``GNOMON_*`` variable (``GNOMON_SECRETS_KEY_FILE=``, as a shell or a unit file
clears one) counts as unset, ``GNOMON_CONFIG`` and ``GNOMON_DAEMON_*`` too: read as a path
it would be the working directory. An empty path in the config file is refused.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from gnomon._files import refuse_empty_path
from gnomon._location import (
    CONFIG_SEARCH_PATH,
    database_url_for,
    find_config_file,
    read_top_level,
)
from gnomon.exceptions import ConfigError

__all__ = [
    "CONFIG_SEARCH_PATH",
    "Settings",
    "find_config_file",
    "get_settings",
    "reset_settings",
    "settings_scope",
]


# A result storage given as a URL ("s3://bucket/results", "memory://"), not a path.
_URL = re.compile(r"(?P<protocol>[A-Za-z][A-Za-z0-9+.-]*)://")


class ResultsSettings(BaseModel):
    """The ``[results]`` table (``GNOMON_RESULTS_<KEY>``): where results and cache records
    are stored and the key they are signed with. Hosts that share a database share these
    too, so that a task cached on one is a hit on the others (gnomon.flows._results)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    storage: str | None = Field(
        default=None,
        description=(
            "A directory (a shared mount for several hosts) or an fsspec URL (s3://...,"
            " memory://); default: HOME/results."
        ),
    )
    key_file: Path | None = Field(
        default=None,
        description=(
            "The file holding the signing key (hex or base64, at least 32 bytes; several,"
            " one a line, while a key is replaced: the first signs); default:"
            " GNOMON_RESULTS_KEY, else HOME/results/.key, made on first use."
        ),
    )
    # From the environment only: a key never belongs in the config file (_TopLevelToml
    # refuses it there), and it is checked where it is used, so that no error prints it.
    key: SecretStr | None = None

    _not_empty = field_validator("storage", "key_file", mode="before")(refuse_empty_path)

    @field_validator("storage")
    @classmethod
    def _location(cls, value: str | None) -> str | None:
        """A URL as given; a path made absolute, as ``home`` is."""
        if value is None or _URL.match(value):
            return value
        if "://" in value:
            raise ValueError("not a path, nor a URL with a protocol such as s3:// or file://")
        return str(Path(value).expanduser().absolute())

    @field_validator("key_file")
    @classmethod
    def _expand_key_file(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().absolute()

    @property
    def storage_protocol(self) -> str | None:
        """The URL's protocol (``s3``) when ``storage`` is a URL; None for a path."""
        url = _URL.match(self.storage or "")
        return url["protocol"].lower() if url else None


class Settings(BaseSettings):
    """Engine settings. Every field can be set as ``GNOMON_<FIELD>`` in the environment,
    and the ``[results]`` table's keys as ``GNOMON_RESULTS_<KEY>``."""

    model_config = SettingsConfigDict(
        env_prefix="GNOMON_",
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,
        # GNOMON_RESULTS_KEY_FILE is results.key_file: split once, after "results".
        env_nested_delimiter="_",
        env_nested_max_split=1,
    )

    home: Path = Field(
        default=Path("~/.gnomon"),
        description="State directory: the SQLite database and stored results live here.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; default: SQLite at HOME/gnomon.db.",
    )
    database_pool_size: int = Field(
        default=5,
        description=(
            "Connections each process keeps open to a PostgreSQL store, and as many more"
            " it may open at busy moments (see docs/operations.md for the budget)."
        ),
        ge=1,
        le=100,
    )
    log_level: str = Field(default="INFO", description="Threshold for console log output.")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: colour on a terminal, JSON lines otherwise."
    )
    task_runner_max_workers: int | None = Field(
        default=None,
        description="Default size of the thread-pool task runner (Prefect: 4 x CPU count).",
        ge=1,
    )
    flush_interval: float = Field(
        default=0.05,
        description="Seconds between batched writes of task states to the store.",
        gt=0,
        le=5,
    )
    final_state_patience: float = Field(
        default=60.0,
        description=(
            "Seconds a finished run waits for a store that cannot be written (its database"
            " down or locked) to take its final state before it gives up (a daemon then"
            " records the run Crashed)."
        ),
        ge=0,
    )
    secrets_key_file: Path | None = Field(
        default=None,
        description=(
            "The file holding the key secrets are encrypted with (`gnomon secret key-gen"
            " PATH` makes one); default: $CREDENTIALS_DIRECTORY/gnomon-secrets-key, which"
            " systemd's LoadCredential= provides. Never in the database."
        ),
    )

    results: ResultsSettings = Field(default_factory=ResultsSettings)

    # The config file's empty path is refused; the environment's empty ones are unset.
    _not_empty = field_validator("home", "secrets_key_file", mode="before")(refuse_empty_path)

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("secrets_key_file")
    @classmethod
    def _expand_key_file(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().absolute()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @property
    def results_dir(self) -> Path:
        return self.home / "results"

    @property
    def effective_database_url(self) -> str:
        return database_url_for(self.home, self.database_url)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = find_config_file()
        if config_file is not None:
            sources.append(_TopLevelToml(settings_cls, toml_file=config_file))
        return tuple(sources)


class _TopLevelToml(TomlConfigSettingsSource):
    """The config file's top-level keys, read without parsing its deployments (a daemon
    with thousands of them parses the whole file once, in the loader)."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        if not isinstance(file_path, Path):
            return super()._read_file(file_path)
        settings = read_top_level(file_path, tables=("results",))
        results = settings.get("results")
        if isinstance(results, dict) and "key" in results:
            raise ConfigError(
                f"{file_path}: [results] key: the signing key is a secret and never belongs"
                " in the config: set key_file to a file holding it, or GNOMON_RESULTS_KEY"
            )
        return settings


_scoped: ContextVar[Settings | None] = ContextVar("gnomon_settings", default=None)


def get_settings() -> Settings:
    """The settings in force: those of the enclosing ``settings_scope``, else the process's,
    read once. Tests that change the environment call ``reset``.

    Raises ConfigError naming the config file, the setting and the value when one is bad.
    """
    scoped = _scoped.get()
    return scoped if scoped is not None else _process_settings()


@contextmanager
def settings_scope(settings: Settings) -> Iterator[None]:
    """Within the block (in this context only: other threads keep theirs), ``get_settings``
    returns ``settings``. A Dask worker serves flow runs of any store: each task run it
    executes uses the store and results directory of the flow run that submitted it."""
    token = _scoped.set(settings)
    try:
        yield
    finally:
        _scoped.reset(token)


@cache
def _process_settings() -> Settings:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return Settings()
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{find_config_file()}: invalid TOML: {error}") from None
    except ValidationError as error:
        source = find_config_file()
        where = f"{source} or GNOMON_* environment" if source else "GNOMON_* environment"
        problems = "; ".join(
            f"{'.'.join(map(str, detail['loc']))} = {_shown(detail)!r}: {detail['msg']}"
            for detail in error.errors()
        )
        raise ConfigError(f"invalid settings in {where}: {problems}") from None
    except SettingsError as error:  # GNOMON_RESULTS set, not as the JSON of a table
        raise ConfigError(
            f"invalid settings in GNOMON_* environment: {error}; set the [results] table's"
            " keys one by one (GNOMON_RESULTS_STORAGE, GNOMON_RESULTS_KEY_FILE, ...)"
        ) from None


def _shown(detail: Any) -> Any:
    """A bad setting's value as a message may show it: a results key never."""
    value = detail["input"]
    if tuple(detail["loc"]) == ("results", "key"):
        return "***"
    if detail["loc"][:1] == ("results",) and isinstance(value, dict) and "key" in value:
        return {**value, "key": "***"}
    return value


def reset_settings() -> None:
    """Forget the cached settings (after changing ``GNOMON_*`` variables in-process)."""
    _process_settings.cache_clear()
