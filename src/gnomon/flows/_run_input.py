"""The input a paused or suspended flow run waits for: Prefect's ``RunInput``.

``wait_for_input`` takes a ``RunInput`` subclass, any pydantic model (made a ``RunInput``
subclass, so what the flow gets is an instance of its own model), or a plain type such as
``int`` or ``list[str]`` (wrapped in a model of one field, ``value``, as Prefect does; the
flow gets the value). The model's JSON schema is stored with the pause: the CLI, the API and
the dashboard check an operator's input against it without importing the flow, and the
flow validates it again with the model itself (custom validators run there, as in Prefect).
"""

from __future__ import annotations

from inspect import isclass
from typing import Any, ClassVar

import pydantic


class RunInput(pydantic.BaseModel):
    """A flow run's input, as Prefect's ``prefect.input.RunInput``: a pydantic model whose
    fields are what an operator fills in to resume the run. Unknown fields are refused."""

    model_config: ClassVar[pydantic.ConfigDict] = pydantic.ConfigDict(extra="forbid")
    _description: ClassVar[str | None] = None

    @classmethod
    def with_initial_data(cls, description: str | None = None, **kwargs: Any) -> type[RunInput]:
        """A subclass whose fields default to ``kwargs`` (what the resume form shows
        filled in), with ``description`` shown above the form (Markdown in Prefect)."""
        fields: dict[str, Any] = {}
        for key, value in kwargs.items():
            field = cls.model_fields.get(key)
            fields[key] = (field.annotation if field else type(value), value)
        model: type[RunInput] = pydantic.create_model(cls.__name__, __base__=cls, **fields)
        if description is not None:
            model._description = description
        return model


class AutomaticRunInput(RunInput):
    """A plain type's input: one field, ``value``, which is what the flow gets."""

    value: Any = None


def input_model(wait_for_input: Any) -> type[RunInput]:
    """The ``RunInput`` subclass a ``wait_for_input`` argument stands for."""
    if isclass(wait_for_input) and issubclass(wait_for_input, RunInput):
        return wait_for_input
    if isclass(wait_for_input) and issubclass(wait_for_input, pydantic.BaseModel):
        return type(f"{wait_for_input.__name__}RunInput", (RunInput, wait_for_input), {})
    prefix = str(getattr(wait_for_input, "__name__", getattr(wait_for_input, "_name", "")))
    model: type[RunInput] = pydantic.create_model(
        f"{prefix.lower()}AutomaticRunInput",
        __base__=AutomaticRunInput,
        value=(wait_for_input, ...),
    )
    return model


def input_schema(model: type[RunInput]) -> dict[str, Any]:
    """The JSON schema stored with the pause (checked at resume time)."""
    return model.model_json_schema(by_alias=True)


def loaded_input(model: type[RunInput], value: dict[str, Any] | None) -> Any:
    """What the flow's pause call returns: the model made from the stored input (a
    ``ValidationError`` if the model's own validators refuse it), or its ``value`` for a
    plain type."""
    instance = model(**(value or {}))
    if isinstance(instance, AutomaticRunInput):
        return instance.value
    return instance


def input_problems(schema: dict[str, Any], value: dict[str, Any]) -> list[str]:
    """What is wrong with ``value`` as input for a pause that waits for ``schema``, each
    problem naming the field and the value, in Prefect's words ("Validation failed for
    field 'approved'. Failure reason: 'maybe' is not of type 'boolean'")."""
    from jsonschema import Draft202012Validator

    problems = []
    for error in sorted(Draft202012Validator(schema).iter_errors(value), key=str):
        path = ".".join(str(part) for part in error.absolute_path)
        where = f" for field {path!r}" if path else ""
        problems.append(f"Validation failed{where}. Failure reason: {error.message}")
    return problems
