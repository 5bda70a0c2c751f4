"""Dashboard sessions: a login with an API token opens one, a cookie carries it.

The cookie holds a random session id (HttpOnly, SameSite=Strict, Secure over https); the
server keeps, per id's hash, which token opened it, a CSRF token for its forms, and when it
ends: 12 hours after login, or earlier when its token expires. Every request checks the
token again (``TokenAuth``), so revoking a token ends its sessions at once. Sessions live in
the daemon's memory: a restart asks everyone to log in again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

COOKIE = "gnomon_session"
SESSION_LIFE = timedelta(hours=12)
MOST_SESSIONS = 10_000  # beyond, the oldest go: a login loop cannot grow memory for ever
# Per token: beyond, that token's oldest go, so one token's logins cannot end others'.
MOST_PER_TOKEN = 50


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser: the token that opened it, its forms' CSRF token, its end."""

    token_name: str
    token_hash: str
    csrf: str
    expires_at: datetime

    def csrf_matches(self, given: str | None) -> bool:
        """Whether ``given`` is this session's CSRF token (compared in constant time, as
        bytes: any text may be posted)."""
        if given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.csrf.encode())


class Sessions:
    """The open sessions, by the SHA-256 of their id (the id itself is only in cookies)."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, token_name: str, token_hash: str, token_expires: datetime | None) -> str:
        """A new session for this token; its id, for the cookie."""
        now = datetime.now(UTC)
        ends = now + SESSION_LIFE
        if token_expires is not None:
            ends = min(ends, token_expires)
        session_id = secrets.token_urlsafe(32)
        session = Session(token_name, token_hash, secrets.token_urlsafe(32), ends)
        with self._lock:
            self._drop_ended(now)
            same = [key for key, other in self._sessions.items() if other.token_name == token_name]
            for key in same[: max(0, len(same) - MOST_PER_TOKEN + 1)]:
                del self._sessions[key]  # this token's oldest
            while len(self._sessions) >= MOST_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[_key(session_id)] = session
        return session_id

    def find(self, session_id: str | None) -> Session | None:
        """The open session with this id, or None (unknown, or ended)."""
        if not session_id or len(session_id) > 100:
            return None
        with self._lock:
            session = self._sessions.get(_key(session_id))
            if session is not None and session.expires_at <= datetime.now(UTC):
                del self._sessions[_key(session_id)]
                return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)

    def _drop_ended(self, now: datetime) -> None:
        ended = [key for key, session in self._sessions.items() if session.expires_at <= now]
        for key in ended:
            del self._sessions[key]


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def session_cookie(session_id: str, expires_at: datetime, *, secure: bool) -> str:
    """The Set-Cookie value that opens a session in the browser."""
    seconds = max(0, int((expires_at - datetime.now(UTC)).total_seconds()))
    cookie = f"{COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={seconds}"
    return cookie + "; Secure" if secure else cookie


def clearing_cookie(*, secure: bool) -> str:
    cookie = f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    return cookie + "; Secure" if secure else cookie
