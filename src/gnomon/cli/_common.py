"""Options and output shared by the commands: ``--config``, ``--json``, plain tables."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from gnomon._settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


class ConfigFailure(click.ClickException):
    """A config the command cannot read: reported in one line, exit 2 (as the daemon does)."""

    exit_code = 2


def settings() -> Settings:
    """The settings, or ConfigFailure naming the file and the problem instead of a traceback
    (a GNOMON_CONFIG naming no file, invalid TOML, a bad setting)."""
    from gnomon._settings import get_settings
    from gnomon.exceptions import ConfigError

    try:
        return get_settings()
    except ConfigError as error:
        raise ConfigFailure(str(error)) from None


def _use_config(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    # Settings and the daemon find the file through GNOMON_CONFIG, whichever asks first.
    if value is not None:
        from gnomon._settings import reset_settings

        os.environ["GNOMON_CONFIG"] = str(value)
        reset_settings()
    return value


def config_option(fn: F) -> F:
    """``--config FILE``: the config file (default: GNOMON_CONFIG, ./gnomon.toml, ...)."""
    return click.option(
        "--config",
        "config",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        callback=_use_config,
        expose_value=True,
        is_eager=True,
        help="Config file (default: $GNOMON_CONFIG, ./gnomon.toml, "
        "~/.config/gnomon/config.toml, /etc/gnomon/config.toml).",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, or None."""
    return None if value is None else _utc(value)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Left-aligned columns sized to their content; '-' for missing values."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max([len(column)] + [len(line[i]) for line in cells]) for i, column in enumerate(columns)
    ]
    click.echo(
        "  ".join(
            column.upper().ljust(width) for column, width in zip(columns, widths, strict=True)
        ).rstrip()
    )
    for line in cells:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _utc(value)
    return str(value)
