"""Checking a run request's parameters against the parameter JSON schema stored with its
deployment.

A run request (``gnomon run --param``, ``POST /api/v1/deployments/{name}/runs``) is checked
without importing the flow: the flow check process computed the flow's parameter JSON
schema (pydantic's, from the signature and type hints) and the sync stored it with the
deployment. The check is of what the request adds: its names, and its values against the
JSON types of the schema; the deployment's configured parameters were checked when the
config was loaded, by the flow's own validation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from gnomon._secrets import MASK, is_secret_key, mask
from gnomon.flows import Problem, missing_names, unknown_names


def request_problems(
    schema: Mapping[str, Any], requested: Mapping[str, Any], configured: Mapping[str, Any]
) -> list[Problem]:
    """What is wrong with a run request's ``requested`` parameters, merged over the
    deployment's ``configured`` ones as the run would merge them, against the flow's
    stored parameter ``schema``.

    Values are checked against the schema's JSON types (``"5"`` is not an integer; string
    formats such as dates are not checked, the run's own validation reads them), so a
    request is refused before it is queued rather than failing when it runs. The value of
    a secret-named parameter is never shown: problems carry ``MASK`` instead.
    """
    flow_name = str(schema.get("title") or "?")
    properties: Mapping[str, Any] = schema.get("properties") or {}
    merged = {**configured, **requested}
    problems = unknown_names(flow_name, list(properties), requested)
    problems += missing_names(flow_name, list(schema.get("required") or ()), merged)
    known = {key: value for key, value in requested.items() if key in properties}
    if known:
        problems += list(_type_problems(schema, known))
    return [(field, _shown(field, value), message) for field, value, message in problems]


def _type_problems(schema: Mapping[str, Any], values: dict[str, Any]) -> Iterator[Problem]:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    # Required names were checked against the merged parameters; here only the values.
    validator = Draft202012Validator({**schema, "required": []})
    order = {key: index for index, key in enumerate(values)}
    errors = validator.iter_errors(values)
    for found in sorted(errors, key=lambda e: order.get(e.path[0] if e.path else "", -1)):
        # Into an anyOf the value's type fits (a list of the wrong items, not "not null").
        error = best_match([found])
        path = ".".join(str(part) for part in error.absolute_path)
        yield f"parameters.{path}", error.instance, _reason(error, path)


def _reason(error: Any, path: str) -> str:
    """What the value should have been, in words that never quote the value itself."""
    expected = error.validator_value
    if error.validator == "type":
        return f"expected {_types(expected)}"
    if error.validator in ("anyOf", "oneOf"):
        kinds = [_types(option["type"]) for option in expected if "type" in option]
        if kinds and len(kinds) == len(expected):
            return f"expected {' or '.join(kinds)}"
    if error.validator == "enum":
        return "expected one of " + ", ".join(json.dumps(choice) for choice in expected)
    if error.validator == "const":
        return f"expected {json.dumps(expected)}"
    if _shown(f"parameters.{path}", error.instance) is error.instance:
        return str(error.message)  # names the value, which may be shown
    return f"does not fit the flow's type hint ({error.validator})"


def _types(kind: str | list[str]) -> str:
    return " or ".join(kind) if isinstance(kind, list) else kind


def _shown(field: str, value: Any) -> Any:
    """``value`` as a problem may show it: ``MASK`` under a secret-named key, and secret
    fields inside it masked."""
    if any(is_secret_key(part) for part in field.split(".")[1:]) and value is not None:
        return MASK
    masked = mask(value)
    return value if masked == value else masked
