"""Run states, with Prefect's names and types.

A state has a *type* (the coarse phase the engine acts on) and a *name* (what people see):
``Cached`` is a COMPLETED state, ``TimedOut`` a FAILED one, ``Retrying`` a RUNNING one and
``AwaitingRetry`` a SCHEDULED one, exactly as in Prefect.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

from gnomon._prefect_import import prefect_fallback
from gnomon._text import quoted
from gnomon.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    InvalidInput,
    MissingResult,
    PausedRun,
    UnfinishedRun,
)


class StateType(enum.StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"


class StateName(enum.StrEnum):
    """Every state name gnomon records: the engine's (as in Prefect) and the daemon's
    Skipped and Missed, which record a fire that did not run. Code names states through
    this enum only (a test checks no state name or type is spelled as a bare string)."""

    SCHEDULED = "Scheduled"
    AWAITING_RETRY = "AwaitingRetry"
    PENDING = "Pending"
    NOT_READY = "NotReady"
    RUNNING = "Running"
    RETRYING = "Retrying"
    COMPLETED = "Completed"
    CACHED = "Cached"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    CRASHED = "Crashed"
    CANCELLED = "Cancelled"
    SKIPPED = "Skipped"
    MISSED = "Missed"
    CANCELLING = "Cancelling"
    PAUSED = "Paused"
    SUSPENDED = "Suspended"  # paused with its process gone: run again from the top on resume
    RESUMING = "Resuming"  # a suspended run resumed, waiting for a worker
    AWAITING_POOL = "AwaitingPool"  # a daemon's run waiting for a slot of its [[pools]] pool


FINAL_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)
# A run not started yet (queued by a schedule or a request, or handed to a worker).
WAITING_TYPES = frozenset({StateType.SCHEDULED, StateType.PENDING})
# A run in a worker's hands: what recovery and cancellation look for.
LIVE_TYPES = frozenset({StateType.RUNNING, StateType.CANCELLING})
# A run that is neither finished nor paused.
ACTIVE_TYPES = WAITING_TYPES | {StateType.RUNNING}

_DEFAULT_NAMES = {
    StateType.SCHEDULED: StateName.SCHEDULED,
    StateType.PENDING: StateName.PENDING,
    StateType.RUNNING: StateName.RUNNING,
    StateType.COMPLETED: StateName.COMPLETED,
    StateType.FAILED: StateName.FAILED,
    StateType.CANCELLED: StateName.CANCELLED,
    StateType.CRASHED: StateName.CRASHED,
    StateType.PAUSED: StateName.PAUSED,
    StateType.CANCELLING: StateName.CANCELLING,
}

# Each state name with its type.
STATE_NAMES: dict[str, StateType] = {
    StateName.SCHEDULED: StateType.SCHEDULED,
    StateName.AWAITING_RETRY: StateType.SCHEDULED,
    StateName.PENDING: StateType.PENDING,
    StateName.NOT_READY: StateType.PENDING,
    StateName.RUNNING: StateType.RUNNING,
    StateName.RETRYING: StateType.RUNNING,
    StateName.COMPLETED: StateType.COMPLETED,
    StateName.CACHED: StateType.COMPLETED,
    StateName.FAILED: StateType.FAILED,
    StateName.TIMED_OUT: StateType.FAILED,
    StateName.CRASHED: StateType.CRASHED,
    StateName.CANCELLED: StateType.CANCELLED,
    StateName.SKIPPED: StateType.CANCELLED,
    StateName.MISSED: StateType.CANCELLED,
    StateName.CANCELLING: StateType.CANCELLING,
    StateName.PAUSED: StateType.PAUSED,
    StateName.SUSPENDED: StateType.PAUSED,
    StateName.RESUMING: StateType.SCHEDULED,
    StateName.AWAITING_POOL: StateType.PENDING,
}
# The fires a schedule decided not to run: recorded as Cancelled-type runs.
UNRUN_NAMES = frozenset({StateName.SKIPPED, StateName.MISSED})
# A paused run (not a suspended one) keeps its process and its worker: the writes and reads
# of active runs count it with them (it can time out, be cancelled, crash with its daemon).
HELD_NAMES = frozenset({StateName.PAUSED})

# What counts as a failed run, for every part of gnomon that asks (the CLI's and the API's
# state filters, metrics, notifications, deployment retries): it ended in a FAILED-type
# state (Failed, TimedOut) or Crashed. Cancelled, Skipped and Missed are not failures: no
# code went wrong, someone or some policy decided.
FAILED_TYPES = frozenset({StateType.FAILED, StateType.CRASHED})
FAILED_NAMES = tuple(name for name, kind in STATE_NAMES.items() if kind in FAILED_TYPES)


def is_failed(state_type: str | None, state_name: str | None = None) -> bool:
    """Whether a run in this state failed (see ``FAILED_TYPES``); the type decides, and the
    name stands in for it where only the name is known."""
    kind = state_type or STATE_NAMES.get(state_name or "")
    return kind in FAILED_TYPES


# The filter word for the failed family, and the prefix that asks for one state name only.
FAILED_FILTER = "failed"
EXACT_PREFIX = "only:"


@dataclass(frozen=True, slots=True)
class StateFilter:
    """Which runs a ``--state`` option or ``?state=`` parameter selects: those whose state
    type is one of ``types``, or whose state name is one of ``names``."""

    types: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()

    def matches(self, state_type: str | None, state_name: str | None) -> bool:
        return state_type in self.types or state_name in self.names


def parse_state_filter(text: str) -> StateFilter:
    """What an operator's state filter means, ignoring case: ``failed`` is the failed family
    (Failed, TimedOut, Crashed), any other state name is that state, and ``only:NAME`` is
    exactly the state NAME (``only:Failed`` leaves out TimedOut and Crashed). InvalidInput,
    listing the choices, for anything else."""
    word = text.strip()
    exact = word.lower().startswith(EXACT_PREFIX)
    if exact:
        word = word[len(EXACT_PREFIX) :].strip()
    if not exact and word.lower() == FAILED_FILTER:
        return StateFilter(types=frozenset(kind.value for kind in FAILED_TYPES))
    name = _STATE_NAMES_LOWER.get(word.lower())
    if name is None:
        raise InvalidInput(f"{quoted(text)} is not a state; {STATE_FILTER_HELP}")
    return StateFilter(names=frozenset({name}))


_STATE_NAMES_LOWER = {name.lower(): name for name in STATE_NAMES}
STATE_FILTER_HELP = (
    f"use {FAILED_FILTER} ({', '.join(FAILED_NAMES)}), a state name "
    f"({', '.join(STATE_NAMES)}), or {EXACT_PREFIX}NAME for exactly one state name"
)

_UNSET: Any = object()


@dataclass(slots=True)
class StateDetails:
    """Which run a state belongs to, as Prefect's ``state.state_details``: empty for a state
    built by hand (``Failed()``), set when the engine records it for a run. A flow that
    returns a state keeps a hand-built one as its own final state, but wraps a run's state
    (from a future or ``return_state=True``) in a state of its own."""

    flow_run_id: str | None = None
    task_run_id: str | None = None
    # The run's function returned this state itself: a direct call of a task gives a
    # completed one back as it is, as Prefect's does (its futures give the data).
    returned: bool = False


@dataclass(slots=True, eq=False)
class State:
    """One state of a flow or task run.

    ``data`` holds the run's return value (for a completed state) or the exception (for a
    failed, crashed or cancelled one); ``result()`` returns the first and raises the second.
    A state built by hand without ``data`` has no result, as in Prefect: ``result()`` raises
    ``MissingResult`` for a completed one and gives ``FailedRun`` / ``CrashedRun`` /
    ``CancelledRun`` (with the state's message) for the others.
    """

    type: StateType
    name: str = ""
    message: str | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    data: Any = _UNSET
    state_details: StateDetails = field(default_factory=StateDetails)

    def __post_init__(self) -> None:
        # A plain str, as Prefect's: user code prints and compares it.
        self.name = str(self.name or _DEFAULT_NAMES[self.type])

    def result(
        self,
        raise_on_failure: bool = True,
        retry_result_failure: bool = True,
        _sync: bool | None = None,
    ) -> Any:
        """The run's return value; raises the run's exception if it did not complete.

        As Prefect's ``State.result``, in async code (an async flow or task, or any code on a
        running event loop) this returns an awaitable instead: ``await state.result()``.
        ``_sync=True`` (what the engine passes) always answers at once. Results are held in
        memory or read from local files, so ``retry_result_failure`` changes nothing.
        """
        if _sync is False or (_sync is None and _in_async_context()):
            return self.aresult(raise_on_failure, retry_result_failure)
        return self._result(raise_on_failure)

    async def aresult(
        self, raise_on_failure: bool = True, retry_result_failure: bool = True
    ) -> Any:
        """``result()`` for async code, as Prefect's ``State.aresult``."""
        return self._result(raise_on_failure)

    def _result(self, raise_on_failure: bool) -> Any:
        if not self.is_final():
            if isinstance(self.data, BaseException):  # NotReady: the upstream's failure
                if raise_on_failure:
                    raise self.data
                return self.data
            if self.is_paused():
                raise PausedRun(f"the run is {self.name}: it has no result until it is resumed")
            raise UnfinishedRun(f"Run is in {self.type.value} state, its result is not available.")
        failed = self.type is not StateType.COMPLETED
        if failed and raise_on_failure:
            raise self._exception()
        if self.data is not _UNSET:
            return self.data
        if failed:
            return self._exception()
        raise MissingResult(
            "State data is missing. Typically, this occurs when result persistence is "
            "disabled and the state has been retrieved from the API."
        )

    def _exception(self) -> BaseException:
        """The exception a failed, crashed or cancelled state stands for, by Prefect's rules:
        its own, the first failure of the states it holds, or a wrapper with its message."""
        data = None if self.data is _UNSET else self.data
        if isinstance(data, BaseException):
            return data
        if isinstance(data, State):
            return data._exception()
        if is_state_iterable(data):
            for state in data:
                if state.type in FAILED_TYPES or state.type is StateType.CANCELLED:
                    return state._exception()
            raise ValueError("Failed state result was an iterable of states but none were failed.")
        wrapper, default = _WRAPPERS.get(self.type, (FailedRun, "Run failed."))
        if data is None:
            return wrapper(self.message or default)
        if isinstance(data, str):
            return wrapper(data)
        raise TypeError(
            f"Unexpected result for failed state: {data!r} —— {type(data).__name__} cannot be "
            "resolved into an exception"
        )

    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_cancelling(self) -> bool:
        return self.type is StateType.CANCELLING

    def is_paused(self) -> bool:
        return self.type is StateType.PAUSED

    def is_final(self) -> bool:
        return self.type in FINAL_TYPES

    def __repr__(self) -> str:
        message = f"message={self.message!r}, " if self.message else ""
        return f"{self.name}({message}type={self.type.value})"

    def __str__(self) -> str:
        # Prefect's log form: "TimedOut('...', type=FAILED)"; the type only when the name hides it.
        shown = [repr(self.message)] if self.message else []
        if self.name.lower() != self.type.value.lower():
            shown.append(f"type={self.type.value}")
        return f"{self.name}({', '.join(shown)})"


_WRAPPERS: dict[StateType, tuple[type[Exception], str]] = {
    StateType.FAILED: (FailedRun, "Run failed."),
    StateType.CRASHED: (CrashedRun, "Run crashed."),
    StateType.CANCELLED: (CancelledRun, "Run cancelled."),
}


def is_state_iterable(value: Any) -> TypeGuard[Iterable[State]]:
    """A non-empty list, tuple or set of states only (Prefect's rule: not a dict, which a
    flow may return with states among other values)."""
    return (
        isinstance(value, (list, tuple, set))
        and bool(value)
        and all(isinstance(item, State) for item in value)
    )


def returned_state(state: State) -> State:
    """A hand-built state that a run's function returned, as the run's final state: one
    without data holds the result None, as Prefect stores one for it, so that
    ``result(raise_on_failure=False)`` gives None rather than the failure."""
    if state.data is _UNSET:
        state.data = None
    state.state_details.returned = True
    return state


def _no_run() -> bool | None:
    return None


# Whether the code asking runs in an async flow or task run (None outside any run): the run
# engine, which keeps the current run and sits above this module, installs the probe.
_run_is_async: Callable[[], bool | None] = _no_run


def set_run_is_async_probe(probe: Callable[[], bool | None]) -> None:
    """Install how ``State.result`` learns whether the current run's function is async."""
    global _run_is_async
    _run_is_async = probe


def _in_async_context() -> bool:
    """Prefect's test for answering with an awaitable: inside a run, whether its function is
    async; outside one, whether an event loop runs in this thread."""
    import asyncio

    in_run = _run_is_async()
    if in_run is not None:
        return in_run
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def Scheduled(message: str | None = None, name: str = StateName.SCHEDULED) -> State:  # noqa: N802
    return State(StateType.SCHEDULED, name, message)


def AwaitingRetry(message: str | None = None) -> State:  # noqa: N802
    return State(StateType.SCHEDULED, StateName.AWAITING_RETRY, message)


def Pending(message: str | None = None, name: str = StateName.PENDING) -> State:  # noqa: N802
    return State(StateType.PENDING, name, message)


def Running(message: str | None = None, name: str = StateName.RUNNING) -> State:  # noqa: N802
    return State(StateType.RUNNING, name, message)


def Retrying(message: str | None = None) -> State:  # noqa: N802
    return State(StateType.RUNNING, StateName.RETRYING, message)


def Completed(  # noqa: N802
    message: str | None = None, data: Any = _UNSET, name: str = StateName.COMPLETED
) -> State:
    return State(StateType.COMPLETED, name, message, data=data)


def Cached(message: str | None = None, data: Any = _UNSET) -> State:  # noqa: N802
    return State(StateType.COMPLETED, StateName.CACHED, message, data=data)


def Failed(message: str | None = None, data: Any = _UNSET, name: str = StateName.FAILED) -> State:  # noqa: N802
    return State(StateType.FAILED, name, message, data=data)


def TimedOut(message: str | None = None, data: Any = _UNSET) -> State:  # noqa: N802
    return State(StateType.FAILED, StateName.TIMED_OUT, message, data=data)


def Crashed(message: str | None = None, data: Any = _UNSET) -> State:  # noqa: N802
    return State(StateType.CRASHED, StateName.CRASHED, message, data=data)


def Cancelled(message: str | None = None, data: Any = _UNSET) -> State:  # noqa: N802
    return State(StateType.CANCELLED, StateName.CANCELLED, message, data=data)


def Paused(message: str | None = None, name: str = StateName.PAUSED) -> State:  # noqa: N802
    return State(StateType.PAUSED, name, message)


def Suspended(message: str | None = None) -> State:  # noqa: N802
    """A paused run whose process exits: it runs again from the top once resumed."""
    return State(StateType.PAUSED, StateName.SUSPENDED, message)


def NotReady(message: str | None = None, data: Any = _UNSET) -> State:  # noqa: N802
    """A task that did not run because an upstream task it waits on did not complete."""
    return State(StateType.PENDING, StateName.NOT_READY, message, data=data)


__all__ = [
    "AwaitingRetry",
    "Cached",
    "Cancelled",
    "Completed",
    "Crashed",
    "Failed",
    "NotReady",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "State",
    "StateDetails",
    "StateType",
    "Suspended",
    "TimedOut",
    "is_state_iterable",
]

__getattr__ = prefect_fallback(__name__)
