"""The flow check's own process: importing the deployments' flows, checking their parameters
(names bound to the signature, values validated against the type hints, as a run would
validate them), and computing each flow's parameter JSON schema.

The config loader (``deployments/_flowcheck.py``) runs ``python -m gnomon.flows._check
PARENT_PID``, so that a flow module's top-level code never runs in the daemon or the command
line: a module that loops forever, calls ``os._exit`` or crashes ends only this process. It
lives with the flows, not the deployments, so that starting it imports no more than the
flows need. The protocol:

- stdout is the result channel (what the modules print goes to stderr instead);
  ``{"ready": pid}`` once gnomon is imported, then one JSON line per module:
  ``{"module": target, "flows": {entrypoint: result}}``, where a result is ``{"error":
  message}`` for a flow that cannot be had, else ``{"schema": ..., "problems": [[index,
  field, message], ...]}`` with ``index`` the parameter set the problem is about.
- stdin, read after ``ready``: a pickled list of ``(target, {entrypoint: [parameters,
  ...]})``, the modules in the order to check them. Pickle because TOML values include
  dates; only the loader writes it, and nothing read back from this process is unpickled.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import pickle
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from gnomon._lifeline import die_with_parent
from gnomon.exceptions import ParameterTypeError
from gnomon.flows._params import Problem, missing_names, unknown_names

Request = list[tuple[str, dict[str, list[dict[str, Any]]]]]


def main(argv: list[str]) -> int:
    """Check the modules the loader sends, answering module by module."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # a module's prints must not reach the channel
    # SIGKILL: a module may install a handler for SIGTERM.
    die_with_parent(int(argv[0]), signal.SIGKILL)
    from gnomon.flows._flow_engine import load_flow  # noqa: F401  (warm before the request)

    _answer(channel, {"ready": os.getpid()})
    request: Request = pickle.load(sys.stdin.buffer)
    for target, flows in request:
        results = {entrypoint: check_flow(entrypoint, sets) for entrypoint, sets in flows.items()}
        _answer(channel, {"module": target, "flows": results})
    return 0


def _answer(channel: TextIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, default=str) + "\n")
    channel.flush()


def check_flow(entrypoint: str, parameter_sets: list[dict[str, Any]]) -> dict[str, Any]:
    """Import ``entrypoint`` and check each parameter set against it; its schema."""
    flow = import_flow(entrypoint)
    if isinstance(flow, str):
        return {"error": flow}
    problems = [
        [index, field, message]
        for index, parameters in enumerate(parameter_sets)
        for field, _value, message in parameter_problems(flow, parameters)
    ]
    try:
        schema: dict[str, Any] | None = flow.parameter_schema()
    except Exception:  # a type hint pydantic cannot build a model for: reported above
        schema = None
    return {"schema": schema, "problems": problems}


def import_flow(entrypoint: str) -> Any:
    """The flow ``entrypoint`` names, or a message saying why it cannot be had."""
    from gnomon.flows._flow_engine import load_flow

    target, _, name = entrypoint.rpartition(":")
    if target.endswith(".py") and not Path(target).is_file():
        return f"no such file {target}"
    try:
        return load_flow(entrypoint)
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


def parameter_problems(flow: Any, parameters: dict[str, Any]) -> list[Problem]:
    """(field, value, message) for each parameter that does not fit the flow.

    Every problem is reported: names the signature does not have, required parameters not
    given, and the values of the others that fail the type hints.
    """
    signature = _signature(flow.fn)
    takes = [name for name in signature.parameters if name != flow.bound_parameter]
    problems = unknown_names(flow.name, takes, parameters)
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    required = [
        key
        for key, param in signature.parameters.items()
        if key in takes and param.default is param.empty and param.kind not in variadic
    ]
    missing = missing_names(flow.name, required, parameters)
    problems += missing
    if flow.should_validate_parameters:
        known = {key: value for key, value in parameters.items() if key in signature.parameters}
        absent = {field.removeprefix("parameters.") for field, _, _ in missing}
        problems += _type_problems(flow, known, absent)
    return problems


@functools.lru_cache(maxsize=256)
def _signature(function: Any) -> inspect.Signature:
    """``inspect.signature``, once per flow function: a config may hold thousands of
    deployments of one flow (inspect took 40 ms per thousand)."""
    return inspect.signature(function)


def _type_problems(flow: Any, parameters: dict[str, Any], missing: set[str]) -> list[Problem]:
    """Problems of the values against the flow's type hints (missing ones already reported)."""
    try:
        flow.validate_parameters(parameters)
    except ParameterTypeError as error:
        return [
            (f"parameters.{key}", value, reason)
            for key, value, reason in error.problems
            if key not in missing and key != flow.bound_parameter
        ]
    except Exception as error:  # e.g. a type hint pydantic cannot build a validator for
        reason = f"cannot be checked against flow {flow.name!r}: {type(error).__name__}: {error}"
        return [("parameters", None, reason)]
    return []


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
