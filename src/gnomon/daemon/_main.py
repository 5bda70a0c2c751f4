"""Running the daemon from the command line: start-up with its failures told in one line
and an exit code, the HTTP API it serves, where its log file goes."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gnomon.daemon._service import Daemon

if TYPE_CHECKING:
    from gnomon.api._server import ApiServer

log = logging.getLogger("gnomon.daemon")


def start_api(daemon: Daemon, home: Path) -> ApiServer | None:
    """Serve the HTTP API where ``[daemon] api`` says (None if "off"); on a store without
    tokens, first write an admin token to ``HOME/api-token`` (mode 0600)."""
    config = daemon.config.daemon
    if config.api is None:
        return None
    from gnomon.api._bind import parse_bind, public_url_for
    from gnomon.api._http import create_app
    from gnomon.api._server import ApiServer, check_bind, ensure_admin_token

    host, port = parse_bind(config.api)
    check_bind(host, config.api_auth)
    token_file = home / "api-token"
    if config.api_auth and ensure_admin_token(daemon.store, token_file) is not None:
        log.warning(
            "first start: an admin API token was written to %s (readable by its owner only)",
            token_file,
            extra={"token_file": str(token_file)},
        )
    app = create_app(
        daemon.store,
        nudge=daemon.nudge,
        metrics_render=daemon.reporter.metrics.render,
        auth=config.api_auth,
        config_path=daemon.config.path,
        health=daemon.health.status,
        max_body=config.api_max_body,
    )
    server = ApiServer(app, host, port)
    server.listen()  # the port is known (port 0 asks the system for one)
    daemon.reporter.link_to_api(public_url_for(host, server.port, socket.gethostname()))
    app.servers = [{"url": daemon.reporter.public_url}]  # the schema's server
    server.start()
    log.info(
        "api listening on %s",
        server.url,
        extra={"api_url": server.url, "public_url": daemon.reporter.public_url},
    )
    return server


def run_daemon(config_path: Path | None, started: Callable[[int, str], None] | None = None) -> int:
    """Run the daemon in the foreground; returns the exit code (2: bad config, 1: another
    daemon holds the store or the API cannot listen, 66: the database file was deleted or
    replaced under it). ``started`` hears how start-up ended (the exit code, 0 once ready,
    and a message): ``--detach`` reports it to its terminal."""

    from gnomon.api._server import ApiServerError, UnsafeBind
    from gnomon.daemon._lock import DaemonAlreadyRunning
    from gnomon.exceptions import ConfigError

    report = started or (lambda _code, _message: None)
    daemon = Daemon(config_path)
    daemon.install_signal_handlers()
    try:
        daemon.start()
    except ConfigError as error:
        print(f"gnomon daemon: the config has problems, not starting:\n{error}", file=sys.stderr)
        report(2, f"the config has problems, not starting:\n{error}")
        return 2
    except (DaemonAlreadyRunning, ApiServerError, UnsafeBind) as error:
        print(f"gnomon daemon: {error}", file=sys.stderr)
        report(1, str(error))
        daemon.abandon()
        return 1
    except BaseException as error:
        report(1, f"start-up failed: {type(error).__name__}: {error}")
        raise
    report(0, f"pid {os.getpid()}, {len(daemon.config.deployments)} deployments")
    from gnomon.daemon._storefile import EXIT_STORE_GONE, StoreFileChanged

    try:
        return daemon.serve()
    except StoreFileChanged:  # logged when found; serve() has shut down
        return EXIT_STORE_GONE
