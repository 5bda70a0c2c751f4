"""Binding call arguments to parameters and validating them from the type hints.

Validation is pydantic's lax mode, as in Prefect: ``"21"`` becomes ``21`` for an ``int``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from gnomon.exceptions import ParameterTypeError, SignatureMismatchError

Problem = tuple[str, Any, str]  # (field, value, message), as the config loader reports them


def unknown_names(flow_name: str, takes: Sequence[str], given: Mapping[str, Any]) -> list[Problem]:
    """A problem for each name in ``given`` that the flow does not take.

    Such a name would be dropped silently at run time (even with ``**kwargs``), so the
    config's flow check and run requests both refuse it.
    """
    listed = ", ".join(takes) or "none"
    return [
        (
            f"parameters.{key}",
            value,
            f"flow {flow_name!r} has no parameter {key!r} (it takes: {listed})",
        )
        for key, value in given.items()
        if key not in takes
    ]


def missing_names(flow_name: str, required: Sequence[str], given: Collection[str]) -> list[Problem]:
    """A problem for each parameter the flow requires that ``given`` lacks."""
    return [
        (f"parameters.{key}", None, f"required by flow {flow_name!r} and not given")
        for key in required
        if key not in given
    ]


def bind_parameters(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Map positional and keyword arguments to parameter names (defaults not filled in)."""
    signature = inspect.signature(fn)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise SignatureMismatchError(f"{fn.__qualname__}(): {error}") from error
    return dict(bound.arguments)


def call_with_parameters(fn: Callable[..., Any], parameters: dict[str, Any]) -> Any:
    """Call ``fn`` with a name -> value mapping, respecting positional-only and *args."""
    args, kwargs = split_parameters(fn, parameters)
    return fn(*args, **kwargs)


def split_parameters(
    fn: Callable[..., Any], parameters: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, param in _signature(fn).parameters.items():
        if name not in parameters:
            continue
        value = parameters[name]
        if param.kind is param.POSITIONAL_ONLY:
            args.append(value)
        elif param.kind is param.VAR_POSITIONAL:
            args.extend(value)
        elif param.kind is param.VAR_KEYWORD:
            kwargs.update(value)
        else:
            kwargs[name] = value
    return args, kwargs


_signatures: dict[Callable[..., Any], inspect.Signature] = {}


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    signature = _signatures.get(fn)
    if signature is None:
        signature = _signatures[fn] = inspect.signature(fn)
    return signature


class ParameterValidator:
    """Validates a flow's parameters against its signature, built once per flow."""

    def __init__(self, fn: Callable[..., Any], flow_name: str) -> None:
        self.flow_name = flow_name
        self._signature = _signature(fn)
        self._module = fn.__module__
        self._model: Any = None
        self._field_names: dict[str, str] = {}

    def validate(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Coerced parameters, or ParameterTypeError naming each bad parameter and value."""
        from pydantic import ValidationError

        model = self._model or self._build_model()
        try:
            validated = model.model_validate(parameters)
        except ValidationError as error:
            problems = []
            for detail in error.errors():
                loc = detail["loc"]
                name = str(loc[0]) if loc else "?"
                # A field inside a model is named too ("vendor: Field required").
                inside = ".".join(str(part) for part in loc[1:])
                message = f"{inside}: {detail['msg']}" if inside else detail["msg"]
                problems.append((name, parameters.get(name, "<missing>"), message))
            raise ParameterTypeError(self.flow_name, problems) from None
        return {name: getattr(validated, self._field_names[name]) for name in parameters}

    def json_schema(self, typed: bool = True) -> dict[str, Any]:
        """The parameters' JSON schema (pydantic's, properties named by parameter, titled
        with the flow's name). A type with no JSON schema (an arbitrary class) accepts any
        value; so does every parameter unless ``typed``."""
        import warnings

        from pydantic.json_schema import GenerateJsonSchema

        class _Lenient(GenerateJsonSchema):
            def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> Any:
                return {}

        model = self._model or self._build_model()
        with warnings.catch_warnings():  # a default JSON cannot hold is left out, silently
            warnings.simplefilter("ignore")
            schema: dict[str, Any] = model.model_json_schema(
                by_alias=True, schema_generator=_Lenient
            )
        schema["title"] = self.flow_name
        if not typed:
            schema["properties"] = {name: {} for name in schema.get("properties", {})}
            schema.pop("$defs", None)
        return schema

    def _build_model(self) -> Any:
        from pydantic import ConfigDict, Field, create_model

        # Fields get neutral names with the parameter as alias, so that a parameter called
        # `json` or `model_config` cannot clash with pydantic's own attributes.
        fields: dict[str, Any] = {}
        for index, (name, param) in enumerate(self._signature.parameters.items()):
            annotation = Any if param.annotation is param.empty else param.annotation
            if param.kind is param.VAR_POSITIONAL:
                annotation = tuple[annotation, ...]  # type: ignore[valid-type]
            elif param.kind is param.VAR_KEYWORD:
                annotation = dict[str, annotation]  # type: ignore[valid-type]
            default = ... if param.default is param.empty else param.default
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                default = None
            field_name = self._field_names[name] = f"p{index}"
            fields[field_name] = (annotation, Field(default, alias=name))
        # The flow's module resolves string annotations (``from __future__ import annotations``).
        self._model = create_model(
            f"{self.flow_name}_parameters",
            __config__=ConfigDict(arbitrary_types_allowed=True, protected_namespaces=()),
            __module__=self._module,
            **fields,
        )
        return self._model
