"""The control plane: what operators can do and see, shared by the CLI, the HTTP API and the
dashboard, so that they cannot drift apart.

``Operations`` (and ``FastOperations``, the CLI's fast path) carry out pause, resume, run,
cancel, retry, reload and tokens: each writes the store with its audit entry in the same
transaction, then nudges a running daemon. The views (``deployment_view``, ``run_view``,
...) are the JSON-able dicts the CLI's tables and ``--json`` and the API print, secrets
masked. The inputs (``parse_since``, ``check_parameters``, ...) read operator input once,
with one error for each bad value.

This is what other packages may use; the modules behind it are private. A name's module is
imported when the name is first asked for: ``gnomon --help`` and the fast commands load
only what they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnomon._lazy import lazy_names

if TYPE_CHECKING:
    from gnomon.control._artifacts import (
        MAX_ARTIFACTS,
        artifact_table,
        check_artifact_key,
        find_artifacts,
        progress_percent,
    )
    from gnomon.control._inputs import (
        MAX_BREACHES,
        MAX_COUNT,
        MAX_FIRES,
        MAX_PARAMETERS_BYTES,
        check_parameters,
        parse_expiry,
        parse_level,
        parse_run_cursor,
        parse_seconds,
        parse_since,
        parse_triggers,
        run_cursor_text,
        token_access,
    )
    from gnomon.control._listing import RunFilters, runs_page
    from gnomon.control._operations import (
        MAX_LIMIT,
        Conflict,
        FastOperations,
        InvalidParameters,
        Operations,
        ReloadNotAnswered,
        ReloadOutcome,
        UnknownName,
        check_name,
        check_run_id,
        hash_token,
    )
    from gnomon.control._variables import VariableOperations, secret_view, variable_view
    from gnomon.control._views import (
        RUN_ARTIFACTS,
        artifact_view,
        audit_view,
        breach_view,
        deployment_detail,
        deployment_view,
        fire_clock,
        iso,
        log_view,
        next_fires,
        run_detail,
        run_listing_view,
        run_text,
        run_view,
        token_view,
    )

__all__ = [
    "MAX_ARTIFACTS",
    "MAX_BREACHES",
    "MAX_COUNT",
    "MAX_FIRES",
    "MAX_LIMIT",
    "MAX_PARAMETERS_BYTES",
    "RUN_ARTIFACTS",
    "Conflict",
    "FastOperations",
    "InvalidParameters",
    "Operations",
    "ReloadNotAnswered",
    "ReloadOutcome",
    "RunFilters",
    "UnknownName",
    "VariableOperations",
    "artifact_table",
    "artifact_view",
    "audit_view",
    "breach_view",
    "check_artifact_key",
    "check_name",
    "check_parameters",
    "check_run_id",
    "deployment_detail",
    "deployment_view",
    "find_artifacts",
    "fire_clock",
    "hash_token",
    "iso",
    "log_view",
    "next_fires",
    "parse_expiry",
    "parse_level",
    "parse_run_cursor",
    "parse_seconds",
    "parse_since",
    "parse_triggers",
    "progress_percent",
    "run_cursor_text",
    "run_detail",
    "run_listing_view",
    "run_text",
    "run_view",
    "runs_page",
    "secret_view",
    "token_access",
    "token_view",
    "variable_view",
]

_WHERE = {
    "MAX_ARTIFACTS": "gnomon.control._artifacts",
    "RUN_ARTIFACTS": "gnomon.control._views",
    "artifact_view": "gnomon.control._views",
    "check_artifact_key": "gnomon.control._artifacts",
    "find_artifacts": "gnomon.control._artifacts",
    "artifact_table": "gnomon.control._artifacts",
    "progress_percent": "gnomon.control._artifacts",
    "Conflict": "gnomon.control._operations",
    "FastOperations": "gnomon.control._operations",
    "InvalidParameters": "gnomon.control._operations",
    "MAX_COUNT": "gnomon.control._inputs",
    "MAX_BREACHES": "gnomon.control._inputs",
    "MAX_FIRES": "gnomon.control._inputs",
    "MAX_LIMIT": "gnomon.control._operations",
    "MAX_PARAMETERS_BYTES": "gnomon.control._inputs",
    "Operations": "gnomon.control._operations",
    "ReloadNotAnswered": "gnomon.control._operations",
    "ReloadOutcome": "gnomon.control._operations",
    "RunFilters": "gnomon.control._listing",
    "UnknownName": "gnomon.control._operations",
    "VariableOperations": "gnomon.control._variables",
    "audit_view": "gnomon.control._views",
    "breach_view": "gnomon.control._views",
    "check_name": "gnomon.control._operations",
    "check_parameters": "gnomon.control._inputs",
    "check_run_id": "gnomon.control._operations",
    "deployment_detail": "gnomon.control._views",
    "deployment_view": "gnomon.control._views",
    "fire_clock": "gnomon.control._views",
    "hash_token": "gnomon.control._operations",
    "iso": "gnomon.control._views",
    "log_view": "gnomon.control._views",
    "next_fires": "gnomon.control._views",
    "parse_expiry": "gnomon.control._inputs",
    "parse_level": "gnomon.control._inputs",
    "parse_seconds": "gnomon.control._inputs",
    "parse_run_cursor": "gnomon.control._inputs",
    "parse_since": "gnomon.control._inputs",
    "parse_triggers": "gnomon.control._inputs",
    "run_cursor_text": "gnomon.control._inputs",
    "run_detail": "gnomon.control._views",
    "run_listing_view": "gnomon.control._views",
    "run_text": "gnomon.control._views",
    "run_view": "gnomon.control._views",
    "runs_page": "gnomon.control._listing",
    "secret_view": "gnomon.control._variables",
    "token_access": "gnomon.control._inputs",
    "token_view": "gnomon.control._views",
    "variable_view": "gnomon.control._variables",
}


__getattr__, __dir__ = lazy_names(__name__, _WHERE)
