"""``gnomon variable`` and ``gnomon secret``: the named values flows read
(``Variable.get``, ``Secret.load``), managed by operators, each change audited with the OS
user as the actor. A secret's value is read from stdin or a file, never from the command
line (where ``ps`` and the shell's history would show it), and never printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gnomon._text import quoted, shortened
from gnomon.cli._common import (
    BadInput,
    ConfigFailure,
    F,
    OperationFailed,
    changes_store,
    cli_actor_name,
    config_option,
    json_option,
    open_store,
    print_json,
    print_table,
    reports_errors,
    settings,
)

if TYPE_CHECKING:
    from gnomon._vault import Vault
    from gnomon.control import VariableOperations

MAX_SECRET_BYTES = 64 * 1024  # a password, a token, a key or a small JSON document
SHOWN_VALUE = 60  # characters of a value `variable ls` shows


def _operations() -> VariableOperations:
    from gnomon.control import VariableOperations
    from gnomon.store import Actor, Origin

    return VariableOperations(open_store(), Actor(cli_actor_name(), Origin.CLI))


def _value_text(value: Any) -> str:
    """A variable's value as printed: a string as itself, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


@click.group("variable")
def variable_group() -> None:
    """Named JSON values that flows read with Variable.get (Prefect's variables).

    \b
    Examples:
      gnomon variable set report-recipients '["ops@example.com"]' --json-value
      gnomon variable get report-recipients
      gnomon variable ls
      gnomon variable rm report-recipients
    """


@variable_group.command("get")
@config_option
@click.argument("name")
@json_option
@reports_errors
def variable_get(config: Path | None, name: str, as_json: bool) -> None:
    """Print variable NAME's value (a string as itself, anything else as JSON).

    \b
    Example:
      gnomon variable get batch-size
    """
    from gnomon.control import variable_view

    row = _operations().variable(name)
    if as_json:
        print_json(variable_view(row))
        return
    click.echo(_value_text(row.value))


@variable_group.command("set")
@config_option
@click.argument("name")
@click.argument("value")
@click.option(
    "--json-value",
    is_flag=True,
    help="VALUE is JSON (a number, true, null, a list, an object); by default a string.",
)
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace the variable if it exists.")
@reports_errors
@changes_store
def variable_set(
    config: Path | None,
    name: str,
    value: str,
    json_value: bool,
    tags: tuple[str, ...],
    overwrite: bool,
) -> None:
    """Create variable NAME with VALUE, or replace it with --overwrite.

    \b
    Examples:
      gnomon variable set crm-endpoint https://crm.example.com/api
      gnomon variable set batch-size 500 --json-value --overwrite
    """
    parsed: Any = value
    if json_value:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise BadInput(
                f'--json-value: the value for variable "{name}" is not JSON ({error}):'
                f" {quoted(value)}"
            ) from None
    replaced = _operations().set_variable(name, parsed, list(tags), overwrite)
    click.echo(f"variable {name} {'replaced' if replaced else 'created'}")


@variable_group.command("ls")
@config_option
@json_option
def variable_ls(config: Path | None, as_json: bool) -> None:
    """List variables: name, value (cut short), tags, last change.

    \b
    Example:
      gnomon variable ls --json
    """
    from gnomon.control import variable_view

    views = [variable_view(row) for row in open_store().read_variables()]
    if as_json:
        print_json(views)
        return
    if not views:
        click.echo("no variables", err=True)
        return
    for view in views:
        text = _value_text(view["value"])
        view["value"] = shortened(text, SHOWN_VALUE)
        view["tags"] = ",".join(view["tags"]) or None
    print_table(views, ["name", "value", "tags", "updated"])


@variable_group.command("rm")
@config_option
@click.argument("name")
@reports_errors
@changes_store
def variable_rm(config: Path | None, name: str) -> None:
    """Remove variable NAME (the audit log keeps its last value).

    \b
    Example:
      gnomon variable rm batch-size
    """
    _operations().remove_variable(name)
    click.echo(f"variable {name} removed")


@click.group("secret")
def secret_group() -> None:
    """Secrets flows load with Secret.load(NAME).get(), encrypted in the store with a key
    kept outside it (the setting secrets_key_file, or systemd's LoadCredential=).

    \b
    Examples:
      gnomon secret key-gen /etc/gnomon/secrets.key
      gnomon secret set crm-api-token < token.txt
      gnomon secret ls
      gnomon secret rm crm-api-token
    """


def _key_errors(fn: F) -> F:
    """A missing or unusable key is a config problem: one line naming where gnomon looked,
    exit 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from gnomon.exceptions import SecretsKeyError

        try:
            return fn(*args, **kwargs)
        except SecretsKeyError as error:
            raise ConfigFailure(str(error)) from None

    return wrapper  # type: ignore[return-value]


def _vault() -> Vault:
    from gnomon._vault import open_vault

    return open_vault(settings())


@secret_group.command("set")
@config_option
@click.argument("name")
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the value from this file instead of stdin.",
)
@click.option("--overwrite", is_flag=True, help="Replace the secret if it exists.")
@reports_errors
@_key_errors
@changes_store
def secret_set(config: Path | None, name: str, from_file: Path | None, overwrite: bool) -> None:
    """Store secret NAME, its value read from stdin (or --from-file), encrypted.

    One final newline is dropped (echo adds it). On a terminal the value is asked for
    without echoing it.

    \b
    Examples:
      gnomon secret set crm-api-token < token.txt
      printf %s "$TOKEN" | gnomon secret set crm-api-token --overwrite
      gnomon secret set warehouse-credentials --from-file creds.json
    """
    from gnomon.flows import check_secret_name

    check_secret_name(name)  # a bad name is said before the value is asked for
    vault = _vault()  # and so is a missing key
    value = _secret_input(name, from_file)
    replaced = _operations().set_secret(name, value, overwrite, vault)
    click.echo(f"secret {name} {'replaced' if replaced else 'created'}")


def _secret_input(name: str, from_file: Path | None) -> str:
    """The value given for secret ``name``: the file's, the terminal's (asked for without
    echo) or stdin's, without one final newline."""
    if from_file is None and sys.stdin.isatty():
        return str(click.prompt(f"value for secret {name}", hide_input=True))
    stream = from_file.open("rb") if from_file is not None else sys.stdin.buffer
    with stream:
        data = stream.read(MAX_SECRET_BYTES + 1)
    where = str(from_file) if from_file is not None else "stdin"
    if len(data) > MAX_SECRET_BYTES:
        raise BadInput(f'the value for secret "{name}" ({where}) is over {MAX_SECRET_BYTES} bytes')
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f'the value for secret "{name}" ({where}) is not UTF-8 text') from None
    return text.removesuffix("\n").removesuffix("\r")


@secret_group.command("ls")
@config_option
@json_option
def secret_ls(config: Path | None, as_json: bool) -> None:
    """List secrets: name, when set and by whom (never a value).

    \b
    Example:
      gnomon secret ls
    """
    from gnomon.control import secret_view

    views = [secret_view(row) for row in open_store().read_secrets()]
    if as_json:
        print_json(views)
        return
    if not views:
        click.echo("no secrets", err=True)
        return
    print_table(views, ["name", "updated", "updated_by", "created"])


@secret_group.command("rm")
@config_option
@click.argument("name")
@reports_errors
@changes_store
def secret_rm(config: Path | None, name: str) -> None:
    """Remove secret NAME.

    \b
    Example:
      gnomon secret rm crm-api-token
    """
    _operations().remove_secret(name)
    click.echo(f"secret {name} removed")


@secret_group.command("key-gen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def secret_key_gen(path: Path) -> None:
    """Write a new key to PATH (created 0600; never over an existing file).

    Then name it in the config (secrets_key_file = "PATH"), or give it to the daemon's unit
    as a credential (LoadCredential=gnomon-secrets-key:PATH). Keep a copy apart from the
    database's backups: without the key, the secrets are lost.

    \b
    Example:
      gnomon secret key-gen /etc/gnomon/secrets.key
    """
    from gnomon._vault import write_key_file

    try:
        write_key_file(path)
    except FileExistsError:
        raise OperationFailed(f"{path} exists; not replacing a key (see `secret rotate`)") from None
    except OSError as error:
        raise OperationFailed(f"cannot write {path}: {error.strerror}") from None
    click.echo(f"wrote a new key to {path}")


@secret_group.command("rotate")
@config_option
@reports_errors
@_key_errors
@changes_store
def secret_rotate(config: Path | None) -> None:
    """Encrypt every secret again with the key file's first key.

    To rotate: put a new key (`gnomon secret key-gen new.key`) on the first line of the
    key file, keep the old key on the line below, run this, then remove the old line.

    \b
    Example:
      gnomon secret rotate
    """
    names = _operations().rotate_secrets(_vault())
    click.echo(f"{len(names)} secret(s) encrypted again with the first key")
