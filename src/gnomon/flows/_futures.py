"""Futures for submitted task runs, with Prefect's API on top of ``concurrent.futures``."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

from gnomon.states import Pending, State

R = TypeVar("R")


class PrefectFuture(Generic[R]):
    """The eventual final state of one task run.

    ``state`` is live: Pending until the run starts, then whatever the engine last recorded
    (read through ``live_state``, which the engine can update before this future exists).
    """

    def __init__(
        self,
        task_run_id: str,
        future: cf.Future[State],
        live_state: Callable[[], State] | None = None,
    ) -> None:
        self.task_run_id = task_run_id
        self._future = future
        self._live_state = live_state

    @property
    def state(self) -> State:
        if self._future.done():
            return self._future.result()
        return self._live_state() if self._live_state is not None else Pending()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run is final, or ``timeout`` seconds pass."""
        cf.wait([self._future], timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The task's return value; raises its exception if it failed."""
        try:
            state = self._future.result(timeout=timeout)
        except cf.TimeoutError:
            raise TimeoutError(
                f"task run {self.task_run_id} did not finish within {timeout} second(s)"
            ) from None
        return state.result(raise_on_failure=raise_on_failure, _sync=True)

    def add_done_callback(self, fn: Any) -> None:
        self._future.add_done_callback(lambda _: fn(self))

    def done(self) -> bool:
        return self._future.done()

    def __repr__(self) -> str:
        return f"PrefectFuture(task_run_id={self.task_run_id!r}, state={self.state!r})"


class PrefectFutureList(list[PrefectFuture[R]]):
    """The futures of a ``.map`` call."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        _, not_done = wait(self, timeout=timeout)
        if not_done:
            raise TimeoutError(f"{len(not_done)} of {len(self)} task runs did not finish in time")
        return [future.result(raise_on_failure=raise_on_failure) for future in self]


class DoneAndNotDoneFutures(NamedTuple):
    done: set[PrefectFuture[Any]]
    not_done: set[PrefectFuture[Any]]


def wait(
    futures: Iterable[PrefectFuture[Any]], timeout: float | None = None
) -> DoneAndNotDoneFutures:
    """Wait for every future (or ``timeout``); returns which are done and which are not."""
    by_inner = {future._future: future for future in futures}
    done, not_done = cf.wait(by_inner, timeout=timeout)
    return DoneAndNotDoneFutures({by_inner[f] for f in done}, {by_inner[f] for f in not_done})


def as_completed(
    futures: Iterable[PrefectFuture[Any]], timeout: float | None = None
) -> Iterator[PrefectFuture[Any]]:
    """Yield futures as their runs finish; raises TimeoutError after ``timeout`` seconds."""
    by_inner = {future._future: future for future in futures}
    try:
        for inner in cf.as_completed(by_inner, timeout=timeout):
            yield by_inner[inner]
    except cf.TimeoutError:
        raise TimeoutError("futures did not all finish in time") from None
