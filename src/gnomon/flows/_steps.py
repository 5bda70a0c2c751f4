"""A run's steps: the engines' attempts written as generators.

A generator flow or task yields values while its run is in progress, so the engines run
an attempt as a generator that yields those values and returns the attempt's state
(``state = yield from steps``); any other flow or task yields nothing. One retry loop and
one set of run rules then serve both kinds (``_generators`` drives the yielding kind).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

T = TypeVar("T")


def exhaust(steps: Generator[Any, None, T]) -> T:
    """What ``steps`` return, for steps that yield nothing (a plain flow or task)."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
