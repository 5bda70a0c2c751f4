"""Log lines followed as server-sent events, for the API (``/api/v1/logs/stream``) and the
run page (``/runs/<id>/logs/stream``).

A stream lasts as long as what allowed it: it ends when its session ends (logout,
expiry) or its token is revoked or expires, checked before any line is sent and every
``RECHECK`` seconds, since a check made once at the start would let a revoked reader
watch on for as long as it stays connected. A run's stream ends, with an ``end`` event
(the page's script then stops reconnecting), once the run is over and its last lines are
sent. Each token may hold ``MAX_STREAMS`` streams at once: each polls the store several
times a second.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

import anyio
from anyio import to_thread
from fastapi import Request

from gnomon.control import log_view
from gnomon.http._auth import usable
from gnomon.http._params import ApiError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gnomon.store import ControlStore, LogQuery

POLL = 0.25  # seconds between the stream's polls: a new line shows within 1 s
BATCH = 500
HEARTBEAT = 15.0  # seconds: an idle stream sends a comment so dead peers are noticed
RECHECK = 2.0  # seconds between checks that the stream's session or token still holds
MAX_STREAMS = 20  # open streams per token (a browser tab holds one per run page)


def still_allowed(request: Request) -> Callable[[], bool]:
    """Whether the request's session (or bearer token) is still good: its session open and
    its token neither revoked nor expired. Without authentication, always."""
    state = request.scope.get("state", {})
    store = request.app.state.store
    session_id = state.get("session_id")
    sessions = request.app.state.sessions
    token_hash = state.get("session").token_hash if "session" in state else state.get("token_hash")
    if token_hash is None:
        return lambda: True

    def check() -> bool:
        if session_id is not None and sessions.find(session_id) is None:
            return False
        return usable(store.find_token(token_hash))

    return check


class StreamSlots:
    """How many streams each token has open, at most ``limit``."""

    def __init__(self, limit: int = MAX_STREAMS) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def check(self, holder: str) -> None:
        """Refuse (429) one more stream for ``holder`` if it holds ``limit``."""
        with self._lock:
            if self._open.get(holder, 0) >= self.limit:
                raise ApiError(429, f"{holder} already follows {self.limit} log streams")

    @contextmanager
    def hold(self, holder: str) -> Iterator[None]:
        with self._lock:
            self._open[holder] = self._open.get(holder, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._open[holder] -= 1
                if not self._open[holder]:
                    del self._open[holder]


def log_events(
    request: Request,
    store: ControlStore,
    query: LogQuery,
    finished: Callable[[], bool] | None = None,
) -> AsyncIterator[str]:
    """The events of a stream of the log lines matching ``query`` after its cursor, as they
    are written: until the server stops, the client leaves, the request's session or token
    ends, or (with ``finished``) the run is over and its last lines are sent. Raises 429
    (before anything is sent) if the requester already holds ``MAX_STREAMS``."""
    state = request.scope.get("state", {})
    actor = state.get("actor")
    holder = actor.name if actor is not None else "anonymous"
    slots: StreamSlots = request.app.state.streams
    slots.check(holder)  # refused here, while the response can still be a 429
    return _events(
        store,
        query,
        request.app.state.closing,
        still_allowed(request),
        finished,
        slots.hold(holder),
    )


async def _events(
    store: ControlStore,
    query: LogQuery,
    closing: threading.Event,
    allowed: Callable[[], bool],
    finished: Callable[[], bool] | None,
    held: AbstractContextManager[None],
) -> AsyncIterator[str]:
    with held:
        yield ": following\n\n"  # headers and a first byte now, so clients know it is open
        idle = 0.0
        checked = time.monotonic()
        over = False
        while not closing.is_set():
            batch = await to_thread.run_sync(store.search_logs, query, BATCH, False)
            due = time.monotonic() - checked >= RECHECK
            # Checked before any line is sent, not only now and then: no line written
            # after a logout or a revocation reaches the stream.
            if batch or due:
                checked = time.monotonic()
                if not await to_thread.run_sync(allowed):
                    yield "event: end\ndata: {}\n\n"
                    return
            for row in batch:
                data = json.dumps(log_view(row), default=str)
                yield f"id: {row.id}\nevent: log\ndata: {data}\n\n"
            if batch:
                query = dataclasses.replace(query, after_id=batch[-1].id)
                idle = 0.0
                if len(batch) == BATCH:
                    continue
            if over:  # the run was over before this last read: nothing more will come
                yield "event: end\ndata: {}\n\n"
                return
            if due and finished is not None:
                over = await to_thread.run_sync(finished)
                if over:
                    continue  # one more read for the lines written before it ended
            if not batch and idle >= HEARTBEAT:
                yield ": keep-alive\n\n"
                idle = 0.0
            await anyio.sleep(POLL)
            idle += POLL
