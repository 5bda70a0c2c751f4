"""Serving the API from the daemon: uvicorn on a background thread, the bind rule, and the
first admin token.

uvicorn runs its own event loop in its own thread, so the daemon's loop never waits on
HTTP and a slow client never delays a fire. The socket is bound here, before the thread
starts, so a port already taken is an error ``start()`` raises rather than a log line.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnomon._bind import is_loopback
from gnomon.exceptions import ServiceStartError

if TYPE_CHECKING:
    from gnomon.http._tls import ServerCertificate
    from gnomon.store import ControlStore

ADMIN_TOKEN_NAME = "admin"
SHUTDOWN_GRACE = 2  # seconds open requests (log streams) get before they are cut


class ApiServerError(ServiceStartError, OSError):
    """The API cannot listen where it was told to (address in use, no such address)."""


class UnsafeBind(ServiceStartError, ValueError):
    """Serving without authentication on an address other machines can reach."""


def check_bind(host: str, auth: bool) -> None:
    """Refuse to serve without authentication beyond loopback (127.0.0.0/8, ::1, localhost)."""
    if not auth and not is_loopback(host):
        raise UnsafeBind(
            f"refusing to serve the API on {host} without authentication: set api_auth = true, "
            "or bind to 127.0.0.1, [::1] or localhost"
        )


class ApiServer:
    """An ASGI app served by uvicorn on a daemon thread: ``start()``, then ``stop()``.
    Given a ``certificate``, it serves HTTPS only (plain HTTP to its port fails)."""

    def __init__(
        self, app: Any, host: str, port: int, certificate: ServerCertificate | None = None
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.certificate = certificate
        self._socket: socket.socket | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the system's pick when asked for port 0)."""
        if self._socket is None:
            return self.requested_port
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.certificate else 'http'}://{host}:{self.port}"

    def listen(self) -> None:
        """Bind the socket (``port`` is known from here on); ApiServerError if it cannot.
        Connections wait in its backlog until ``start``."""
        if self._socket is None:
            self._socket = _listen(self.host, self.requested_port)

    def start(self, timeout: float = 30.0) -> None:
        """Listen, and return once requests are served; ApiServerError if it cannot."""
        import uvicorn

        self.listen()
        assert self._socket is not None
        started = threading.Event()

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                started.set()

        config = uvicorn.Config(
            self.app,
            log_config=None,  # uvicorn's records go to the daemon's logging set-up
            access_log=False,
            server_header=False,  # what serves the API is nobody else's business
            lifespan="off",
            # X-Forwarded-For and -Proto are not believed, even from loopback (uvicorn's
            # default): any local program could put another address in the audit log, or
            # make a session cookie Secure over plain HTTP. Behind a proxy, the audit
            # records the proxy's address.
            proxy_headers=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
            # Requests over it have the scheme https, so the session cookie is Secure.
            ssl_context_factory=(
                (lambda _config, _default: certificate.context)
                if (certificate := self.certificate)
                else None
            ),
        )
        self._server = server = Server(config)
        sockets = [self._socket]
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=sockets), name="gnomon-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not started.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ApiServerError(f"the API did not start on {self.url}; see the log")

    def reload(self) -> None:
        """The daemon's config was reloaded: read the TLS certificate and key again, so a
        renewed certificate is served without a restart."""
        if self.certificate is not None:
            self.certificate.reload()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: open requests get ``SHUTDOWN_GRACE`` seconds, then are cut. An app
        with a ``state.closing`` event (``create_app``'s) has it set, so its log streams end
        at once instead."""
        closing = getattr(getattr(self.app, "state", None), "closing", None)
        if isinstance(closing, threading.Event):
            closing.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._socket is not None:
            self._socket.close()


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ApiServerError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise ApiServerError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.set_inheritable(False)
    return sock


def ensure_admin_token(store: ControlStore, path: Path) -> str | None:
    """On a store without tokens, create the read-write token "admin", write it to ``path``
    (mode 0600: only its owner can read it, not even briefly anyone else) and return it;
    else None.

    A file left from an earlier store is replaced: with no token in the store, what it
    holds opens nothing.
    """
    from gnomon._files import private_directory
    from gnomon.control import Conflict, Operations
    from gnomon.store import Actor, Origin

    if store.count_tokens():
        return None
    private_directory(path.parent)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        try:
            ops = Operations(store, Actor("gnomon-daemon", Origin.DAEMON))
            token = ops.create_token(ADMIN_TOKEN_NAME)
        except BaseException as error:
            path.unlink()
            if isinstance(error, Conflict):  # another process made the first token meanwhile
                return None
            raise
        file.write(token + "\n")
    return token
