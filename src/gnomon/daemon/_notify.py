"""Failure notifications: JSON webhook POSTs about failed, crashed, timed-out and missed
runs, about recoveries, about deployments that paused themselves after failures
(``pause_after_failures``), and about deadline and freshness breaches (found and cleared,
see ``_deadlines``), to the config's ``[[notify]]`` targets.

Sending never holds up scheduling: ``Notifier.publish`` only appends to a bounded queue per
target (a full queue drops the notification, logged) and each target has its own delivery
thread, so a slow or dead webhook delays nobody but itself. A target's notifications go out
in order, one at a time, so a "recovered" never overtakes the "failed" it answers.

Delivery retries connection errors, timeouts, 5xx and 429 with exponential backoff (1 s,
2 s, 4 s, ... up to ``max_backoff``, and at least a 429's ``Retry-After``) until the target's
``max_attempts``; any other answer outside 2xx is final. Redirects are not followed: the
payload goes to the configured host or nowhere. Every delivery and every failure is logged
on ``gnomon.daemon.notify`` with the target's name, never its URL.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gnomon import __version__
from gnomon._secrets import mask
from gnomon._text import shortened
from gnomon.deployments import NotifyEvent, NotifyTarget
from gnomon.states import STATE_NAMES, StateName, StateType, is_failed
from gnomon.store import BreachKind

if TYPE_CHECKING:
    from gnomon.store.rows import BreachRow

log = logging.getLogger("gnomon.daemon.notify")

_MAX_MESSAGE = 300  # characters of an error message in the one-line text


_EMOJI = {
    NotifyEvent.FAILED: ":red_circle:",
    NotifyEvent.CRASHED: ":boom:",
    NotifyEvent.TIMED_OUT: ":hourglass:",
    NotifyEvent.MISSED: ":warning:",
    NotifyEvent.RECOVERED: ":large_green_circle:",
    NotifyEvent.AUTO_PAUSED: ":double_vertical_bar:",
    NotifyEvent.LATE: ":alarm_clock:",
    NotifyEvent.LATE_CLEARED: ":white_check_mark:",
    NotifyEvent.DEADLINE_MISSED: ":rotating_light:",
    NotifyEvent.DEADLINE_CLEARED: ":white_check_mark:",
    NotifyEvent.TOO_FAST: ":zap:",
    NotifyEvent.TOO_FAST_CLEARED: ":white_check_mark:",
    NotifyEvent.STALE: ":zzz:",
    NotifyEvent.FRESH_AGAIN: ":white_check_mark:",
}
# What an event says after the deployment's name, where its own name would not do.
_WORDS = {
    NotifyEvent.TIMED_OUT: "timed out",
    NotifyEvent.AUTO_PAUSED: "paused itself",
    NotifyEvent.LATE: "is late",
    NotifyEvent.LATE_CLEARED: "is no longer late",
    NotifyEvent.DEADLINE_MISSED: "missed its deadline",
    NotifyEvent.DEADLINE_CLEARED: "deadline breach ended",
    NotifyEvent.TOO_FAST: "ran too fast",
    NotifyEvent.TOO_FAST_CLEARED: "no longer runs too fast",
    NotifyEvent.STALE: "is stale",
    NotifyEvent.FRESH_AGAIN: "is fresh again",
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One event about a run (or a missed fire), before it is addressed to targets."""

    event: NotifyEvent
    deployment: str
    state: str
    run_id: str | None = None
    flow: str | None = None
    scheduled_for: str | None = None  # ISO 8601
    error_type: str | None = None
    error_message: str | None = None
    tags: tuple[str, ...] = ()
    attempt: int | None = None
    duration_ms: int | None = None
    exit_code: int | None = None
    signal: str | None = None
    parameters: Mapping[str, Any] | None = field(default=None, compare=False)
    # A breach's facts (kind, nominal_time, limit_seconds, detected_at, cleared_at, detail),
    # for the events of deadlines and freshness.
    breach: Mapping[str, Any] | None = field(default=None, compare=False)

    def link(self, public_url: str | None) -> str | None:
        """The page of the run, or of the deployment when there is no run, on the API or
        dashboard at ``public_url``; None without one (no API and no ``public_url``)."""
        if public_url is None:
            return None
        base = public_url.rstrip("/")
        if self.run_id is not None:
            return f"{base}/runs/{self.run_id}"
        return f"{base}/deployments/{self.deployment}"

    def text(self, public_url: str | None) -> str:
        """One line for Slack (and whatever reads Slack's format): what, which, why, link."""
        what = _WORDS.get(self.event, self.event.value)
        if self.event is NotifyEvent.MISSED:
            what = f"missed its {self.scheduled_for or 'scheduled'} fire"
        why = self._reason()
        label = f"run {self.run_id[:8]}" if self.run_id else "deployment"
        line = _slack_escape(
            f"{_EMOJI[self.event]} {self.deployment} {what}{': ' + why if why else ''}"
        )
        link = self.link(public_url)
        return line if link is None else f"{line} (<{link}|{label}>)"

    def _reason(self) -> str:
        if self.event is NotifyEvent.RECOVERED:
            return self.state
        if self.event is NotifyEvent.AUTO_PAUSED:
            return self.error_message or ""  # "paused after 3 consecutive failures; ..."
        if self.breach is not None:
            return str(self.breach.get("detail") or "")
        message = " ".join((self.error_message or "").split())  # one line
        message = shortened(message, _MAX_MESSAGE)
        if self.error_type and message:
            return f"{self.error_type}: {message}"
        if self.error_type or message:
            return self.error_type or message
        if self.signal:
            return f"worker killed by {self.signal}"
        if self.exit_code is not None:
            return f"worker exited with code {self.exit_code}"
        return ""

    def payload(self, public_url: str | None) -> dict[str, Any]:
        """The JSON body of the POST."""
        error = None
        if self.error_type or self.error_message:
            error = {"type": self.error_type, "message": self.error_message}
        body = {
            "event": self.event.value,
            "run_id": self.run_id,
            "deployment": self.deployment,
            "flow": self.flow,
            "state": self.state,
            "scheduled_for": self.scheduled_for,
            "error": error,
            "url": self.link(public_url),
            "text": self.text(public_url),
            "tags": list(self.tags),
            "attempt": self.attempt,
            "duration_ms": self.duration_ms,
            "exit_code": self.exit_code,
            "signal": self.signal,
        }
        if self.parameters is not None:
            body["parameters"] = mask(dict(self.parameters))
        if self.breach is not None:
            body["breach"] = dict(self.breach)
        return body


def _slack_escape(text: str) -> str:
    """Slack reads ``<...>`` as links and ``&`` as entities; plain text must escape them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return None if value is None else str(value)


def events_for_summary(
    summary: Mapping[str, Any], previous_state_type: str | None
) -> list[Notification]:
    """The notifications a finished run calls for (none, or one).

    ``summary`` is the daemon's per-run summary (``run_id`` or ``flow_run_id``,
    ``deployment``, ``flow``, ``scheduled_for``, ``state``, ``attempt``, ``duration_ms``,
    ``exit_code``, ``signal``, ``error_type``; optionally ``state_type``,
    ``error_message``, ``tags`` and ``parameters``). A failed, crashed or timed-out run is
    its own event. ``previous_state_type`` is the state type of the deployment's previous
    finished run: a completed run after a FAILED or CRASHED one is ``recovered``. A
    cancelled, skipped or missed predecessor is not a failure anyone was told to fix, so
    completing after one is not a recovery.
    """
    state = str(summary.get("state") or "")
    state_type = str(summary.get("state_type") or STATE_NAMES.get(state) or "")
    event = _failure_event(state, state_type)
    completed = state_type == StateType.COMPLETED
    if event is None and completed and is_failed(previous_state_type):
        event = NotifyEvent.RECOVERED
    if event is None:
        return []
    return [
        Notification(
            event=event,
            deployment=str(summary.get("deployment")),
            state=state,
            run_id=summary.get("run_id") or summary.get("flow_run_id"),
            flow=summary.get("flow"),
            scheduled_for=_iso(summary.get("scheduled_for")),
            error_type=summary.get("error_type"),
            error_message=summary.get("error_message"),
            tags=tuple(summary.get("tags") or ()),
            attempt=summary.get("attempt"),
            duration_ms=summary.get("duration_ms"),
            exit_code=summary.get("exit_code"),
            signal=summary.get("signal"),
            parameters=summary.get("parameters"),
        )
    ]


def _failure_event(state: str, state_type: str) -> NotifyEvent | None:
    """The event of a run that failed (``states.is_failed``); None for any other."""
    if not is_failed(state_type):
        return None
    if state_type == StateType.CRASHED:
        return NotifyEvent.CRASHED
    return NotifyEvent.TIMED_OUT if state == StateName.TIMED_OUT else NotifyEvent.FAILED


def missed_event(
    deployment: str,
    scheduled_for: datetime | str,
    tags: Iterable[str] = (),
    *,
    run_id: str | None = None,
    reason: str | None = None,
) -> Notification:
    """The notification for a fire the scheduler recorded Missed (``reason`` says why)."""
    return Notification(
        event=NotifyEvent.MISSED,
        deployment=deployment,
        state=StateName.MISSED,
        run_id=run_id,
        scheduled_for=_iso(scheduled_for),
        error_message=reason,
        tags=tuple(tags),
    )


def auto_paused_event(
    deployment: str,
    reason: str,
    tags: Iterable[str] = (),
    *,
    run_id: str | None = None,
    state: str | None = None,
    scheduled_for: datetime | str | None = None,
) -> Notification:
    """The notification for a deployment that paused itself (``pause_after_failures``):
    ``reason`` says after how many failures; the run is its last failed one, ``state``
    how that run ended."""
    return Notification(
        event=NotifyEvent.AUTO_PAUSED,
        deployment=deployment,
        state=state or StateName.FAILED,
        run_id=run_id,
        scheduled_for=_iso(scheduled_for),
        error_message=reason,
        tags=tuple(tags),
    )


# The events that tell of a breach, found and cleared, by its kind.
BREACH_EVENTS = {
    BreachKind.LATE: (NotifyEvent.LATE, NotifyEvent.LATE_CLEARED),
    BreachKind.DEADLINE_MISSED: (NotifyEvent.DEADLINE_MISSED, NotifyEvent.DEADLINE_CLEARED),
    BreachKind.TOO_FAST: (NotifyEvent.TOO_FAST, NotifyEvent.TOO_FAST_CLEARED),
    BreachKind.STALE: (NotifyEvent.STALE, NotifyEvent.FRESH_AGAIN),
}


def breach_event(
    breach: BreachRow,
    cleared: bool,
    detail: str,
    state: str | None = None,
    tags: Iterable[str] = (),
) -> Notification:
    """The notification of a deadline or freshness breach found (or ``cleared``): its run
    (if it is one run's), nominal time, the policy's limit and ``detail`` in words."""
    return Notification(
        event=BREACH_EVENTS[breach.kind][cleared],
        deployment=breach.deployment_name,
        state=state or "",
        run_id=breach.flow_run_id,
        scheduled_for=_iso(breach.nominal_time),
        tags=tuple(tags),
        breach={
            "kind": breach.kind.value,
            "nominal_time": _iso(breach.nominal_time),
            "limit_seconds": breach.limit_seconds,
            "detected_at": _iso(breach.detected_at),
            "cleared_at": _iso(breach.cleared_at),
            "detail": detail,
        },
    )


class Notifier:
    """Delivers notifications to the targets that want them, in the background.

    ``public_url`` is where links point (None: no links); the daemon may set it later,
    once its API listens. ``backoff`` is the first retry's delay in seconds, doubled for
    each further one up to ``max_backoff``; ``queue_size`` bounds each target's backlog.
    Targets not yet ``resolved()`` have their URL read here (ValueError if it cannot be).
    """

    def __init__(
        self,
        targets: Sequence[NotifyTarget],
        *,
        public_url: str | None = None,
        queue_size: int = 1000,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        self.public_url = public_url.rstrip("/") if public_url else None
        self._channels = [
            _Channel(
                target if target.url is not None else target.resolved(),
                queue_size=queue_size,
                backoff=backoff,
                max_backoff=max_backoff,
            )
            for target in targets
        ]

    def publish(self, notification: Notification) -> None:
        """Queue ``notification`` for every target that wants it; never blocks."""
        body: bytes | None = None
        for channel in self._channels:
            target = channel.target
            if not target.wants(notification.event, notification.deployment, notification.tags):
                continue
            if body is None:
                payload = notification.payload(self.public_url)
                body = json.dumps(payload, default=str).encode()
            if not channel.offer(_Item(notification, body)):
                why = "the notifier is closed" if channel.closing else "its queue is full"
                log.error(
                    "notification dropped: %s %s to %s: %s",
                    notification.deployment,
                    notification.event.value,
                    target.name,
                    why,
                    extra=_fields(notification, target, event_kind="notify_dropped", error=why),
                )

    def close(self, timeout: float | None = 10.0) -> bool:
        """Deliver what is queued, waiting at most ``timeout`` seconds in all; whether
        everything was delivered or given up on. What is left after that is dropped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for channel in self._channels:
            channel.close()
        drained = True
        for channel in self._channels:
            drained &= channel.join(deadline)
        return drained


@dataclass(frozen=True, slots=True)
class _Item:
    notification: Notification
    body: bytes


@dataclass(frozen=True, slots=True)
class _Attempt:
    status: int | None  # None: no HTTP answer (connection error, timeout)
    error: str | None = None
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.status == 429


def _fields(notification: Notification, target: NotifyTarget, **more: Any) -> dict[str, Any]:
    """The ``extra=`` of a notification's log records."""
    return {
        "notify_target": target.name,
        "notify_event": notification.event.value,
        "flow_run_id": notification.run_id,
        "deployment": notification.deployment,
        **more,
    }


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would send the payload to another URL."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class _Channel:
    """One target's queue and the thread delivering it."""

    def __init__(
        self, target: NotifyTarget, *, queue_size: int, backoff: float, max_backoff: float
    ) -> None:
        self.target = target
        self.closing = False
        self._queue_size = queue_size
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._items: deque[_Item] = deque()
        self._condition = threading.Condition()
        self._abandon = threading.Event()  # set when close() stops waiting: drop the rest
        self._thread = threading.Thread(
            target=self._run, name=f"gnomon-notify-{target.name}", daemon=True
        )
        self._thread.start()

    def offer(self, item: _Item) -> bool:
        with self._condition:
            if self.closing or len(self._items) >= self._queue_size:
                return False
            self._items.append(item)
            self._condition.notify()
            return True

    def close(self) -> None:
        with self._condition:
            self.closing = True
            self._condition.notify()

    def join(self, deadline: float | None) -> bool:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        self._thread.join(remaining)
        if not self._thread.is_alive():
            return True
        self._abandon.set()
        return False

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._items and not self.closing:
                    self._condition.wait()
                if not self._items:
                    return
                item = self._items.popleft()
            self._deliver(item.notification, item.body)

    def _deliver(self, notification: Notification, body: bytes) -> None:
        target = self.target
        attempts = target.max_attempts
        for attempt in range(1, attempts + 1):
            if self._abandon.is_set():
                self._gave_up(notification, attempt - 1, "the daemon stopped waiting to send it")
                return
            result = self._post(body)
            fields = _fields(notification, target, attempt=attempt, status=result.status)
            if result.error is None:
                log.info(
                    "notification delivered: %s %s to %s",
                    notification.deployment,
                    notification.event.value,
                    target.name,
                    extra={"event_kind": "notify_delivered", **fields},
                )
                return
            if not result.retryable:
                log.error(
                    "notification rejected by %s, not retried: %s",
                    target.name,
                    result.error,
                    extra={"event_kind": "notify_failed", "error": result.error, **fields},
                )
                return
            if attempt == attempts:
                self._gave_up(notification, attempt, result.error)
                return
            delay = min(self._backoff * 2 ** (attempt - 1), self._max_backoff)
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, self._max_backoff))
            log.warning(
                "notification to %s failed (attempt %d of %d), retrying in %.3g s: %s",
                target.name,
                attempt,
                attempts,
                delay,
                result.error,
                extra={
                    "event_kind": "notify_retry",
                    "error": result.error,
                    "retry_in_s": delay,
                    **fields,
                },
            )
            self._abandon.wait(delay)

    def _gave_up(self, notification: Notification, attempts: int, error: str) -> None:
        log.error(
            "notification to %s not delivered after %d attempts: %s",
            self.target.name,
            attempts,
            error,
            extra=_fields(
                notification,
                self.target,
                event_kind="notify_failed",
                attempt=attempts,
                error=error,
            ),
        )

    def _post(self, body: bytes) -> _Attempt:
        assert self.target.url is not None  # resolved by the Notifier
        request = urllib.request.Request(
            self.target.url.get_secret_value(),
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"gnomon/{__version__}"},
        )
        timeout = self.target.timeout.total_seconds()
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                response.read()
                return _Attempt(response.status)
        except urllib.error.HTTPError as error:
            with error:
                return _Attempt(
                    error.code,
                    f"HTTP {error.code} {error.reason}",
                    _retry_after(error.headers.get("Retry-After")),
                )
        except urllib.error.URLError as error:
            return _Attempt(None, str(error.reason))
        except (OSError, http.client.HTTPException) as error:  # timeouts are OSErrors
            return _Attempt(None, str(error) or type(error).__name__)


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (the HTTP-date form is rare for webhooks: ignored)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
