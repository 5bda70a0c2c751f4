"""The HTTP API as a service beside the daemon: ``serve_api`` is the factory the command that
starts the daemon gives it (``gnomon daemon``), so the daemon itself never imports the web
side."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gnomon.daemon import Daemon
    from gnomon.http._server import ApiServer

log = logging.getLogger("gnomon.daemon")


def serve_api(daemon: Daemon) -> ApiServer | None:
    """Serve the HTTP API where ``[daemon] api`` says (None if "off"); on a store without
    tokens, first write an admin token to ``HOME/api-token`` (mode 0600); over HTTPS with
    ``api_tls_cert`` and ``api_tls_key``. Raises ``ServiceStartError`` (``ApiServerError``,
    ``UnsafeBind``, ``TlsError``) if it cannot listen or serve that certificate."""
    config = daemon.config.daemon
    if config.api is None:
        return None
    from gnomon._bind import parse_bind, public_url_for
    from gnomon._settings import get_settings
    from gnomon.http._http import create_app
    from gnomon.http._server import ApiServer, check_bind, ensure_admin_token
    from gnomon.http._tls import ServerCertificate

    host, port = parse_bind(config.api)
    check_bind(host, config.api_auth)
    certificate = None
    if config.api_tls_cert is not None and config.api_tls_key is not None:
        certificate = ServerCertificate(config.api_tls_cert, config.api_tls_key)  # or TlsError
    token_file = get_settings().home / "api-token"
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
    server = ApiServer(app, host, port, certificate)
    server.listen()  # the port is known (port 0 asks the system for one)
    hostname = socket.gethostname()
    daemon.reporter.link_to_api(public_url_for(host, server.port, hostname, tls=config.api_tls))
    app.servers = [{"url": daemon.reporter.public_url}]  # the schema's server
    server.start()
    log.info(
        "api listening on %s; dashboard at %s/",
        server.url,
        daemon.reporter.public_url,
        extra={"api_url": server.url, "public_url": daemon.reporter.public_url},
    )
    return server
