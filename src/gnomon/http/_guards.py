"""ASGI middleware around the whole API: HEAD answered wherever GET is, and a limit on the
size of request bodies.

Both are middleware rather than route code for the reason authentication is (``_auth``):
they hold for every route, including routes added later, without anyone remembering to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY = 1_000_000  # bytes: far more than any request the API takes needs
# Refused before its body is read: the unread body must not be taken for the next request.
_CLOSE = ((b"connection", b"close"),)


class HeadAsGet:
    """Answers ``HEAD`` as the same ``GET`` would, without the body (RFC 9110 9.3.2).

    The request goes on as a GET, so every GET route (and its authentication) answers HEAD
    with the GET's status and headers; the body is dropped and the response ends at its
    first body message, which also ends a log stream at once.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if ended:
                return
            if message["type"] == "http.response.body":
                ended = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class BodyLimit:
    """Refuses a request body larger than ``max_bytes`` with 413, before a route sees it.

    A declared ``Content-Length`` over the limit is refused without reading the body; a
    body sent without one (chunked) is counted as it arrives, and reading past the limit
    raises the 413 the app's error handler answers.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await send_error(send, 400, "Content-Length must be a number of bytes", _CLOSE)
            return
        if declared is not None and declared > self.max_bytes:
            await send_error(send, 413, self._message(), _CLOSE)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes:,} bytes"


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None if not declared, -1 if it is not a number."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and text.isascii() else -1
    return None


async def send_error(
    send: Send, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer ``{"error": message}`` with ``status`` from middleware, before the app (whose
    own errors have the same body)."""
    body = json.dumps({"error": message}).encode()
    start: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


# Every response of the app: no script but its own files, never inside a frame. Images may
# come from elsewhere: a run's image artifacts are URLs of images anywhere (as Prefect's),
# and the run page shows them from http and https URLs only (``_artifacts``).
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self';"
        b" img-src 'self' data: https: http:;"
        b" form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """ASGI middleware, outermost: every response, a refusal included, carries
    ``SECURITY_HEADERS``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {key.lower() for key, _ in message.get("headers", [])}
                extra = [(key, value) for key, value in SECURITY_HEADERS if key not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
