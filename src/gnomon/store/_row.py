"""The base of the store's row classes, which ``gnomon.store.rows`` declares.

A row is a frozen value with ``__slots__``, as ``@dataclass(frozen=True, slots=True)`` would
make it. Its ``__init__`` is written out in ``rows`` by the generator rather than made by
``dataclasses`` when the module is imported: the command line's fast commands import the
rows, and making their classes at import cost them several milliseconds (see
``docs/benchmarks.md``). ``dataclass_transform`` tells type checkers what a row is: fields
typed, read-only, set by the constructor. The rest (equality, hashing, repr, pickling) is
written once here, from each class's ``__slots__``.
"""

from __future__ import annotations

from typing import Any, NoReturn, dataclass_transform


@dataclass_transform(frozen_default=True)
class StoreRow:
    """A row read from the store: a field per column, in the order its query selects them
    (``__match_args__``, which are also its slots)."""

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def astuple(self) -> tuple[Any, ...]:
        """The fields' values, in order."""
        return tuple(getattr(self, name) for name in self.__match_args__)

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, in order (for printing a row as JSON)."""
        return {name: getattr(self, name) for name in self.__match_args__}

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"cannot delete field {name!r}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, StoreRow)
        return self.astuple() == other.astuple()

    def __hash__(self) -> int:
        return hash(self.astuple())

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt through the constructor: the default would set the slots, which are frozen.
        return type(self), self.astuple()
