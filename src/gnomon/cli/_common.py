"""Options and output shared by the commands: ``--config``, ``--json``, plain tables."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from gnomon._settings import Settings
    from gnomon.control import FastOperations, Operations, ReloadOutcome
    from gnomon.daemon import DaemonLock
    from gnomon.exceptions import StoreOwnedByAnotherUser
    from gnomon.store import ControlStore, FastControl

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


class StoreFailure(click.ClickException):
    """The store cannot be used (locked, full, read-only, corrupt, missing under a daemon):
    one line naming the database and the cause, exit 1."""

    exit_code = 1


def store_url() -> str:
    """The URL of the store a command is about to open.

    A SQLite database that does not exist is created by the first command that opens it,
    unless a daemon holds the lock for that database: then the file was deleted or moved
    under the daemon, and a fresh empty store would split the daemon from everything else
    (the workers, ``gnomon pause``). StoreFailure says so instead.
    """
    from gnomon._location import sqlite_file
    from gnomon.daemon import find_holder

    home, url = _location()
    database = sqlite_file(url)
    if database is not None and not database.exists():
        holder = find_holder(home, url)
        elsewhere = _other_store(holder, url)
        if elsewhere is not None:
            raise StoreFailure(f"there is no store at {database}: {elsewhere}")
        if holder is not None:
            raise StoreFailure(
                f"the database {database} is missing but daemon pid {holder.get('pid', '?')}"
                " is running on it (deleted or moved while it ran?): not creating an empty"
                " store under it; the daemon stops by itself, then restore the file (see"
                " the README, Backups)"
            )
    return url


def daemon_elsewhere() -> str | None:
    """If the daemon found through this home serves another store than the commands' own,
    what to tell the operator (see ``_other_store``); else None."""
    home, url = _location()
    from gnomon.daemon import find_holder

    return _other_store(find_holder(home, url), url)


def _other_store(holder: dict[str, Any] | None, url: str) -> str | None:
    """If the daemon whose lock record is ``holder`` serves another store than ``url`` (a
    PostgreSQL daemon found through the home's lock by a command that was not given the
    database URL), what to tell the operator; else None."""
    from gnomon.store import store_name

    holder = holder or {}
    theirs, ours = holder.get("store"), store_name(url)
    if not isinstance(theirs, str) or theirs == ours:
        return None
    if "://" not in theirs and os.path.realpath(theirs) == os.path.realpath(ours):
        return None  # one SQLite file, named through a symbolic link
    return (
        f"the daemon running in this home (pid {holder.get('pid', '?')}) uses {theirs};"
        " give this command the same database URL (GNOMON_DATABASE_URL, or database_url"
        " in the config)"
    )


def open_store() -> ControlStore:
    """The store, opened without pydantic (see ``gnomon._location``): most commands only
    need the store, and this keeps them within their 300 ms."""
    from gnomon.store import store_at

    return store_at(_readable_url())


def fast_store() -> FastControl:
    """For the commands that must answer within 300 ms (pause, resume, runs list, logs):
    the SQLAlchemy-free ``FastStore`` when it can open the store (a current one, on SQLite
    or PostgreSQL), else the store itself."""
    from gnomon.store import open_fast

    fast = open_fast(_readable_url())
    if fast is None:
        return open_store()
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(fast.close)  # its connection ends with the command
    return fast


class NotTheStoreOwner(click.ClickException):
    """The command would create files in a store another user owns: exit 1, one line."""

    exit_code = 1


def changes_store(fn: F) -> F:
    """For commands that change the store (or run the daemon on it): refuse, in one line
    and with exit code 1, when run as another user than the store's owner, say root under
    sudo on a store the ``gnomon`` user owns. The lock and journal files such a command
    creates would be root's, and the daemon could no longer open them."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_store_owner()
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_store_owner() -> None:
    problem = _owner_problem()[1]
    if problem is not None:
        raise NotTheStoreOwner(str(problem))


def _owner_problem() -> tuple[str, StoreOwnedByAnotherUser | None]:
    """The store's URL, and why this user is not its owner (None if it is, or if there is
    no store yet: then this user creates it)."""
    from gnomon._files import check_owner
    from gnomon._location import sqlite_file
    from gnomon.exceptions import StoreOwnedByAnotherUser

    home, url = _location()
    try:
        check_owner(sqlite_file(url), home)
    except StoreOwnedByAnotherUser as error:
        return url, error
    return url, None


def _readable_url() -> str:
    """The store's URL for a command that reads it. Any user the files let read may do
    that, as another user than the owner too (SQLite gives the journal files it may create
    the database's owner when run as root); but only the owner may create a SQLite store
    or upgrade its schema, so another user reads only a current one."""
    import sqlite3

    from gnomon._location import sqlite_file
    from gnomon.store import open_fast

    url, problem = _owner_problem()
    if problem is None:
        return store_url()  # and not a fresh store under a running daemon
    if problem.owner is not None and sqlite_file(url) is None:
        return url  # a database server's store: reading it creates no file here
    try:
        fast = open_fast(url) if problem.owner is not None else None
    except sqlite3.Error:
        fast = None
    if fast is None:
        raise NotTheStoreOwner(_unreadable(problem))
    fast.close()
    return url


def _unreadable(problem: StoreOwnedByAnotherUser) -> str:
    from gnomon._files import user_name

    if problem.owner is None:
        return str(problem)
    owner = user_name(problem.owner)
    return (
        f"{problem.path} belongs to user {owner}, and this command runs as "
        f"{user_name(problem.user)}: it cannot read the store, or the store is missing or "
        f"needs a schema upgrade, which only its owner may do (sudo -u {owner} gnomon ...)"
    )


def daemon_lock_path() -> Path:
    """The daemon lock file of this store (its status file is beside it)."""
    from gnomon.daemon import lock_path

    return lock_path(*_location())


def store_lock() -> DaemonLock:
    """This store's daemon lock, for a command that may only change the store while no
    daemon or serving script runs on it (``with store_lock():``; DaemonAlreadyRunning if
    one does)."""
    from gnomon.daemon import DaemonLock

    # Alone: on a server database, daemons of a cluster hold its lock shared, and this
    # holds it only when none does, whatever host they run on.
    return DaemonLock.for_store(*_location(), alone=True)


def daemon_holder() -> dict[str, Any] | None:
    """The record of the daemon serving this store (pid, hostname, ...), or None; found
    through the database's lock (see ``gnomon.daemon._lock``)."""
    from gnomon.daemon import find_holder

    return find_holder(*_location())


def _location() -> tuple[Path, str]:
    from gnomon._location import store_location
    from gnomon.exceptions import ConfigError

    try:
        return store_location()
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


def reload_timeout_option(fn: F) -> F:
    """``--timeout`` of the commands that wait for a daemon's reload."""
    return click.option(
        "--timeout",
        default=30.0,
        show_default=True,
        type=click.FloatRange(0.1, 3600),
        help="Seconds to wait for a running daemon's answer.",
    )(fn)


class ParsedInput(click.ParamType):
    """An option read by one of the control plane's input rules (``api._inputs``,
    ``states.parse_state_filter``), which the HTTP API applies too: a value the rule
    refuses is a usage error naming the option (exit 2)."""

    def __init__(self, name: str, read: Callable[[str], Any]) -> None:
        self.name = name
        self._read = read

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        from gnomon.exceptions import InvalidInput

        try:
            return self._read(value)
        except InvalidInput as error:
            self.fail(str(error), param, ctx)


def _since(text: str) -> datetime:
    from gnomon.control import parse_since

    return parse_since(text, datetime.now(UTC))


def _level(text: str) -> int:
    from gnomon.control import parse_level

    return parse_level(text)


def _state(text: str) -> Any:
    from gnomon.states import parse_state_filter

    return parse_state_filter(text)


def _seconds(text: str) -> float:
    from gnomon.control import parse_seconds

    return parse_seconds(text)


SECONDS = ParsedInput("seconds", _seconds)
SINCE = ParsedInput("since", _since)
LEVEL = ParsedInput("level", _level)
STATE = ParsedInput("state", _state)

since_option = click.option(
    "--since",
    type=SINCE,
    metavar="WHEN",
    help="Only newer than this: a duration back from now (2h, 30m) or an ISO time.",
)


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


def cli_actor_name() -> str:
    """Who is at the terminal: the OS user, and the user behind sudo if there is one."""
    import getpass

    user = getpass.getuser()
    sudo_user = os.environ.get("SUDO_USER")
    return f"{sudo_user} (sudo as {user})" if sudo_user and sudo_user != user else user


def nudge_daemon(kind: str) -> None:
    """Ask the daemon holding this store's lock to poll the store now (SIGUSR1) or reload its
    config (SIGHUP). No daemon, or one on another host, finds the change on its own."""
    import signal
    import socket

    holder = daemon_holder()
    if not holder or holder.get("hostname") != socket.gethostname() or "pid" not in holder:
        return
    signum = signal.SIGHUP if kind == "reload" else signal.SIGUSR1
    # Gone, or another user's: either way its next poll (within a second) finds the change.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(int(holder["pid"]), signum)


def operations() -> Operations:
    """The control plane's operations, done by the OS user through the CLI."""
    from gnomon.control import Operations
    from gnomon.store import Actor, Origin

    return Operations(open_store(), Actor(cli_actor_name(), Origin.CLI), nudge_daemon)


def fast_operations() -> FastOperations:
    """Those that only pause, resume or read, on ``fast_store``."""
    from gnomon.control import FastOperations
    from gnomon.store import Actor, Origin

    return FastOperations(fast_store(), Actor(cli_actor_name(), Origin.CLI), nudge_daemon)


class Commands(click.Group):
    """The ``gnomon`` group: a store fault in any command (see ``store_fault``), or a result
    storage's, ends it with one line naming the store and the cause, exit 1, instead of a
    traceback. ``gcl`` is ``global-concurrency-limit``, as in Prefect's command line (not
    listed in the help)."""

    aliases: ClassVar[dict[str, str]] = {"gcl": "global-concurrency-limit"}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def invoke(self, ctx: click.Context) -> Any:
        from gnomon.exceptions import ResultStorageError

        try:
            return super().invoke(ctx)
        except ResultStorageError as error:  # `db prune` on a result storage it cannot use
            raise OperationFailed(str(error)) from None
        except Exception as error:
            failure = _store_failure(error)
            if failure is None:
                raise
            raise failure from None


def _store_failure(error: Exception) -> StoreFailure | None:
    if isinstance(error, click.ClickException):
        return None
    from gnomon.store import store_fault, store_name

    try:
        url = _location()[1]
    except ConfigFailure:
        return None
    cause = store_fault(error, url)
    return None if cause is None else StoreFailure(f"store {store_name(url)}: {cause}")


class OperationFailed(click.ClickException):
    """The operation ran and failed (a finished run cannot be cancelled): exit 1."""

    exit_code = 1


class BadInput(click.ClickException):
    """Bad usage or an unknown name: exit 2, like click's own usage errors."""

    exit_code = 2


def reports_errors(fn: F) -> F:
    """Turn the control plane's errors into one-line messages with the documented exit codes:
    2 for a bad or unknown name, 1 for an operation that cannot apply."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from gnomon.control import (
            Conflict,
            InvalidParameters,
            ReloadNotAnswered,
            UnknownName,
        )
        from gnomon.exceptions import InvalidInput

        try:
            return fn(*args, **kwargs)
        except InvalidParameters as error:  # before InvalidInput: it lists its problems
            for problem in error.problems:
                click.echo(str(problem), err=True)
            raise BadInput(f"{len(error.problems)} problem(s) in the parameters; no run") from None
        except (InvalidInput, UnknownName) as error:
            raise BadInput(str(error)) from None
        except (Conflict, ReloadNotAnswered) as error:
            raise OperationFailed(str(error)) from None

    return wrapper  # type: ignore[return-value]


def report_reload(outcome: ReloadOutcome) -> NoReturn:
    """Print a reload's (or an apply's) outcome and exit with its code: 0 all applied, 1
    applied but for the deployments listed (they keep their last good version), 2 nothing
    applied."""
    from gnomon.store import ReloadStatus

    detail = outcome.detail
    for problem in outcome.problems:
        click.echo(problem, err=True)
    for label in ("added", "removed"):
        for name in detail.get(label) or []:
            click.echo(f"{label}: {name}")
    for name, fields in sorted((detail.get("changed") or {}).items()):
        click.echo(f"changed: {name} ({', '.join(fields)})")
    for name in detail.get("kept_last_good") or []:
        click.echo(f"kept last good version: {name}")
    for name, other in sorted((detail.get("taken_over") or {}).items()):
        from gnomon.deployments import CONFIG_SOURCE, takeover_message

        click.echo(f"warning: {takeover_message(name, CONFIG_SOURCE, other)}", err=True)
    if outcome.status is ReloadStatus.REFUSED:
        click.echo(f"{len(outcome.problems)} problem(s) in the config; nothing applied", err=True)
    else:
        counts = (
            f"{len(detail.get('added') or [])} added, {len(detail.get('removed') or [])} removed, "
            f"{len(detail.get('changed') or {})} changed"
        )
        click.echo(f"{outcome.status}: {counts}")
    sys.exit(outcome.exit_code)


def complete_deployments(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[Any]:
    """Shell completion of deployment names, from the store (nothing if it cannot be read)."""
    from click.shell_completion import CompletionItem

    try:
        names = fast_store().read_deployment_names()
    except Exception:  # completion must never print a traceback into the shell
        return []
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]
