"""The dashboard, served beside the API: the login page, logging out, and each page's
routes (one module per page: ``_page_*``), on the building blocks of ``_dashboard``."""

from __future__ import annotations

import secrets
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from gnomon.control import hash_token
from gnomon.http import (
    _page_audit,
    _page_backfills,
    _page_deployment,
    _page_deployments,
    _page_overview,
    _page_run,
    _page_runs,
    _page_variables,
)
from gnomon.http._auth import LOGIN_PATH, cookie_session_id, usable
from gnomon.http._dashboard import (
    HERE,
    HOME,
    checked_form,
    page,
    read_form,
    safe_next,
    same_site_only,
)
from gnomon.http._session import Sessions, clearing_cookie, session_cookie

PAGES = (
    _page_overview,
    _page_deployments,
    _page_deployment,
    _page_backfills,
    _page_runs,
    _page_run,
    _page_audit,
    _page_variables,
)


def add_dashboard(app: FastAPI, sessions: Sessions) -> None:
    """The dashboard's routes and static files on ``app``."""
    app.state.sessions = sessions
    app.state.anonymous_csrf = secrets.token_urlsafe(32)  # api_auth = false: one for all
    app.state.message_key = secrets.token_bytes(32)  # signs the messages of back()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = HOME) -> Response:
        return page(request, "login.html", public=True, next=safe_next(next), error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        same_site_only(request)
        form = await read_form(request)
        token = str(form.get("token") or "").strip()
        target = safe_next(str(form.get("next") or HOME))
        store = request.app.state.store
        found = store.find_token if 0 < len(token) <= 1000 else lambda _hash: None
        row = await to_thread.run_sync(found, hash_token(token))
        if row is None or not usable(row):  # (None twice: for the type checker)
            error = "That token is not valid (unknown, revoked or expired)."
            return page(request, "login.html", 401, public=True, next=target, error=error)
        return _logged_in(request, sessions, row, hash_token(token), target)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        await checked_form(request)
        sessions.close(request.scope.get("state", {}).get("session_id"))  # the one checked
        response = RedirectResponse(LOGIN_PATH, status_code=303)
        response.headers.append("set-cookie", clearing_cookie(secure=request.url.scheme == "https"))
        return response

    for module in PAGES:
        module.add_routes(app)


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
