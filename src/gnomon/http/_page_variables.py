"""The variables page: every variable with its value and tags, and every secret's name
(never its value), each with when it last changed and a link to its audit entries. Read
only: variables and secrets are changed with ``gnomon variable`` / ``gnomon secret`` or the
API (admin tokens), where each change is audited."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import Response

from gnomon.control import secret_view, variable_view
from gnomon.http._dashboard import page


def audit_link(name: str) -> str:
    """The audit page's entries about the variable or secret ``name``."""
    return "/audit?" + urlencode({"target": name})


def add_routes(app: FastAPI) -> None:
    @app.get("/variables", include_in_schema=False)
    def variables_page(request: Request) -> Response:
        store = request.app.state.store
        variables = [variable_view(row) for row in store.read_variables()]
        secrets = [secret_view(row) for row in store.read_secrets()]
        for view in variables + secrets:
            view["audit_href"] = audit_link(view["name"])
        return page(
            request, "variables.html", current="variables", variables=variables, secrets=secrets
        )
