"""Checking a deployment's flow at load: that it imports, is a @flow, and takes the
deployment's parameters (names bound to its signature, values validated against its type
hints, as a run would validate them).
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

from gnomon.exceptions import ParameterTypeError


def import_flow(entrypoint: str) -> Any:
    """The flow ``entrypoint`` names, or a message saying why it cannot be had."""
    from gnomon.flows._flow_engine import load_flow

    target, _, name = entrypoint.rpartition(":")
    if target.endswith(".py") and not Path(target).is_file():
        return f"no such file {target}"
    try:
        # Fresh: on a reload the check must see the flow code as it is now.
        return load_flow(entrypoint, fresh=True)
    except AttributeError as error:
        if error.name not in name.split("."):
            return f"cannot import {target}: AttributeError: {error}"
        return f"{target} has no attribute {error.name!r}"
    except TypeError as error:
        if str(error).endswith("not a @flow"):
            return f"{name!r} in {target} is not a @flow"
        return f"cannot import {target}: TypeError: {error}"
    except (Exception, SystemExit) as error:  # whatever the module's top level raises
        return f"cannot import {target}: {type(error).__name__}: {error}"


def parameter_problems(flow: Any, parameters: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(field, value, message) for each parameter that does not fit the flow.

    Every problem is reported: names the signature does not have, required parameters not
    given, and the values of the others that fail the type hints. A name the flow does not
    have would be dropped silently at run time (even with ``**kwargs``), so it is an error.
    """
    signature = _signature(flow.fn)
    takes = ", ".join(signature.parameters) or "none"
    problems = [
        (
            f"parameters.{key}",
            value,
            f"flow {flow.name!r} has no parameter {key!r} (it takes: {takes})",
        )
        for key, value in parameters.items()
        if key not in signature.parameters
    ]
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    missing = [
        key
        for key, param in signature.parameters.items()
        if param.default is param.empty and param.kind not in variadic and key not in parameters
    ]
    problems += [
        (f"parameters.{key}", None, f"required by flow {flow.name!r} and not given")
        for key in missing
    ]
    if flow.should_validate_parameters:
        known = {key: value for key, value in parameters.items() if key in signature.parameters}
        problems += _type_problems(flow, known, set(missing))
    return problems


@functools.lru_cache(maxsize=256)
def _signature(function: Any) -> inspect.Signature:
    """``inspect.signature``, once per flow function: a config may hold thousands of
    deployments of one flow (inspect took 40 ms per thousand)."""
    return inspect.signature(function)


def _type_problems(
    flow: Any, parameters: dict[str, Any], missing: set[str]
) -> list[tuple[str, Any, str]]:
    """Problems of the values against the flow's type hints (missing ones already reported)."""
    try:
        flow.validate_parameters(parameters)
    except ParameterTypeError as error:
        return [
            (f"parameters.{key}", value, reason)
            for key, value, reason in error.problems
            if key not in missing
        ]
    except Exception as error:  # e.g. a type hint pydantic cannot build a validator for
        reason = f"cannot be checked against flow {flow.name!r}: {type(error).__name__}: {error}"
        return [("parameters", None, reason)]
    return []
