"""The audit page: who changed what, when, why and from where, newest first, filtered by
actor, action and target; a hundred entries a page, the next older page found by a cursor
(the time and id of the page's last entry), never by counting."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import Response

from gnomon._text import quoted
from gnomon.control import audit_view
from gnomon.http._dashboard import page
from gnomon.store import AuditAction

if TYPE_CHECKING:
    from collections.abc import Collection

    from gnomon.store.rows import AuditEntry

PER_PAGE = 100
MAX_FILTER = 200  # characters: far beyond any actor, target or cursor
# Actions whose target is a deployment's name, and those whose target is a run id.
ON_DEPLOYMENT = frozenset(
    {AuditAction.PAUSE, AuditAction.RESUME, AuditAction.TAKEOVER, AuditAction.RELEASE}
)
ON_RUN = frozenset({AuditAction.RUN, AuditAction.RETRY, AuditAction.CANCEL})
# Actions on a variable or a secret, and where the variables page shows it.
ON_VARIABLES_PAGE = {
    AuditAction.VARIABLE_SET: "variable",
    AuditAction.VARIABLE_RM: "variable",
    AuditAction.SECRET_SET: "secret",
    AuditAction.SECRET_RM: "secret",
}


def add_routes(app: FastAPI) -> None:
    @app.get("/audit", include_in_schema=False)
    def audit_page(
        request: Request,
        actor: str = "",
        action: str = "",
        target: str = "",
        before: str = "",
    ) -> Response:
        problems = [
            f"The {label} must be at most {MAX_FILTER} printable characters."
            for label, value in (("actor", actor), ("target", target), ("page link", before))
            if len(value) > MAX_FILTER or not value.isprintable()
        ]
        chosen = _action(action, problems)
        refused = bool(problems)  # a filter that cannot be read: no entries, rather than all
        cursor = _cursor(before, problems) if before and not refused else None
        store = request.app.state.store
        rows: list[AuditEntry] = []
        if not refused:
            rows = store.read_audit(
                limit=PER_PAGE + 1,
                before=cursor,
                actor=actor or None,
                action=chosen,
                target=target or None,
            )
        filters = {"actor": actor, "action": action, "target": target}
        kept = {key: value for key, value in filters.items() if value}
        older = None
        if len(rows) > PER_PAGE:
            rows = rows[:PER_PAGE]
            older = "/audit?" + urlencode({**kept, "before": cursor_text(rows[-1])})
        names = set(store.read_deployment_names())
        return page(
            request,
            "audit.html",
            current="audit",
            entries=[audit_entry(row, names) for row in rows],
            actions=list(AuditAction),
            actor=actor,
            action=action,
            target=target,
            newest=("/audit?" + urlencode(kept)) if before else None,
            older=older,
            problems=problems,
        )


def audit_entry(row: AuditEntry, deployments: Collection[str]) -> dict[str, Any]:
    """An audit entry as the pages show it: ``audit_view`` (its detail masked), the client's
    address apart from the rest of the detail, and where its target's page is."""
    view = audit_view(row)
    detail = dict(view["detail"])
    view["client"] = detail.pop("client", None)
    view["detail"] = detail
    target = row.target
    view["target_href"] = None
    if target and row.action in ON_VARIABLES_PAGE:
        view["target_href"] = f"/variables#{ON_VARIABLES_PAGE[row.action]}-{target}"
    elif target and (row.action in ON_DEPLOYMENT or target in deployments):
        view["target_href"] = f"/deployments/{target}"
    elif target and row.action in ON_RUN:
        view["target_href"] = f"/runs/{target}"
    return view


def cursor_text(row: AuditEntry) -> str:
    """The cursor of the page after ``row``: its time (to the microsecond) and its id."""
    return f"{row.timestamp.isoformat()},{row.id}"


def _cursor(text: str, problems: list[str]) -> tuple[datetime, int] | None:
    at, _, entry_id = text.rpartition(",")
    try:
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or not entry_id.isdigit() or len(entry_id) > 18:
            raise ValueError(text)
    except ValueError:
        problems.append("That page link is not valid; showing the newest entries instead.")
        return None
    return when, int(entry_id)


def _action(text: str, problems: list[str]) -> AuditAction | None:
    if not text:
        return None
    try:
        return AuditAction(text)
    except ValueError:
        choices = ", ".join(AuditAction)
        problems.append(f"There is no action {quoted(text, 40)}; the actions are {choices}.")
        return None
