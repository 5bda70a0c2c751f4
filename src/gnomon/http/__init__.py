"""The HTTP side: the FastAPI app (bearer-token auth, the ``/api/v1`` routes over
``gnomon.control``'s operations and views), its server, and ``serve_api``, the service the
command that starts the daemon runs beside it.

This is what other packages may use; the modules behind it are private. Nothing is imported
until a name is asked for: FastAPI costs the command line ~150 ms it rarely needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnomon._lazy import lazy_names

if TYPE_CHECKING:
    from gnomon.http._http import create_app
    from gnomon.http._server import ApiServer, ApiServerError, UnsafeBind
    from gnomon.http._service import serve_api

__all__ = ["ApiServer", "ApiServerError", "UnsafeBind", "create_app", "serve_api"]

_WHERE = {
    "ApiServer": "gnomon.http._server",
    "ApiServerError": "gnomon.http._server",
    "UnsafeBind": "gnomon.http._server",
    "create_app": "gnomon.http._http",
    "serve_api": "gnomon.http._service",
}


__getattr__, __dir__ = lazy_names(__name__, _WHERE)
