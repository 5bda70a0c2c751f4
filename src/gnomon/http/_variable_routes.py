"""The ``/api/v1`` routes of variables and secrets, over ``VariableOperations`` (what
``gnomon variable`` and ``gnomon secret`` call).

Access (``_auth.required_access``): reading needs a read token; setting and removing a
variable or a secret needs an admin token, as a config change does, since both change what
flows do. A secret's value goes in (the body of its PUT) and never comes out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from gnomon.control import VariableOperations, secret_view, variable_view
from gnomon.exceptions import SecretsKeyError
from gnomon.http._auth import request_actor
from gnomon.http._params import ApiError
from gnomon.http._schemas import error_responses

if TYPE_CHECKING:
    from gnomon.store import ControlStore

VariablePath = Annotated[
    str,
    Path(pattern=r"^[a-z0-9_-]+$", max_length=255, description="A variable's name."),
]
SecretPath = Annotated[
    str,
    Path(pattern=r"^[a-z0-9-]+$", max_length=255, description="A secret's name."),
]


class VariableInfo(BaseModel):
    name: str
    value: JsonValue
    tags: list[str]
    created: str
    updated: str


class SecretInfo(BaseModel):
    """A secret as listed: never its value."""

    name: str
    created: str
    updated: str
    updated_by: str | None


class VariableRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: JsonValue = Field(description="Any JSON value, at most 5,000 characters as JSON.")
    tags: Annotated[list[Annotated[str, Field(max_length=255)]], Field(max_length=100)] = []
    overwrite: bool = Field(False, description="Replace the variable if it exists (else 409).")


class SecretRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: JsonValue = Field(description="A string, or any JSON value; never shown again.")
    overwrite: bool = Field(False, description="Replace the secret if it exists (else 409).")


router = APIRouter(prefix="/api/v1", responses=error_responses(400, 401, 403, 422))


def operations(request: Request) -> VariableOperations:
    """Variables and secrets, changed by the request's actor (its token's name)."""
    store: ControlStore = request.app.state.store
    return VariableOperations(store, request_actor(request.scope))


Ops = Annotated[VariableOperations, Depends(operations)]


@router.get("/variables", response_model=list[VariableInfo], tags=["variables"])
def list_variables(ops: Ops) -> list[dict[str, Any]]:
    """Every variable, by name: value, tags, when created and last changed."""
    return [variable_view(row) for row in ops.store.read_variables()]


@router.get(
    "/variables/{name}",
    response_model=VariableInfo,
    responses=error_responses(404),
    tags=["variables"],
)
def show_variable(name: VariablePath, ops: Ops) -> dict[str, Any]:
    """One variable."""
    return variable_view(ops.variable(name))


@router.put(
    "/variables/{name}",
    response_model=VariableInfo,
    responses={201: {"model": VariableInfo, "description": "Created."}, **error_responses(409)},
    tags=["variables"],
)
def set_variable(
    name: VariablePath, body: VariableRequest, ops: Ops, response: Response
) -> dict[str, Any]:
    """Create a variable (201), or replace its value and tags with ``overwrite`` (200);
    409 if it exists and ``overwrite`` is false."""
    replaced = ops.set_variable(name, body.value, body.tags, body.overwrite)
    response.status_code = 200 if replaced else 201
    return variable_view(ops.variable(name))


@router.delete(
    "/variables/{name}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404),
    tags=["variables"],
)
def remove_variable(name: VariablePath, ops: Ops) -> Response:
    """Remove a variable (the audit log keeps its last value)."""
    ops.remove_variable(name)
    return Response(status_code=204)


@router.get("/secrets", response_model=list[SecretInfo], tags=["secrets"])
def list_secrets(ops: Ops) -> list[dict[str, Any]]:
    """Every secret's name, when it was set and by whom; never a value."""
    return [secret_view(row) for row in ops.store.read_secrets()]


@router.put(
    "/secrets/{name}",
    response_model=SecretInfo,
    responses={
        201: {"model": SecretInfo, "description": "Created."},
        **error_responses(409, 503),
    },
    tags=["secrets"],
)
def set_secret(
    name: SecretPath, body: SecretRequest, ops: Ops, response: Response
) -> dict[str, Any]:
    """Store a secret, encrypted with the daemon's key (201), or replace it with
    ``overwrite`` (200); 409 if it exists and ``overwrite`` is false, 503 if the daemon has
    no usable key for secrets."""
    try:
        replaced = ops.set_secret(name, body.value, body.overwrite)
    except SecretsKeyError as error:
        raise ApiError(503, str(error)) from None
    response.status_code = 200 if replaced else 201
    row = ops.store.read_secret(name)
    if row is None:
        raise ApiError(404, f'secret "{name}" was removed meanwhile')
    return secret_view(row)


@router.delete(
    "/secrets/{name}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404),
    tags=["secrets"],
)
def remove_secret(name: SecretPath, ops: Ops) -> Response:
    """Remove a secret."""
    ops.remove_secret(name)
    return Response(status_code=204)
