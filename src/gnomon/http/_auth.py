"""Bearer-token authentication for every request but ``GET /healthz``.

It is ASGI middleware around the whole application, not a dependency routes opt into: a
route added later is protected without anyone remembering to, and so are paths that match
no route (they answer 401, not 404, so the route table is not revealed either). Streaming
responses pass through it like any other.

A token is looked up by its SHA-256 hash (the store keeps only hashes), so comparing it
takes the same time whichever token is sent; an expired one is refused like a revoked one.
What a request needs (``required_access``) is decided here too, deny by default: reads
(GET, HEAD) need a read token, the operations of ``OPERATE_PATHS`` (pause, resume, run,
cancel, retry) an operate token, and everything else, a route added later included, an
admin token. The token's name is the actor of the changes made with it, with origin "api".

Without authentication (``api_auth = false``, loopback only) every request is served as
"anonymous", but only if its ``Host`` is a loopback name or address: a DNS-rebinding page,
reaching 127.0.0.1 under its own name, is refused (421) before anything is read or done.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from anyio import to_thread

from gnomon._bind import is_loopback_host
from gnomon.control import hash_token
from gnomon.http._guards import send_error
from gnomon.http._session import COOKIE, Sessions
from gnomon.store import Actor, Origin, TokenAccess

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from gnomon.store import ControlStore
    from gnomon.store.rows import TokenScope

OPEN_PATH = "/healthz"  # exactly this path: not /healthz/, not /healthz/x
# Open to anyone too: the login page, and the dashboard's static files (GET and HEAD).
LOGIN_PATH = "/login"
STATIC_PREFIX = "/static/"
# The dashboard's pages and actions: a session cookie (``_session``), never a bearer token;
# everything else (/api/v1, /metrics, ...) a bearer token, never the cookie. A deployment's
# name and a run's id are one path segment.
DASHBOARD_PATHS = re.compile(
    r"/(?:|deployments|deployments/[^/]+|runs|audit|variables|logout|actions/.+|backfills/[^/]+"
    r"|runs/[^/]+(?:/logs/stream)?)",
    re.DOTALL,
)
# The dashboard's actions an operate session may take.
OPERATE_ACTIONS = re.compile(
    r"/actions/(?:deployments/[^/]+/(?:pause|resume|run|backfill)|runs/[^/]+/(?:cancel|retry|resume)"
    r"|backfills/[^/]+/cancel)",
    re.DOTALL,
)
READ_METHODS = frozenset({"GET", "HEAD"})
# What an operate token may change: an operator's controls during an incident.
OPERATE_PATHS = re.compile(
    r"/api/v1/(?:(?:deployments/[^/]+/)?(?:pause|resume)|deployments/[^/]+/(?:runs|backfills)"
    r"|runs/[^/]+/(?:cancel|retry|resume))"
)
# Maintenance windows, which an operator adds and removes (POST, DELETE) like a pause.
OPERATE_WINDOWS = re.compile(r"/api/v1/maintenance(?:/[0-9]+)?")
# Cancelling a backfill (DELETE) is an operator's control too, as cancelling a run is.
OPERATE_DELETES = re.compile(r"/api/v1/backfills/[0-9]+")
NOT_LOOPBACK = (
    "this server serves without authentication (api_auth = false), so only at a loopback"
    " address: 127.0.0.1, [::1] or localhost"
)
TOUCH_EVERY = 60.0  # seconds: a token's last use is written at most this often
ANONYMOUS = Actor("anonymous", Origin.API)

logger = logging.getLogger(__name__)


def request_actor(scope: Scope) -> Actor:
    """The actor ``TokenAuth`` found for this request; raises if it found none, so a route
    reached some other way still refuses to act."""
    actor = scope.get("state", {}).get("actor")
    if not isinstance(actor, Actor):
        raise PermissionError("request not authenticated")
    return actor


class TokenAuth:
    """ASGI middleware: 401 without a valid, unexpired bearer token, 403 for a request its
    token's access does not allow; otherwise the request goes on with its actor in
    ``scope["state"]["actor"]``."""

    def __init__(
        self,
        app: ASGIApp,
        store: ControlStore,
        *,
        enabled: bool = True,
        sessions: Sessions | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.enabled = enabled
        self.sessions = sessions
        self._touched: dict[str, float] = {}  # token name -> monotonic time last written
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        if not self.enabled and not is_loopback_host(_header(scope, b"host") or ""):
            # DNS rebinding: a page of another site, its name re-pointed at 127.0.0.1, would
            # reach this server with its own name in Host, and act as anyone here may.
            host = repr((_header(scope, b"host") or "")[:100])
            await _deny(send, 421, f"{NOT_LOOPBACK}; this request was addressed to {host}")
            return
        if scope["type"] == "http" and scope["path"].endswith("\n"):
            # A route pattern's $ matches before a final newline: /deployments%0A would reach
            # the dashboard's route past the dashboard's check (whose patterns are DOTALL).
            await _deny(send, 400, "the path ends with a newline")
            return
        if scope["type"] == "http" and _is_open(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await _deny(send, 403, "websockets are not served")
            return
        if not self.enabled:
            scope.setdefault("state", {})["actor"] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        if DASHBOARD_PATHS.fullmatch(scope["path"]):
            await self._dashboard(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            await _deny(send, 401, "a bearer token is required: Authorization: Bearer <token>")
            return
        token_hash = hash_token(token)
        row = await to_thread.run_sync(self.store.find_token, token_hash)
        if row is None:
            await _deny(send, 401, "invalid or revoked token")
            return
        if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
            expired = row.expires_at.isoformat(timespec="seconds")
            await _deny(send, 401, f'token "{row.name}" expired at {expired}')
            return
        access = TokenAccess.of(row.access, row.read_only)
        needed = required_access(scope["method"], scope["path"])
        if not access.allows(needed):
            await _deny(send, 403, f'token "{row.name}" is {access}: this needs {needed}')
            return
        await self._touch(row.name)
        state = scope.setdefault("state", {})
        state.update(actor=Actor(row.name, Origin.API, _client(scope)), token_hash=token_hash)
        await self.app(scope, receive, send)

    async def _dashboard(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A dashboard request: on with its session's actor and access, or to the login
        page (and back here after it) without a session that its token still backs."""
        session_id = cookie_session_id(scope)
        session = None if self.sessions is None else self.sessions.find(session_id)
        row = None
        if session is not None:
            row = await to_thread.run_sync(self.store.find_token, session.token_hash)
        if row is None or not usable(row):  # (None twice: for the type checker)
            await _to_login(scope, send)
            return
        assert session is not None
        access = TokenAccess.of(row.access, row.read_only)
        needed = dashboard_access(scope["method"], scope["path"])
        if not access.allows(needed):
            await _deny(send, 403, f'token "{row.name}" is {access}: this needs {needed}')
            return
        state = scope.setdefault("state", {})
        actor = Actor(row.name, Origin.DASHBOARD, _client(scope))
        state.update(actor=actor, session=session, session_id=session_id, access=access)
        await self._touch(row.name)
        await self.app(scope, receive, send)

    async def _touch(self, name: str) -> None:
        """Record the token's use, at most once a minute per token (one write, not one per
        request)."""
        now = time.monotonic()
        with self._lock:
            last = self._touched.get(name)
            if last is not None and now - last < TOUCH_EVERY:
                return
            self._touched[name] = now
        try:
            await to_thread.run_sync(self.store.touch_tokens, {name: datetime.now(UTC)})
        except Exception:  # bookkeeping: a busy store must not fail the request itself
            logger.warning("could not record the use of token %r", name, exc_info=True)


def usable(row: TokenScope | None) -> bool:
    """Whether a token found (or not) in the store still works: there, and not expired."""
    return row is not None and (row.expires_at is None or row.expires_at > datetime.now(UTC))


def required_access(method: str, path: str) -> TokenAccess:
    """What a request needs of its token: read for GET and HEAD, operate for an operator's
    controls (``OPERATE_PATHS``), admin for anything else."""
    if method in READ_METHODS:
        return TokenAccess.READ
    if method == "POST" and OPERATE_PATHS.fullmatch(path):
        return TokenAccess.OPERATE
    if method in ("POST", "DELETE") and OPERATE_WINDOWS.fullmatch(path):
        return TokenAccess.OPERATE
    if method == "DELETE" and OPERATE_DELETES.fullmatch(path):
        return TokenAccess.OPERATE
    return TokenAccess.ADMIN


def dashboard_access(method: str, path: str) -> TokenAccess:
    """What a dashboard request needs of its session's token: read for pages and logging
    out, operate for an operator's actions (``OPERATE_ACTIONS``), admin for anything else."""
    if method in READ_METHODS or path == "/logout":
        return TokenAccess.READ
    if method == "POST" and OPERATE_ACTIONS.fullmatch(path):
        return TokenAccess.OPERATE
    return TokenAccess.ADMIN


def is_dashboard_path(path: str) -> bool:
    """Whether ``path`` is the dashboard's (a page, an action, the login page): where a
    browser shows the answer, so an error is a page rather than JSON."""
    return path == LOGIN_PATH or DASHBOARD_PATHS.fullmatch(path) is not None


def _client(scope: Scope) -> str | None:
    """The client's address as the server saw it (a proxy's, behind one)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def _is_open(method: str, path: str) -> bool:
    if path in (OPEN_PATH, LOGIN_PATH):
        return True
    return path.startswith(STATIC_PREFIX) and method in READ_METHODS


def cookie_session_id(scope: Scope) -> str | None:
    """The session id of the request's cookie: the first ``gnomon_session`` it sends."""
    for key, value in scope["headers"]:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, content = part.strip().partition("=")
                if name == COOKIE:
                    return content
    return None


async def _to_login(scope: Scope, send: Send) -> None:
    """303 to the login page, which comes back to this page (a GET's) after it."""
    target = LOGIN_PATH
    if scope["method"] in READ_METHODS:
        asked = scope["path"]
        if scope.get("query_string"):
            asked += "?" + scope["query_string"].decode("latin-1")
        target += "?" + urlencode({"next": asked})
    headers = [(b"location", target.encode()), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, name: bytes) -> str | None:
    """The request's first ``name`` header (lower case), as text."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _bearer(scope: Scope) -> str | None:
    scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token and len(token) <= 1000:
        return token
    return None


async def _deny(send: Send, status: int, message: str) -> None:
    challenge = ((b"www-authenticate", b'Bearer realm="gnomon"'),) if status == 401 else ()
    await send_error(send, status, message, challenge)
