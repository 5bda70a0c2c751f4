"""The dashboard's pages, served beside the API: the login page and the deployments page,
with pause and resume.

Pages are Jinja2 templates shipped in the package (``templates/``), autoescaped: a name, a
tag, a reason or an error from the store shows as text, never as markup. Forms post back
with the session's CSRF token; a post without it, or with another session's, is refused
(403) before anything is done. No script runs inline (the Content-Security-Policy forbids
it); the static files are in ``static/``.
"""

from __future__ import annotations

import functools
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from gnomon.control import Operations, UnknownName, deployment_view, hash_token
from gnomon.exceptions import InvalidInput
from gnomon.http._auth import LOGIN_PATH, cookie_session_id, request_actor
from gnomon.http._session import Sessions, clearing_cookie, session_cookie
from gnomon.store import TokenAccess

if TYPE_CHECKING:
    from jinja2 import Environment

HERE = Path(__file__).parent
RECENT_RUNS = 20


def add_dashboard(app: FastAPI, sessions: Sessions) -> None:
    """The dashboard's routes and static files on ``app``."""
    templates = _environment()
    app.state.sessions = sessions
    app.state.anonymous_csrf = secrets.token_urlsafe(32)  # api_auth = false: one for all
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(
        request: Request, template: str, status: int = 200, *, public: bool = False, **values: Any
    ) -> Response:
        """``template`` rendered; a page behind the login gets its session's CSRF token
        and access (a ``public`` one, the login page, has neither)."""
        if not public:
            values.update(csrf=_csrf(request), access=_access(request))
        html = templates.get_template(template).render(**values)
        # Not kept: after logging out, Back must not show the page again.
        return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/deployments") -> Response:
        return page(request, "login.html", public=True, next=_safe_next(next), error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        _same_site_only(request)
        form = await _form(request)
        token = str(form.get("token") or "").strip()
        target = _safe_next(str(form.get("next") or "/deployments"))
        store = request.app.state.store
        found = store.find_token if 0 < len(token) <= 1000 else lambda _hash: None
        row = await to_thread.run_sync(found, hash_token(token))
        now = datetime.now(UTC)
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            error = "That token is not valid (unknown, revoked or expired)."
            return page(request, "login.html", 401, public=True, next=target, error=error)
        return _logged_in(request, sessions, row, hash_token(token), target)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        await _checked_form(request)
        sessions.close(request.scope.get("state", {}).get("session_id"))  # the one checked
        response = RedirectResponse(LOGIN_PATH, status_code=303)
        response.headers.append("set-cookie", clearing_cookie(secure=request.url.scheme == "https"))
        return response

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/deployments", status_code=303)

    @app.get("/deployments", include_in_schema=False)
    def deployments_page(request: Request, q: str = "", tag: str = "", said: str = "") -> Response:
        store = request.app.state.store
        rows = store.read_deployments()
        if q:
            rows = [row for row in rows if q.lower() in row.name.lower()]
        if tag:
            rows = [row for row in rows if tag in (row.tags or [])]
        recent = store.read_recent_states([row.name for row in rows], RECENT_RUNS)
        now = datetime.now(UTC)
        views = [deployment_view(row, now, recent.get(row.name, [])) for row in rows]
        return page(request, "deployments.html", deployments=views, q=q, tag=tag, said=said)

    @app.post("/actions/deployments/{name}/pause", include_in_schema=False)
    async def pause_action(request: Request, name: str) -> Response:
        form = await _checked_form(request)
        reason = str(form.get("reason") or "").strip()
        if not reason:
            return _back(request, f"Pausing {name} needs a reason.")
        action = functools.partial(_act, request, lambda ops: ops.pause([name], reason))
        return await to_thread.run_sync(action, f"Paused {name}.")

    @app.post("/actions/deployments/{name}/resume", include_in_schema=False)
    async def resume_action(request: Request, name: str) -> Response:
        await _checked_form(request)
        action = functools.partial(_act, request, lambda ops: ops.resume([name]))
        return await to_thread.run_sync(action, f"Resumed {name}.")


def _logged_in(
    request: Request, sessions: Sessions, row: Any, token_hash: str, target: str
) -> Response:
    """A new session for the token of ``row`` (the browser's previous one closed), its
    cookie set, and on to ``target``."""
    sessions.close(cookie_session_id(request.scope))
    session_id = sessions.open(row.name, token_hash, row.expires_at)
    session = sessions.find(session_id)
    assert session is not None
    response = RedirectResponse(target, status_code=303)
    secure = request.url.scheme == "https"
    response.headers.append(
        "set-cookie", session_cookie(session_id, session.expires_at, secure=secure)
    )
    return response


def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _csrf(request: Request) -> str:
    """The CSRF token of the request's session; with api_auth = false, the server's one."""
    session = request.scope.get("state", {}).get("session")
    if session is not None:
        return str(session.csrf)
    return str(_unauthenticated(request).anonymous_csrf)


def _access(request: Request) -> str:
    """What the request's session may do; with api_auth = false, everything."""
    access = request.scope.get("state", {}).get("access")
    if access is not None:
        return str(access)
    _unauthenticated(request)
    return str(TokenAccess.ADMIN)


def _unauthenticated(request: Request) -> Any:
    """The app's state, if it serves without authentication (loopback only): there, and
    only there, a dashboard request has no session. Anywhere else that means a path reached
    the dashboard past its check: refused."""
    from gnomon.http._params import ApiError

    state = request.app.state
    if state.auth_enabled:
        raise ApiError(403, "no dashboard session")
    return state


def _same_site_only(request: Request) -> None:
    """Refuse a login posted from another site (login CSRF: the victim's browser would
    carry the attacker's session)."""
    from gnomon.http._params import ApiError

    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise ApiError(403, "a login must come from this dashboard's own page")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise ApiError(403, "a login must come from this dashboard's own page")


async def _form(request: Request) -> dict[str, str]:
    """A posted HTML form (``application/x-www-form-urlencoded``, what the pages' forms
    send) as its fields; the first value of a field given twice."""
    from gnomon.http._params import ApiError

    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ApiError(415, "the dashboard takes its own forms only")
    try:
        text = (await request.body()).decode("utf-8")
        fields = parse_qsl(text, keep_blank_values=True, max_num_fields=20, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "the form could not be read") from None
    form: dict[str, str] = {}
    for key, value in fields:
        form.setdefault(key, value)
    return form


async def _checked_form(request: Request) -> dict[str, str]:
    """The posted form, if it carries this session's CSRF token; else 403, nothing done."""
    from gnomon.http._params import ApiError

    form = await _form(request)
    given = form.get("csrf")
    expected = _csrf(request).encode()
    if given is None or not secrets.compare_digest(given.encode("utf-8", "replace"), expected):
        raise ApiError(403, "the form's CSRF token is missing or not this session's")
    return form


def _act(request: Request, action: Any, done: str) -> Response:
    state = request.app.state
    ops = Operations(state.store, request_actor(request.scope), state.nudge)
    try:
        action(ops)
    except (UnknownName, InvalidInput) as error:
        return _back(request, str(error))
    return _back(request, done)


def _back(request: Request, message: str) -> Response:
    """Back to the page the form was on, with a message to show."""
    from urllib.parse import urlencode

    referer = request.headers.get("referer", "")
    path = urlsplit(referer).path if referer else ""
    target = _safe_next(path or "/deployments")
    return RedirectResponse(f"{target}?{urlencode({'said': message})}", status_code=303)


def _safe_next(target: str) -> str:
    """A page of this dashboard to go to: a path on this server, never another site's."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/deployments"
    if "\\" in target or any(ord(char) < 32 for char in target):
        return "/deployments"
    return target
