"""What every dashboard page is built with: rendering a template, reading a posted form
with its CSRF token, carrying out an operation and going back with a message.

Pages are Jinja2 templates shipped in the package (``templates/``), autoescaped: a name, a
tag, a reason or an error from the store shows as text, never as markup. Forms post back
with the session's CSRF token; a post without it, or with another session's, is refused
(403) before anything is done. No script runs inline (the Content-Security-Policy forbids
it): the one script, ``static/dashboard.js``, shows times in the chosen zone and keeps the
live parts of a page current.

After an action, the page it goes back to shows a message (``?said=...``), signed for the
session (``&sig=...``): a page shows only a message the server wrote, never text a link
put there.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gnomon.control import Operations, UnknownName
from gnomon.exceptions import InvalidInput
from gnomon.http._auth import request_actor
from gnomon.http._params import ApiError
from gnomon.states import StateName
from gnomon.store import TokenAccess

if TYPE_CHECKING:
    from jinja2 import Environment

HERE = Path(__file__).parent
HOME = "/"
# Each state's mark (the ``mark`` macro): a symbol of its own, so that no two states look
# alike without their colour (a first letter would be C for Completed, Crashed and
# Cancelled). U+FE0E asks for the symbol as text, not as a coloured emoji.
STATE_MARKS = {
    StateName.COMPLETED: "\u2713",  # ✓
    StateName.CACHED: "\u2261",  # ≡
    StateName.FAILED: "\u2717",  # ✗
    StateName.TIMED_OUT: "\u25d5",  # ◕ (a clock is missing from common fonts)
    StateName.CRASHED: "\u26a0\ufe0e",  # ⚠
    StateName.CANCELLED: "\u2298",  # ⊘
    StateName.CANCELLING: "\u2296",  # ⊖
    StateName.SKIPPED: "\u21b7",  # ↷
    StateName.MISSED: "?",
    StateName.RUNNING: "\u25b6\ufe0e",  # ▶
    StateName.RETRYING: "\u27f3",  # ⟳
    StateName.AWAITING_RETRY: "\u21bb",  # ↻
    StateName.SCHEDULED: "\u25f7",  # ◷
    StateName.PENDING: "\u22ef",  # ⋯
    StateName.NOT_READY: "\u25cc",  # ◌
    StateName.PAUSED: "\u2016",  # ‖
    StateName.SUSPENDED: "\u2193",  # ↓ (it left its worker)
    StateName.RESUMING: "\u2191",  # ↑
    StateName.AWAITING_POOL: "\u29d6",  # ⧖ (waiting for a slot of its pool)
}
SAID, SIGNATURE = "said", "sig"  # the query fields of a page's message (back()'s)
MESSAGE_FIELDS = (SAID, SIGNATURE)


def page(
    request: Request, template: str, status: int = 200, *, public: bool = False, **values: Any
) -> Response:
    """``template`` rendered; a page behind the login gets its session's CSRF token and
    access (a ``public`` one, the login page, has neither)."""
    if not public:
        values.update(csrf=csrf(request), access=access(request), path=request.url.path)
        values.update(said=said(request))
    html = environment().get_template(template).render(**values)
    # Not kept: after logging out, Back must not show the page again.
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


def not_found(request: Request, what: str) -> Response:
    """The dashboard's 404 page, saying what was not found."""
    return page(request, "missing.html", 404, what=what)


def error_page(request: Request, status: int, message: str) -> Response:
    """The dashboard's answer to a request it refused (``status`` kept): what went wrong, and
    a link back to the page the request came from (a stale tab's form: to that page, now
    with this session's token)."""
    # Behind the login only with a session (or none needed): its header and CSRF token.
    has_session = request.scope.get("state", {}).get("session") is not None
    signed_in = has_session or not request.app.state.auth_enabled
    values = {"title": HTTPStatus(status).phrase, "message": sentence(message)}
    values["back"] = came_from(request) or HOME
    return page(request, "error.html", status, public=not signed_in, **values)


@functools.cache
def environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,  # a misspelt value fails the page's test, not silently
    )
    env.filters["utc_text"] = utc_text
    env.filters["duration"] = duration_text
    env.filters["value_text"] = value_text
    env.globals["state_marks"] = STATE_MARKS
    return env


def value_text(value: Any, indent: int | None = None) -> str:
    """A config, parameter or detail value as text to show: a string as itself, anything
    else as JSON (``indent``: spread over lines), escaped as any text (Jinja's ``tojson``
    writes ``<`` as ``\\u003c``, which would not show what was given)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=False, default=str)


def duration_text(seconds: float | None) -> str:
    """A duration as an operator reads it, the same on every page: 850 ms, 12.3 s,
    4 min 5 s, 2 h 7 min; a dash for none."""
    if seconds is None:
        return "\u2013"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def utc_text(value: str | datetime) -> str:
    """A time as the page shows it before (or without) its script: UTC, to the second."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def csrf(request: Request) -> str:
    """The CSRF token of the request's session; with api_auth = false, the server's one."""
    session = request.scope.get("state", {}).get("session")
    if session is not None:
        return str(session.csrf)
    return str(_unauthenticated(request).anonymous_csrf)


def access(request: Request) -> str:
    """What the request's session may do; with api_auth = false, everything."""
    given = request.scope.get("state", {}).get("access")
    if given is not None:
        return str(given)
    _unauthenticated(request)
    return str(TokenAccess.ADMIN)


def _unauthenticated(request: Request) -> Any:
    """The app's state, if it serves without authentication (loopback only): there, and
    only there, a dashboard request has no session. Anywhere else that means a path reached
    the dashboard past its check: refused."""
    state = request.app.state
    if state.auth_enabled:
        raise ApiError(403, "no dashboard session")
    return state


def same_site_only(request: Request) -> None:
    """Refuse a login posted from another site (login CSRF: the victim's browser would
    carry the attacker's session)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise ApiError(403, "a login must come from this dashboard's own page")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise ApiError(403, "a login must come from this dashboard's own page")


async def read_form(request: Request) -> dict[str, str]:
    """A posted HTML form (``application/x-www-form-urlencoded``, what the pages' forms
    send) as its fields; the first value of a field given twice."""
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


async def checked_form(request: Request) -> dict[str, str]:
    """The posted form, if it carries this session's CSRF token; else 403, nothing done."""
    form = await read_form(request)
    given = form.get("csrf")
    expected = csrf(request).encode()
    if given is None or not secrets.compare_digest(given.encode("utf-8", "replace"), expected):
        raise ApiError(
            403,
            "the form's CSRF token is missing or not this session's: the page may be from"
            " before you logged in again; reload it and try again",
        )
    return form


def operations(request: Request) -> Operations:
    """The operations, acting as the request's session (audited with origin dashboard)."""
    state = request.app.state
    return Operations(state.store, request_actor(request.scope), state.nudge)


def act(
    request: Request,
    action: Callable[[Operations], Any],
    done: str | Callable[[Any], str],
    to: str | Callable[[Any], str] | None = None,
    *,
    home: str,
) -> Response:
    """Carry out ``action`` and go back (or on ``to``) saying ``done``; either may be made
    of the action's result (``lambda new: f"/runs/{new['id']}"``). A refusal (an unknown
    name, bad input, a conflict such as cancelling a finished run) goes back saying why,
    nothing done. ``home`` is the page the action belongs to (see ``back``)."""
    from gnomon.control import Conflict

    try:
        result = action(operations(request))
    except (UnknownName, InvalidInput, Conflict) as error:
        return back(request, sentence(str(error)), home)
    message = done(result) if callable(done) else done
    return back(request, message, home, to(result) if callable(to) else to)


def sentence(text: str) -> str:
    """An error's message as a sentence to show: ``no deployment named "x"`` reads
    ``No deployment named "x".``"""
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else f"{text}."


def came_from(request: Request) -> str | None:
    """The page a form was posted from (its ``Referer``), on this server, its query (the
    page's filters) kept but for a message shown on it; None without one."""
    referer = request.headers.get("referer", "")
    parts = urlsplit(referer)
    if not parts.path:
        return None
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key not in MESSAGE_FIELDS
    ]
    target = safe_next(parts.path + (f"?{urlencode(query)}" if query else ""))
    return None if target == HOME else target


def back(request: Request, message: str, home: str, to: str | None = None) -> Response:
    """On to ``to`` if given, else back to the page the form was on (``came_from``: its
    filters kept), else (no Referer) to ``home``, the page the action belongs to; with a
    message to show there."""
    target = safe_next(to) if to else came_from(request) or home
    query = urlencode({SAID: message, SIGNATURE: _signature(request, message)})
    return RedirectResponse(f"{target}{'&' if '?' in target else '?'}{query}", status_code=303)


def said(request: Request) -> str | None:
    """The message ``back()`` left for this page, if the server wrote it for this session:
    a link to a page with any other text in ``said`` (``?said=Your session expired, paste
    your token at ...``) shows nothing."""
    message = request.query_params.get(SAID)
    given = request.query_params.get(SIGNATURE, "")
    if not message:
        return None
    expected = _signature(request, message).encode()
    return message if hmac.compare_digest(given.encode("utf-8", "replace"), expected) else None


def _signature(request: Request, message: str) -> str:
    """The signature of ``message`` for the request's session: an HMAC under the app's
    own random key, of the message and the session's CSRF token (so a message one user's
    action produced shows in no one else's session)."""
    text = f"{csrf(request)}\0{message}".encode()
    return hmac.new(request.app.state.message_key, text, hashlib.sha256).hexdigest()[:32]


def safe_next(target: str) -> str:
    """A page of this dashboard to go to: a path on this server, never another site's."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return HOME
    if "\\" in target or any(ord(char) < 32 for char in target):
        return HOME
    return target
