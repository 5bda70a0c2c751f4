"""Binding a call's arguments to a flow's or task's parameters, as Prefect 3 does.

A call becomes a name -> value mapping with the signature's defaults applied, so that run
names, ``gnomon.runtime``, cache keys and hooks all see every parameter; a call that does
not fit the signature raises ``ParameterBindError`` in Prefect's words. ``@flow`` and
``@task`` on methods bind as Python's functions do: an instance method gets its instance,
a classmethod its class, a staticmethod nothing. The bound instance or class is the
function's first parameter (cache keys and ``runtime.*.parameters`` see it, as in Prefect)
but it is never stored with the run.
"""

from __future__ import annotations

import copy
import inspect
import sys
from collections.abc import Callable
from typing import Any, Literal

from gnomon.exceptions import ParameterBindError
from gnomon.flows._params import _signature, split_parameters

MethodKind = Literal["classmethod", "staticmethod"] | None


def call_parameters(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    bound: tuple[Any, ...] = (),
    apply_defaults: bool = True,
) -> dict[str, Any]:
    """``fn``'s parameters for a call with ``args`` and ``kwargs`` (after the ``bound``
    instance or class), defaults applied unless ``apply_defaults`` is false (``.map``
    must not map over a default)."""
    call_args = (*bound, *args)
    try:
        arguments = _signature(fn).bind(*call_args, **kwargs)
    except TypeError as error:
        raise ParameterBindError.from_bind_failure(fn, error, call_args, kwargs) from error
    if apply_defaults:
        arguments.apply_defaults()
    return _unwrap_field_defaults(dict(arguments.arguments))


def bind_named(
    fn: Callable[..., Any], parameters: dict[str, Any], bound: tuple[Any, ...] = ()
) -> dict[str, Any]:
    """A stored run's parameters (a name -> value mapping, as a run request or a schedule
    gave them) bound to ``fn`` (after the ``bound`` instance or class) with its defaults,
    as a direct call binds them; a required one missing, or a name ``fn`` does not take,
    is a ``ParameterBindError``."""
    args, kwargs = split_parameters(fn, parameters)
    known = _signature(fn).parameters
    kwargs.update({name: value for name, value in parameters.items() if name not in known})
    return call_parameters(fn, tuple(args), kwargs, bound=bound)


def with_defaults(fn: Callable[..., Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` (one run of a ``.map``, bound already) with ``fn``'s defaults for
    those it lacks; cheaper than binding again, for a map of many runs."""
    parameters = dict(parameters)
    for name, default in _defaults(fn).items():
        parameters.setdefault(name, default)
    return parameters


_defaults_of: dict[Callable[..., Any], dict[str, Any]] = {}


def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """``fn``'s parameters that have defaults, with their (unwrapped) default values, in
    signature order; read once per function, as a map asks for them once per run."""
    defaults = _defaults_of.get(fn)
    if defaults is None:
        parameters = _signature(fn).parameters.values()
        empty = inspect.Parameter.empty
        found = {param.name: param.default for param in parameters if param.default is not empty}
        defaults = _defaults_of[fn] = _unwrap_field_defaults(found)
    return defaults


def _unwrap_field_defaults(parameters: dict[str, Any]) -> dict[str, Any]:
    """A ``param: T = pydantic.Field(default=...)`` default as its value, as Prefect does.

    Only code that imported pydantic can have such a default, so pydantic is not imported
    here for the others."""
    fields = sys.modules.get("pydantic.fields")
    if fields is None:
        return parameters
    return {
        name: value.default if isinstance(value, fields.FieldInfo) else value
        for name, value in parameters.items()
    }


def unwrap_method(fn: Any) -> tuple[Callable[..., Any], MethodKind]:
    """The function inside a ``classmethod`` or ``staticmethod`` (``@flow`` written above
    one), and which of them it was."""
    if isinstance(fn, classmethod):
        return fn.__func__, "classmethod"
    if isinstance(fn, staticmethod):
        return fn.__func__, "staticmethod"
    return fn, None


class MethodBinding:
    """``__get__`` for Flow and Task, so that they work as methods.

    Reading one on an instance (or a classmethod one on its class) gives a copy bound to
    it, as a function gives a bound method; the original stays unbound, so two instances
    never share a binding (Prefect sets the instance on the shared function)."""

    fn: Callable[..., Any]
    method_kind: MethodKind = None
    bound: tuple[Any, ...] = ()

    def __get__(self, instance: Any, owner: Any) -> Any:
        if self.method_kind == "staticmethod" or self.bound:
            return self
        if self.method_kind == "classmethod":
            return self._bound_to(owner)
        if instance is None:
            return self
        return self._bound_to(instance)

    def _bound_to(self, target: Any) -> Any:
        bound = copy.copy(self)
        bound.bound = (target,)
        return bound

    @property
    def bound_parameter(self) -> str | None:
        """The name of the parameter the bound instance or class fills (``self``, ``cls``),
        which the run does not store; None when nothing is bound."""
        if not self.bound:
            return None
        return next(iter(_signature(self.fn).parameters), None)

    def keep_binding(self, other: Any) -> Any:
        """``other`` (a copy made by ``with_options``) bound as this one is."""
        other.method_kind = self.method_kind
        other.bound = self.bound
        return other


def parameters_to_store(parameters: dict[str, Any], bound_parameter: str | None) -> dict[str, Any]:
    """``parameters`` without the bound instance or class: the run's own parameters."""
    if bound_parameter is None:
        return parameters
    return {name: value for name, value in parameters.items() if name != bound_parameter}
