"""Wrappers that change how an argument is treated by ``.map`` and input resolution."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")


class BaseAnnotation(Generic[T]):
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self), self.value))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


class unmapped(BaseAnnotation[T]):  # noqa: N801 -- Prefect's name
    """Pass the same value to every run of ``task.map`` instead of iterating over it."""

    def __getitem__(self, _: Any) -> T:
        return self.value


class allow_failure(BaseAnnotation[T]):  # noqa: N801 -- Prefect's name
    """Run the downstream task even if this upstream future failed; it receives the error."""


class quote(BaseAnnotation[T]):  # noqa: N801 -- Prefect's name
    """Pass the value as it is: no future resolution inside it."""
