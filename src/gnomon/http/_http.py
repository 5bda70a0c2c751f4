"""The HTTP API application: ``create_app`` builds it around a store.

Every route is a thin wrapper over ``Operations`` and ``_views``, the same ones the CLI
calls, so ``gnomon runs show X --json`` and ``GET /api/v1/runs/X`` print the same thing.
Authentication is the ``TokenAuth`` middleware around the whole app (see ``_auth``). Every
error is JSON ``{"error": ..., "field": ...}``; no input gets a 500.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from gnomon._version import __version__
from gnomon.control import Conflict, InvalidParameters, UnknownName
from gnomon.exceptions import InvalidInput
from gnomon.http._auth import TokenAuth, is_dashboard_path
from gnomon.http._backfill_routes import router as backfill_router
from gnomon.http._dashboard import error_page
from gnomon.http._guards import DEFAULT_MAX_BODY, BodyLimit, HeadAsGet, SecurityHeaders
from gnomon.http._maintenance_routes import router as maintenance_router
from gnomon.http._pages import add_dashboard
from gnomon.http._params import ApiError
from gnomon.http._routes import router
from gnomon.http._schemas import ErrorBody, Health
from gnomon.http._session import Sessions
from gnomon.http._streams import StreamSlots
from gnomon.http._variable_routes import router as variable_router

if TYPE_CHECKING:
    from gnomon.daemon import HealthStatus
    from gnomon.store import ControlStore

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_app(
    store: ControlStore,
    *,
    nudge: Callable[[str], None],
    metrics_render: Callable[[], bytes] | None = None,
    auth: bool = True,
    config_path: Path | None = None,
    dashboard_url: str | None = None,
    health: Callable[[], HealthStatus] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
) -> FastAPI:
    """The API over ``store``.

    ``nudge("poll" | "reload")`` tells the daemon to read the store or reload its config now;
    ``metrics_render`` gives ``/metrics``; ``config_path`` is the config ``POST /api/v1/apply``
    applies (never a path from the client); ``dashboard_url`` is where clients reach the API
    (the schema's server); a request body over ``max_body`` bytes is refused (413).
    ``auth=False`` serves every route without a token: callers bind it to loopback only
    (``check_bind``). ``health`` gives ``/healthz`` the daemon's health (without it, a
    server that answers is "ok").
    """
    app = FastAPI(
        title="gnomon",
        version=__version__,
        summary="Control a gnomon daemon: deployments, runs, logs, limits, audit, tokens.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        servers=[{"url": dashboard_url}] if dashboard_url else None,
        generate_unique_id_function=lambda route: route.name,  # operationId: the function
    )
    # /x/ is not /x: no redirects between them (and nothing for auth to reason about).
    app.router.redirect_slashes = False
    app.state.store = store
    app.state.nudge = nudge
    app.state.health = health  # the overview shows it; None: no daemon attached
    app.state.config_path = config_path
    app.state.auth_enabled = auth
    app.state.closing = threading.Event()  # set by ApiServer.stop(): log streams end
    app.state.streams = StreamSlots()
    app.include_router(router)
    app.include_router(variable_router)
    app.include_router(maintenance_router)
    app.include_router(backfill_router)
    _add_service_routes(app, metrics_render, health)
    sessions = Sessions()
    add_dashboard(app, sessions)
    _add_error_handlers(app)
    # The last added is the outermost: HEAD becomes GET before authentication sees it, and
    # only an authenticated request's body is read; every response gets the security headers.
    app.add_middleware(BodyLimit, max_bytes=max_body)
    app.add_middleware(TokenAuth, store=store, enabled=auth, sessions=sessions)
    app.add_middleware(HeadAsGet)
    app.add_middleware(SecurityHeaders)
    return app


def route_table(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, routers included: what the deny-by-default test
    walks, so a route added later is checked without anyone listing it."""
    from fastapi import routing

    # FastAPI 0.12x+ keeps an included router as one entry; this walks into it.
    walk = getattr(routing, "iter_route_contexts", lambda routes: routes)
    return sorted(
        (method, route.path)
        for route in walk(app.routes)
        for method in (getattr(route, "methods", None) or {"GET"})
    )


def _add_service_routes(
    app: FastAPI,
    metrics_render: Callable[[], bytes] | None,
    health: Callable[[], HealthStatus] | None,
) -> None:
    @app.get(
        "/healthz",
        tags=["service"],
        response_model=Health,
        response_model_exclude_none=True,
        responses={503: {"model": Health, "description": "The scheduling loop is stuck."}},
    )
    def healthz() -> Any:
        """The daemon's health, without a token: "ok", "degraded" (200, still scheduling,
        with the reason in general terms) or "stuck" (503), and the age of the loop's last
        tick; nothing else."""
        if health is None:
            return {"status": "ok"}
        status = health()
        body = status.as_json()
        if status.state.value == "stuck":
            return JSONResponse(body, status_code=503)
        return body

    @app.get(
        "/metrics",
        tags=["service"],
        response_class=Response,
        responses={
            200: {"content": {METRICS_TYPE.partition(";")[0]: {"schema": {"type": "string"}}}},
            401: {"model": ErrorBody},
            404: {"model": ErrorBody},
        },
    )
    def metrics() -> Response:
        """The daemon's metrics in the Prometheus text format."""
        if metrics_render is None:
            raise ApiError(404, "this server has no metrics")
        return Response(metrics_render(), media_type=METRICS_TYPE)


def _error(request: Request, status: int, message: str, **extra: Any) -> Response:
    """An error's answer: JSON ``{"error": ..., "field": ...}``, or on a dashboard path (a
    browser's page or form) the dashboard's error page, with the same status."""
    if is_dashboard_path(request.scope["path"]):
        return error_page(request, status, message)
    body = {"error": message, **{key: value for key, value in extra.items() if value is not None}}
    headers = {"WWW-Authenticate": 'Bearer realm="gnomon"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _field(location: tuple[Any, ...] | list[Any]) -> str | None:
    """A validation error's location as a field name: ``names[0]``, ``limit``, ``body``."""
    parts = list(location)
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        return _error(request, error.status, error.message, field=error.field)

    @app.exception_handler(InvalidInput)
    async def invalid(request: Request, error: InvalidInput) -> Response:
        return _error(request, 422, str(error))

    @app.exception_handler(UnknownName)
    async def unknown(request: Request, error: UnknownName) -> Response:
        return _error(request, 404, str(error))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, error: Conflict) -> Response:
        return _error(request, 409, str(error))

    @app.exception_handler(InvalidParameters)
    async def invalid_parameters(request: Request, error: InvalidParameters) -> Response:
        problems = [{"field": p.field, "message": str(p)} for p in error.problems]
        first = error.problems[0]
        return _error(request, 422, str(first), field=first.field, problems=problems)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, error: RequestValidationError) -> Response:
        problems = [
            {
                "field": _field(item.get("loc", ())),
                "message": str(item.get("msg", "invalid")).removeprefix("Value error, "),
            }
            for item in error.errors()
        ]
        first = problems[0] if problems else {"field": None, "message": "invalid request"}
        message = str(first["message"])
        if first["field"]:
            message = f"{first['field']}: {message}"
        return _error(request, 422, message, field=first["field"], problems=problems)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        return _error(request, error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, _exception: Exception) -> Response:
        return _error(request, 500, "internal error; the daemon's log has the details")
