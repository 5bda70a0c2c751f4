"""``gnomon daemon``: run the scheduler, in the foreground or detached, and control it."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gnomon._files import private_directory
from gnomon.cli._common import (
    SECONDS,
    F,
    changes_store,
    check_store_owner,
    config_option,
    daemon_holder,
    json_option,
    reload_timeout_option,
    reports_errors,
    settings,
)

if TYPE_CHECKING:
    from gnomon.daemon import StartReport


@click.group("daemon", invoke_without_command=True)
@config_option
@click.option("--detach", is_flag=True, help="Daemonize (double fork); needs --pidfile.")
@click.option(
    "--pidfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where --detach writes the daemon's pid; stop and status read it.",
)
@click.pass_context
def daemon_group(
    ctx: click.Context, config: Path | None, detach: bool, pidfile: Path | None
) -> None:
    """Run the scheduling daemon on the config's deployments (foreground by default).

    \b
    Examples:
      gnomon daemon --config config.example.toml
      gnomon daemon --detach --pidfile /run/gnomon.pid
      gnomon daemon reload        # re-read the config (same as SIGHUP)
      gnomon daemon status --pidfile /run/gnomon.pid

    Exit codes: 0 after a clean stop (SIGTERM), 1 if another daemon runs on the same
    database (or the store cannot be used), 2 if the config has problems (each one is
    listed), 66 if the database file was deleted or replaced while it ran (it stops rather
    than split the runs between two files; restore the store, then start it again).
    """
    ctx.ensure_object(dict)
    ctx.obj["pidfile"] = pidfile
    if ctx.invoked_subcommand is not None:
        return
    check_store_owner()
    from gnomon.daemon import run_daemon
    from gnomon.http import serve_api

    # The daemon and its HTTP API are composed here: the daemon does not import the web side.
    services = [serve_api]
    if detach:
        if pidfile is None:
            raise click.UsageError("--detach needs --pidfile PATH")
        report = _detach(pidfile)
        sys.exit(run_daemon(config, started=report.send, services=services))
    sys.exit(run_daemon(config, services=services))


def _detach(pidfile: Path) -> StartReport:
    """Daemonize, after the checks whose failure must reach the terminal, not a log.

    The command's own process stays behind until the daemon reports its start-up, and
    exits with its outcome (the daemon's start-up exit code and message)."""
    from gnomon.daemon import PidfileInUse, StartReport, detach

    home = settings().home
    holder = daemon_holder()
    if holder is not None:
        pid = holder.get("pid", "?")
        click.echo(f"gnomon daemon: another daemon (pid {pid}) is running on this store", err=True)
        sys.exit(1)
    # Output before logging is configured (and tracebacks) lands here instead of /dev/null.
    output = home / "logs" / "daemon-output.log"
    private_directory(output.parent)
    report = StartReport()
    if report.launch() is not None:
        code, message = report.wait()
        if code == 0:
            click.echo(f"gnomon daemon started: {message}")
        else:
            click.echo(f"gnomon daemon: {message}", err=True)
        sys.exit(code)
    try:
        detach(
            pidfile.absolute(),
            log_path=output,
            working_directory=Path.cwd(),
            keep_fds=(report.write_fd,),
        )
    except (PidfileInUse, PermissionError) as error:
        report.send(1, str(error))
        os._exit(1)  # the forked copy of the command: no atexit hooks of the parent's
    return report


def pidfile_option(fn: F) -> F:
    """``--pidfile`` on ``reload``, ``stop`` and ``status`` too, where users write it."""
    return click.option(
        "--pidfile",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The pidfile of a --detach'ed daemon (default: the daemon holding the store).",
    )(fn)


def _daemon_pid(pidfile: Path | None) -> int | None:
    """The running daemon's pid: from the pidfile if given, else from the store's lock."""
    if pidfile is not None:
        from gnomon.daemon import read_pidfile

        return read_pidfile(pidfile)
    holder = daemon_holder()
    return int(holder["pid"]) if holder and "pid" in holder else None


def _running_pid(ctx: click.Context, pidfile: Path | None) -> int:
    """The pid to signal (``--pidfile`` before or after the subcommand); exit 1 if none."""
    pid = _daemon_pid(pidfile or ctx.obj.get("pidfile"))
    if pid is None:
        click.echo("no gnomon daemon is running on this store", err=True)
        sys.exit(1)
    return pid


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        click.echo(f"gnomon daemon: pid {pid} has just exited", err=True)
        sys.exit(1)
    except PermissionError:
        click.echo(f"gnomon daemon: not allowed to signal pid {pid} (run as its user)", err=True)
        sys.exit(1)


def _released(pid: int, timeout: float) -> bool:
    """Whether daemon ``pid`` let go of the store's lock within ``timeout`` s: only then may
    a new daemon start on the store."""
    deadline = time.monotonic() + timeout
    while _daemon_pid(None) == pid:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


@daemon_group.command("reload")
@config_option
@pidfile_option
@reload_timeout_option
@click.pass_context
@changes_store
@reports_errors
def daemon_reload(
    ctx: click.Context, config: Path | None, pidfile: Path | None, timeout: float
) -> None:
    """Make the running daemon re-read its config, and wait for the outcome.

    A file that cannot be read or parsed, or a problem not confined to one deployment (two
    deployments with one name, a broken include, a bad [daemon] or [[notify]] entry),
    changes nothing: exit 2. A deployment with problems keeps its last good version while
    the rest applies: exit 1, listing the problems. Everything applied: exit 0. The
    outcome, with the fields each deployment changed, is in `gnomon audit`.

    \b
    Example:
      gnomon daemon reload
    """
    from gnomon.cli._common import operations, report_reload

    _running_pid(ctx, pidfile)
    report_reload(operations().reload(config, timeout))


@daemon_group.command("stop")
@config_option
@pidfile_option
@click.option(
    "--timeout",
    type=SECONDS,
    default=60.0,
    show_default=True,
    help="Seconds to wait for it to exit.",
)
@click.pass_context
def daemon_stop(
    ctx: click.Context, config: Path | None, pidfile: Path | None, timeout: float
) -> None:
    """Stop the running daemon (SIGTERM: running runs finish up to shutdown_grace).

    \b
    Example:
      gnomon daemon stop --pidfile /run/gnomon.pid
    """
    pidfile = pidfile or ctx.obj.get("pidfile")
    if pidfile is not None:
        from gnomon.daemon import DaemonNotRunning, stop

        try:
            stopped = stop(pidfile, timeout)
        except DaemonNotRunning as error:
            click.echo(f"gnomon daemon: {error}", err=True)
            sys.exit(1)
    else:
        pid = _running_pid(ctx, None)
        _signal(pid, signal.SIGTERM)
        stopped = _released(pid, timeout)
    click.echo("daemon stopped" if stopped else "daemon did not stop in time")
    sys.exit(0 if stopped else 1)


@daemon_group.command("status")
@config_option
@pidfile_option
@json_option
@click.pass_context
def daemon_status(
    ctx: click.Context, config: Path | None, pidfile: Path | None, as_json: bool
) -> None:
    """Say whether a daemon is running and how it is: exit 0 when it runs and is ok, 1
    when it is degraded (still scheduling, but the store or the disk is failing) or stuck
    (its loop is not ticking: systemd's watchdog restarts it), 3 when none runs (as
    systemctl status).

    \b
    Example:
      gnomon daemon status --pidfile /run/gnomon.pid
    """
    from gnomon.cli._common import daemon_elsewhere, daemon_lock_path, print_json
    from gnomon.daemon import read_status

    pid = _daemon_pid(pidfile or ctx.obj.get("pidfile"))
    members = _cluster_members()
    if pid is None:
        if as_json:
            print_json({"running": False, **({"daemons": members} if members else {})})
        else:
            click.echo("gnomon daemon is not running")
            _echo_members(members)
        sys.exit(3)
    health = read_status(daemon_lock_path())
    if as_json:
        found = health.as_json(detail=True) if health else {}
        cluster = {"daemons": members} if members else {}
        print_json({"running": True, "pid": pid, **found, **cluster})
    elif health is None:
        click.echo(f"gnomon daemon is running (pid {pid}); its health is not known yet")
        elsewhere = daemon_elsewhere()
        if elsewhere is not None:
            click.echo(f"this command looked at another store: {elsewhere}")
    else:
        age = health.last_tick_age
        tick = "" if age is None else f", last tick {age:.1f} s ago"
        why = f": {health.reason}" if health.reason else ""
        detail = f" ({health.detail})" if health.detail else ""
        click.echo(f"gnomon daemon is running (pid {pid}): {health.state.value}{why}{detail}{tick}")
        if health.last_prune is not None:
            click.echo(f"last prune {health.last_prune}")
    if not as_json:
        _echo_members(members)
    sys.exit(0 if health is None or health.state.value == "ok" else 1)


MEMBER_COLUMNS = ["host", "pid", "version", "role", "busy", "idle", "heartbeat", "differs on"]


def _cluster_members() -> list[dict[str, Any]]:
    """The daemons sharing the store, for a PostgreSQL store (none on SQLite: one daemon,
    and its status is the lines above). The status stands without them: a store this
    command cannot read (another one than the daemon's, the server down) only says so."""
    from gnomon._location import store_location

    _, url = store_location()
    if not url.startswith("postgresql"):
        return []
    from gnomon.cli._common import open_store
    from gnomon.control import member_views
    from gnomon.store import store_fault

    try:
        return member_views(open_store())  # type: ignore[arg-type]
    except Exception as error:
        fault = store_fault(error, url)
        if fault is None and not isinstance(error, click.ClickException):
            raise
        click.echo(f"the daemons on the database are not known: {fault or error}", err=True)
        return []


def _echo_members(members: list[dict[str, Any]]) -> None:
    from gnomon.cli._common import print_table

    if not members:
        return
    click.echo(f"\n{len(members)} daemon(s) on this database:")
    rows = [
        {
            **member,
            "role": "scheduler" if member["scheduler"] else "member",
            "heartbeat": f"{member['heartbeat_age']:.1f} s ago",
            "differs on": ", ".join(member["differing"]) or "-",
        }
        for member in members
    ]
    print_table(rows, MEMBER_COLUMNS)


@click.command("dashboard")
@config_option
def dashboard_command(config: Path | None) -> None:
    """Print the dashboard's address, where the daemon on this config serves it: its
    public_url, else its [daemon] api address (https:// with api_tls_cert and
    api_tls_key). Log in there with an API token.

    \b
    Example:
      gnomon dashboard          # http://127.0.0.1:8787/
    """
    import socket

    from gnomon._bind import parse_bind, public_url_for
    from gnomon._settings import find_config_file
    from gnomon.deployments import DaemonConfig, load_config

    config_file = config or find_config_file()
    daemon = DaemonConfig()
    if config_file is not None:
        result = load_config(config_file, check_flows=False)
        broken = [p for p in result.problems if p.deployment is None and p.notify is None]
        if broken:
            raise click.ClickException("; ".join(str(problem) for problem in broken))
        daemon = result.config.daemon
    where = f" in {config_file}" if config_file is not None else ""
    if daemon.public_url:
        url = daemon.public_url
    elif daemon.api is None:
        raise click.ClickException(f'the dashboard is off: [daemon] api = "off"{where}')
    else:
        host, port = parse_bind(daemon.api)
        if port == 0:
            raise click.ClickException(
                f"[daemon] api = {daemon.api!r}{where} takes a free port at start-up: the"
                ' daemon\'s log says which ("api listening on ...")'
            )
        url = public_url_for(host, port, socket.gethostname(), tls=daemon.api_tls)
    click.echo(url.rstrip("/") + "/")
