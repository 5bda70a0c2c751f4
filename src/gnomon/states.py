"""Run states, with Prefect's names and types.

A state has a *type* (the coarse phase the engine acts on) and a *name* (what people see):
``Cached`` is a COMPLETED state, ``TimedOut`` a FAILED one, ``Retrying`` a RUNNING one and
``AwaitingRetry`` a SCHEDULED one, exactly as in Prefect.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gnomon.exceptions import CancelledRun, CrashedRun, InvalidInput, UnfinishedRun


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


FINAL_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)

_DEFAULT_NAMES = {
    StateType.SCHEDULED: "Scheduled",
    StateType.PENDING: "Pending",
    StateType.RUNNING: "Running",
    StateType.COMPLETED: "Completed",
    StateType.FAILED: "Failed",
    StateType.CANCELLED: "Cancelled",
    StateType.CRASHED: "Crashed",
    StateType.PAUSED: "Paused",
    StateType.CANCELLING: "Cancelling",
}

# Every state name gnomon records, with its type: the engine's (as in Prefect) and the
# daemon's Skipped and Missed, which record a fire that did not run.
STATE_NAMES: dict[str, StateType] = {
    "Scheduled": StateType.SCHEDULED,
    "AwaitingRetry": StateType.SCHEDULED,
    "Pending": StateType.PENDING,
    "NotReady": StateType.PENDING,
    "Running": StateType.RUNNING,
    "Retrying": StateType.RUNNING,
    "Completed": StateType.COMPLETED,
    "Cached": StateType.COMPLETED,
    "Failed": StateType.FAILED,
    "TimedOut": StateType.FAILED,
    "Crashed": StateType.CRASHED,
    "Cancelled": StateType.CANCELLED,
    "Skipped": StateType.CANCELLED,
    "Missed": StateType.CANCELLED,
    "Cancelling": StateType.CANCELLING,
    "Paused": StateType.PAUSED,
}

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
        raise InvalidInput(f"{text[:80]!r} is not a state; {STATE_FILTER_HELP}")
    return StateFilter(names=frozenset({name}))


_STATE_NAMES_LOWER = {name.lower(): name for name in STATE_NAMES}
STATE_FILTER_HELP = (
    f"use {FAILED_FILTER} ({', '.join(FAILED_NAMES)}), a state name "
    f"({', '.join(STATE_NAMES)}), or {EXACT_PREFIX}NAME for exactly one state name"
)

_UNSET: Any = object()


@dataclass(slots=True, eq=False)
class State:
    """One state of a flow or task run.

    ``data`` holds the run's return value (for a completed state) or the exception (for a
    failed, crashed or cancelled one); ``result()`` returns the first and raises the second.
    """

    type: StateType
    name: str = ""
    message: str | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    data: Any = _UNSET

    def __post_init__(self) -> None:
        if not self.name:
            self.name = _DEFAULT_NAMES[self.type]

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's return value; raises the run's exception if it did not complete."""
        if self.type is StateType.COMPLETED:
            return None if self.data is _UNSET else self.data
        if not self.is_final() and not isinstance(self.data, BaseException):
            raise UnfinishedRun(f"the run is {self.name}, not finished; it has no result yet")
        error = self._exception()
        if raise_on_failure:
            raise error
        return error

    def _exception(self) -> BaseException:
        if isinstance(self.data, BaseException):
            return self.data
        if isinstance(self.data, State):
            return self.data._exception()
        message = self.message or f"run ended in state {self.name}"
        if self.type is StateType.CRASHED:
            return CrashedRun(message)
        if self.type is StateType.CANCELLED:
            return CancelledRun(message)
        return RuntimeError(message)

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


def Scheduled(message: str | None = None, name: str = "Scheduled") -> State:  # noqa: N802
    return State(StateType.SCHEDULED, name, message)


def AwaitingRetry(message: str | None = None) -> State:  # noqa: N802
    return State(StateType.SCHEDULED, "AwaitingRetry", message)


def Pending(message: str | None = None, name: str = "Pending") -> State:  # noqa: N802
    return State(StateType.PENDING, name, message)


def Running(message: str | None = None, name: str = "Running") -> State:  # noqa: N802
    return State(StateType.RUNNING, name, message)


def Retrying(message: str | None = None) -> State:  # noqa: N802
    return State(StateType.RUNNING, "Retrying", message)


def Completed(message: str | None = None, data: Any = _UNSET, name: str = "Completed") -> State:  # noqa: N802
    return State(StateType.COMPLETED, name, message, data=data)


def Cached(message: str | None = None, data: Any = _UNSET) -> State:  # noqa: N802
    return State(StateType.COMPLETED, "Cached", message, data=data)


def Failed(message: str | None = None, data: Any = _UNSET, name: str = "Failed") -> State:  # noqa: N802
    return State(StateType.FAILED, name, message, data=data)


def TimedOut(message: str | None = None, data: Any = _UNSET) -> State:  # noqa: N802
    return State(StateType.FAILED, "TimedOut", message, data=data)


def Crashed(message: str | None = None, data: Any = _UNSET) -> State:  # noqa: N802
    return State(StateType.CRASHED, "Crashed", message, data=data)


def Cancelled(message: str | None = None, data: Any = _UNSET) -> State:  # noqa: N802
    return State(StateType.CANCELLED, "Cancelled", message, data=data)


def NotReady(message: str | None = None, data: Any = _UNSET) -> State:  # noqa: N802
    """A task that did not run because an upstream task it waits on did not complete."""
    return State(StateType.PENDING, "NotReady", message, data=data)


__all__ = [
    "AwaitingRetry",
    "Cached",
    "Cancelled",
    "Completed",
    "Crashed",
    "Failed",
    "NotReady",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "State",
    "StateType",
    "TimedOut",
]
