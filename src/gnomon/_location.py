"""Finding the config file and the store without pydantic: the command line's fast path.

``gnomon pause`` must answer within 300 ms, and importing pydantic and pydantic-settings
costs about half of that. The few settings a command needs to open the store (``home`` and
``database_url``) are read here with the same precedence ``Settings`` applies
(``GNOMON_*`` environment over the config file's top-level keys over defaults); anything
unusual (a value that is not text, a variable in other letter case) is left to ``Settings``,
which validates it and names what is wrong. A test checks that both agree.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gnomon.exceptions import ConfigError

CONFIG_SEARCH_PATH = (
    Path("gnomon.toml"),
    Path("~/.config/gnomon/config.toml"),
    Path("/etc/gnomon/config.toml"),
)
DEFAULT_HOME = "~/.gnomon"


def find_config_file() -> Path | None:
    """The config file in force: ``GNOMON_CONFIG`` if set, else the first that exists.

    A ``GNOMON_CONFIG`` naming a file that does not exist is an error, not a silent default.
    """
    explicit = os.environ.get("GNOMON_CONFIG")
    if explicit:  # an empty one is unset, as every GNOMON_* variable
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"GNOMON_CONFIG={explicit}: no such file")
        return path
    for candidate in CONFIG_SEARCH_PATH:
        path = candidate.expanduser()
        if path.is_file():
            return path
    return None


def database_url_for(home: Path, database_url: str | None) -> str:
    """The store's URL: ``database_url``, else SQLite at ``HOME/gnomon.db``."""
    return database_url or f"sqlite:///{home / 'gnomon.db'}"


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL, as SQLAlchemy's SQLite driver opens it (a relative
    path against the working directory); None for other databases, in-memory SQLite and
    SQLite URI filenames (``?uri=true``).

    Parsed here, as SQLAlchemy's ``make_url`` and its SQLite dialect read it (no
    percent-decoding of the path), so that the command line finds the database and its
    daemon lock without importing SQLAlchemy; ``store._db.sqlite_path`` applies this rule.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.partition("+")[0] != "sqlite":
        return None
    location, _, query = rest.partition("?")
    host, slash, database = location.partition("/")
    options = dict(item.partition("=")[::2] for item in query.split("&") if item)
    if host or not slash or database in ("", ":memory:"):
        return None
    if options.get("mode") == "memory" or options.get("uri", "").lower() in ("true", "1"):
        return None
    return Path(os.path.abspath(database))


def existing_file_uri(path: Path) -> str:
    """A SQLite URI (for ``sqlite3.connect(..., uri=True)``) that opens the database at
    ``path`` for reading and writing and fails rather than create it."""
    return f"file:{quote(str(path.absolute()))}?mode=rw"


def store_location() -> tuple[Path, str]:
    """``(home, database URL)`` as ``Settings`` would give them, read without pydantic.
    A ``GNOMON_CONFIG`` naming no file is an error even when the environment sets both."""
    find_config_file()
    home = _setting("home")
    url = _setting("database_url")
    if not _plain(home) or not _plain(url) or _odd_case_env():
        from gnomon._settings import get_settings

        settings = get_settings()
        return settings.home, settings.effective_database_url
    resolved = Path(home or DEFAULT_HOME).expanduser().absolute()
    return resolved, database_url_for(resolved, url)


def _plain(value: Any) -> bool:
    """Text this module reads as ``Settings`` would (not empty, which the config file may
    not set: ``Settings`` says so), or unset."""
    return value is None or (isinstance(value, str) and value != "")


def _setting(name: str) -> Any:
    value = os.environ.get(f"GNOMON_{name.upper()}")
    if value:  # an empty variable is unset, as ``Settings`` reads it
        return value
    config_file = find_config_file()
    if config_file is None:
        return None
    try:
        return read_top_level(config_file).get(name)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{config_file}: invalid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:  # a directory, unreadable, not UTF-8
        reason = getattr(error, "strerror", None) or error
        raise ConfigError(f"{config_file}: cannot read: {reason}") from None


def read_top_level(path: Path, tables: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config file's top-level keys (the settings), and the settings ``tables`` (such as
    ``[results]``), without parsing its deployments.

    TOML puts top-level keys before the first table header, so the text up to the first
    line that starts with ``[`` holds them all; a config of ten thousand deployments then
    costs a few lines of parsing, not all of them. A table is cut out the same way, from
    its header to the next line that starts with ``[``. Should such a line be inside a
    multi-line string or array, the cut text does not parse and the whole file is read
    instead (a construct cut short is unterminated, so a cut never parses into something
    else). Only the top-level keys and ``tables`` are certain to be in the result.
    """
    text = path.read_bytes().decode("utf-8")
    head, found, _ = text.partition("\n[") if not text.startswith("[") else ("", "[", "")
    try:
        settings = tomllib.loads(head if found else text)
        for name in tables:
            body = _table_body(text, name)
            if body is None:
                continue
            if name in settings:  # defined twice: the whole file's parse says where
                return tomllib.loads(text)
            settings[name] = tomllib.loads(body)
    except tomllib.TOMLDecodeError:
        return tomllib.loads(text)
    return settings


def _table_body(text: str, name: str) -> str | None:
    """The text after the ``[name]`` header line up to the next line that starts with
    ``[``; None without such a header. The header's brackets are searched for first (a
    plain scan: a line-anchored pattern was several times slower over a config of
    thousands of deployments), then checked to stand alone on their line."""
    for header in re.finditer(rf"\[[ \t]*{re.escape(name)}[ \t]*\]", text):
        start = text.rfind("\n", 0, header.start()) + 1
        end = text.find("\n", header.end())
        end = len(text) if end < 0 else end
        alone = not text[start : header.start()].strip(" \t")
        if alone and re.fullmatch(r"[ \t]*(#.*)?", text[header.end() : end]):
            return text[end:].partition("\n[")[0]
    return None


def _odd_case_env() -> bool:
    """Whether a store variable is set in other letter case (pydantic-settings reads it)."""
    wanted = {"GNOMON_HOME", "GNOMON_DATABASE_URL"}
    return any(key.upper() in wanted and key not in wanted for key in os.environ)
