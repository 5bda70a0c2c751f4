"""Prefect's ``Variable``: named JSON values in the store, which flows read and set and
operators manage (``gnomon variable``, the API). Each set and unset is audited, with the
run (or, outside a run, the OS user) as the actor and origin "python".

The rules are Prefect 3's: a name is lowercase letters, digits, ``-`` and ``_`` (at most
255 characters; gnomon also refuses the empty name, which Prefect stores but cannot read
back by name); a value is a string, number, boolean, None, list or dict of JSON values, at
most 5,000 characters as compact JSON. The command line and the API check names and values
with these same functions.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, Field

from gnomon._text import quoted
from gnomon.exceptions import InvalidInput
from gnomon.flows._context import flow_run_var
from gnomon.flows._dispatch import async_dispatch
from gnomon.store import Actor, Origin

if TYPE_CHECKING:
    from gnomon.store import Store

T = TypeVar("T")

MAX_VARIABLE_NAME_LENGTH = 255
MAX_VALUE_LENGTH = 5000  # characters of the value's compact JSON, as Prefect counts them
VARIABLE_NAME = re.compile(rf"[a-z0-9_-]{{1,{MAX_VARIABLE_NAME_LENGTH}}}")
NAME_RULE = 'lowercase letters, digits, "-" and "_", at most 255 characters'
_TOP_LEVEL = (str, int, float, bool, dict, list, tuple, type(None))


def is_variable_name(name: object) -> bool:
    return isinstance(name, str) and VARIABLE_NAME.fullmatch(name) is not None


def check_variable_name(name: object) -> str:
    """``name`` if it can name a variable, else InvalidInput (a ValueError) saying why."""
    return checked_name("variable", VARIABLE_NAME, NAME_RULE, name)


def checked_name(kind: str, rule: re.Pattern[str], words: str, name: object) -> str:
    """``name`` if ``rule`` matches all of it, else InvalidInput naming the ``kind`` of
    name, the name and the rule (in ``words``)."""
    if isinstance(name, str) and rule.fullmatch(name):
        return name
    raise InvalidInput(f"invalid {kind} name {quoted(name)}: use {words}")


def variable_value(name: str, value: Any) -> Any:
    """``value`` as it is stored (a tuple becomes a list), or InvalidInput naming the
    variable and what is wrong: not JSON, not finite, too long."""
    if not isinstance(value, _TOP_LEVEL):
        raise InvalidInput(
            f'invalid value for variable "{name}": a {type(value).__name__} value is not JSON'
        )
    text, problem = json_text(value)
    if text is None:
        raise InvalidInput(f'invalid value for variable "{name}": {problem}')
    size = len(text.encode())
    if size > MAX_VALUE_LENGTH:
        raise InvalidInput(
            f'invalid value for variable "{name}": it is {size:,} characters as JSON, and a'
            f" variable's value is at most {MAX_VALUE_LENGTH:,}"
        )
    return json.loads(text)


def json_text(value: Any) -> tuple[str | None, str | None]:
    """``value`` as compact JSON (valid UTF-8, no NaN or infinity, string keys only) and
    None, or None and why it cannot be."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        text.encode()  # lone surrogates: not UTF-8, and no database takes them
    except (TypeError, ValueError, RecursionError) as error:
        return None, f"it cannot be written as JSON ({str(error)[:100]})"
    if not _string_keys(value):
        return None, "a JSON object's keys are strings"
    return text, None


def _string_keys(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(key, str) and _string_keys(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(_string_keys(item) for item in value)
    return True


def check_tags(tags: Any) -> list[str]:
    """A variable's tags as stored: a list of strings (none: an empty list)."""
    if tags is None:
        return []
    if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidInput(f"a variable's tags are a list of strings, not {quoted(tags)}")
    return list(tags)


def python_actor() -> Actor:
    """Who changes a variable or secret through the Python API: the current flow run, or
    outside a run the OS user."""
    flow_run = flow_run_var.get()
    if flow_run is not None:
        return Actor(f"run {flow_run.flow_run_id}", Origin.PYTHON)
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name for this uid (a container's)
        import os

        user = str(os.getuid())
    return Actor(user, Origin.PYTHON)


def _store() -> Store:
    from gnomon.store import get_store

    return get_store()


class Variable(BaseModel, Generic[T]):
    """A named, mutable JSON value shared by flows, tasks and operators (Prefect's
    ``prefect.variables.Variable``). ``Variable[str].get(name)`` types the value."""

    name: str = Field(max_length=MAX_VARIABLE_NAME_LENGTH, description="The name of the variable")
    value: Any = Field(description="The value of the variable")
    tags: list[str] | None = Field(default=None)

    @classmethod
    async def aset(
        cls, name: str, value: Any, tags: list[str] | None = None, overwrite: bool = False
    ) -> Variable[Any]:
        """``set``, for async code."""
        return await asyncio.to_thread(cls._set, name, value, tags, overwrite)

    @classmethod
    @async_dispatch(aset)
    def set(
        cls, name: str, value: Any, tags: list[str] | None = None, overwrite: bool = False
    ) -> Variable[Any]:
        """Create variable ``name`` with ``value`` and ``tags``; if it exists, replace its
        value and tags when ``overwrite``, else raise ValueError. Returns the variable as
        stored."""
        return cls._set(name, value, tags, overwrite)

    @classmethod
    def _set(cls, name: str, value: Any, tags: list[str] | None, overwrite: bool) -> Variable[Any]:
        check_variable_name(name)
        stored, tag_list = variable_value(name, value), check_tags(tags)
        if _store().write_variable(name, stored, tag_list, overwrite, python_actor()) is None:
            raise ValueError(
                f"Variable {name!r} already exists. Use `overwrite=True` to update it."
            )
        return cls(name=name, value=stored, tags=tag_list)

    @classmethod
    async def aget(cls, name: str, default: Any = None) -> Any:
        """``get``, for async code."""
        return await asyncio.to_thread(cls._get, name, default)

    @classmethod
    @async_dispatch(aget)
    def get(cls, name: str, default: Any = None) -> Any:
        """The value of variable ``name``, or ``default`` if there is none."""
        return cls._get(name, default)

    @classmethod
    def _get(cls, name: str, default: Any) -> Any:
        row = _store().read_variable(name) if is_variable_name(name) else None
        return default if row is None else row.value

    @classmethod
    async def aunset(cls, name: str) -> bool:
        """``unset``, for async code."""
        return await asyncio.to_thread(cls._unset, name)

    @classmethod
    @async_dispatch(aunset)
    def unset(cls, name: str) -> bool:
        """Remove variable ``name``: True if it existed, False if there was none."""
        return cls._unset(name)

    @classmethod
    def _unset(cls, name: str) -> bool:
        if not is_variable_name(name):
            return False
        return _store().delete_variable(name, python_actor())
