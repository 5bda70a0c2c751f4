"""``gnomon pause``, ``resume``, ``audit`` and ``token``: changes an operator makes, each
audited with the OS user as the actor (concurrency limits are ``_limits``')."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gnomon.cli._common import (
    BadInput,
    F,
    changes_store,
    complete_deployments,
    config_option,
    fast_operations,
    iso,
    json_option,
    open_store,
    operations,
    print_json,
    print_table,
    reports_errors,
    since_option,
)
from gnomon.control import MAX_COUNT

if TYPE_CHECKING:
    from gnomon.control import FastOperations, UnknownName
    from gnomon.store import FastControl


def _targets(names: tuple[str, ...], every: bool, tag: str | None) -> tuple[list[str], bool]:
    """The deployments named, or all, or those tagged; and whether the set was explicit."""
    chosen = sum((bool(names), every, tag is not None))
    if chosen != 1:
        raise BadInput("name deployments, or give --all or --tag TAG (exactly one of these)")
    return list(names), bool(names)


def _select(ops: FastOperations, names: tuple[str, ...], every: bool, tag: str | None) -> list[str]:
    """Resolve the targets; a name the store lacks but the config has is registered first
    (so pausing works before the daemon ever started)."""
    from gnomon.control import UnknownName

    try:
        return ops.select(names, every, tag)
    except UnknownName as error:
        if not _register_from_config(error):
            raise
    return ops.select(names, every, tag)


def _register_from_config(unknown: UnknownName) -> bool:
    """Sync the config into the store if it defines the deployment (or a deployment with
    the tag) the store does not know; whether it did."""
    from gnomon._settings import find_config_file

    if find_config_file() is None or unknown.kind not in ("deployment", "tag"):
        return False
    from gnomon.deployments import load_config

    deployments = load_config(check_flows=False).config.deployments
    if unknown.kind == "tag":
        known = {tag for deployment in deployments for tag in deployment.tags}
    else:
        known = {deployment.name for deployment in deployments}
    if unknown.name not in known:
        return False
    operations().apply(None)
    return True


target_arguments = [
    click.argument("names", nargs=-1, metavar="NAME...", shell_complete=complete_deployments),
    click.option("--all", "every", is_flag=True, help="Every deployment."),
    click.option("--tag", help="Every deployment with this tag."),
    click.option("--reason", help="Why: shown by `deployments show` and kept in the audit log."),
]


def _with_targets(fn: F) -> F:
    for decorator in reversed(target_arguments):
        fn = decorator(fn)
    return fn


@click.command("pause")
@config_option
@_with_targets
@click.option(
    "--until",
    metavar="TIME",
    help="Resume by itself at this ISO 8601 time (without an offset: this machine's zone).",
)
@click.option(
    "--for", "duration", metavar="DURATION", help="Resume by itself after this long (2h, 30m)."
)
@click.option("--cancel-running", is_flag=True, help="Also cancel their running runs.")
@json_option
@reports_errors
@changes_store
def pause_command(
    config: Path | None,
    names: tuple[str, ...],
    every: bool,
    tag: str | None,
    reason: str | None,
    until: str | None,
    duration: str | None,
    cancel_running: bool,
    as_json: bool,
) -> None:
    """Pause deployments: no fire after this command returns, also in a running daemon.

    Running runs go on unless --cancel-running. The pause is kept in the store across
    reloads and restarts, and it works while the daemon is down. With --until or --for
    the daemon resumes them by itself at that time (also if it was down then), without
    catching up the paused period; `gnomon resume` ends the pause earlier. Pausing a
    paused deployment only makes its pause longer, never shorter.

    \b
    Examples:
      gnomon pause nightly-report --reason "CRM outage, INC-4312"
      gnomon pause nightly-report --until 2026-12-08T09:00 --reason "freeze"
      gnomon pause --tag crm --for 2h --cancel-running
      gnomon pause --all --reason "database maintenance"
    """
    from gnomon.control import local_text

    _targets(names, every, tag)
    end = _pause_end(until, duration)
    if cancel_running:  # cancelling runs takes the whole store
        ops = operations()
        selected = _select(ops, names, every, tag)
        result = ops.pause(selected, reason, end, cancel_running=True)
        store: FastControl = ops.store
    else:
        fast = fast_operations()
        selected = _select(fast, names, every, tag)
        result = fast.pause(selected, reason, end)
        store = fast.store
    if as_json:
        print_json(
            {
                "paused": result.changed,
                "already_paused": result.unchanged,
                "cancelled_runs": result.cancelled_runs,
                "paused_until": iso(result.until),
            }
        )
        return
    lasting = f" until {local_text(end)}" if end is not None else ""
    for name in result.changed:
        click.echo(f"paused {name}{lasting}")
    for name in result.unchanged:  # paused as long already: until resumed, or later
        row = store.read_deployment(name)
        ends = f" until {local_text(row.paused_until)}" if row and row.paused_until else ""
        click.echo(f"{name} was already paused{ends}")
    for run_id in result.cancelled_runs:
        click.echo(f"cancelling run {run_id}")
    if not selected:
        click.echo("no deployment matched", err=True)


def _pause_end(until: str | None, duration: str | None) -> datetime | None:
    """When the pause asked for ends (None: when resumed); a bad value is a usage error."""
    from gnomon.control import parse_pause_end
    from gnomon.exceptions import InvalidInput

    try:
        return parse_pause_end(until, duration, datetime.now(UTC), ("--until", "--for"))
    except InvalidInput as error:
        raise BadInput(str(error)) from None


@click.command("resume")
@config_option
@_with_targets
@json_option
@reports_errors
@changes_store
def resume_command(
    config: Path | None,
    names: tuple[str, ...],
    every: bool,
    tag: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Resume paused deployments from their next fire (the paused period is not caught up),
    also those whose pause would end by itself later.

    \b
    Examples:
      gnomon resume nightly-report
      gnomon resume --tag crm --reason "CRM back, INC-4312 closed"
    """
    _targets(names, every, tag)
    ops = fast_operations()
    selected = _select(ops, names, every, tag)
    result = ops.resume(selected, reason)
    if as_json:
        print_json({"resumed": result.changed, "not_paused": result.unchanged})
        return
    for name in result.changed:
        click.echo(f"resumed {name}")
    for name in result.unchanged:
        click.echo(f"{name} was not paused")
    if not selected:
        click.echo("no deployment matched", err=True)


@click.command("audit")
@config_option
@since_option
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_COUNT),
    default=100,
    show_default=True,
    help="At most this many, newest first.",
)
@json_option
def audit_command(config: Path | None, since: datetime | None, limit: int, as_json: bool) -> None:
    """Show who changed what: pauses, runs, cancels, retries, applies, reloads, tokens.

    \b
    Example:
      gnomon audit --since 1d
    """
    from gnomon.control import audit_view

    entries = [audit_view(row) for row in open_store().read_audit(since, limit)]
    if as_json:
        print_json(entries)
        return
    if not entries:
        click.echo("no audit entries", err=True)
        return
    print_table(entries, ["timestamp", "actor", "origin", "action", "target", "reason"])


@click.group("token")
def token_group() -> None:
    """Manage the HTTP API's bearer tokens (stored hashed; shown once, at creation).

    \b
    Examples:
      gnomon token create grafana --scope read --expires 90d
      gnomon token ls
      gnomon token revoke grafana
    """


@token_group.command("create")
@config_option
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(["read", "operate", "admin"]),
    help="read: GET only; operate: also pause, resume, run, cancel and retry; admin (the"
    " default): everything, tokens and apply included.",
)
@click.option("--read-only", is_flag=True, help="The same as --scope read.")
@click.option(
    "--expires",
    metavar="DURATION",
    help="Valid for this long from now (30d, 12h, P90D); by default until revoked.",
)
@reports_errors
@changes_store
def token_create(
    config: Path | None, name: str, scope: str | None, read_only: bool, expires: str | None
) -> None:
    """Create a token and print it: store it now, it is not shown again.

    \b
    Examples:
      gnomon token create ci-deployer --expires 90d
      gnomon token create on-call --scope operate
      gnomon token create grafana --scope read
    """
    from gnomon.control import parse_expiry, token_access

    access = token_access(scope, read_only)
    life = None if expires is None else parse_expiry(expires)
    token = operations().create_token(name, access, life)
    click.echo(token)
    until = f", expires in {expires}" if expires else ""
    click.echo(f"token {name} created ({access}{until}); it is not shown again", err=True)


@token_group.command("ls")
@config_option
@json_option
def token_ls(config: Path | None, as_json: bool) -> None:
    """List tokens: name, scope, creator, last use (never the token).

    \b
    Example:
      gnomon token ls
    """
    from gnomon.control import token_view

    rows = [token_view(row) for row in open_store().read_tokens()]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no tokens", err=True)
        return
    print_table(rows, ["name", "scope", "expires", "created", "created_by", "last_used"])


@token_group.command("revoke")
@config_option
@click.argument("name")
@reports_errors
@changes_store
def token_revoke(config: Path | None, name: str) -> None:
    """Revoke a token: requests with it fail from now on.

    \b
    Example:
      gnomon token revoke grafana
    """
    operations().revoke_token(name)
    click.echo(f"token {name} revoked")
