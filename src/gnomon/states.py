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

from gnomon.exceptions import CancelledRun, CrashedRun, UnfinishedRun


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
