"""Deployments written back as the config's ``[[deployments]]`` tables: what a script that
serves them (``gnomon.serve``) or ``flow.deploy()`` tells the user to add to the config
file instead, in a form ``load_config`` reads back to the same deployments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import tomli_w

from gnomon.deployments._models import Deployment, Policies
from gnomon.deployments._specs import ScheduleEntry


def deployments_toml(deployments: Sequence[Deployment], defaults: Policies | None = None) -> str:
    """The ``[[deployments]]`` tables of ``deployments``; a policy is written only where it
    differs from ``defaults`` (the ``[daemon]`` values it would inherit, built-in ones by
    default), so the tables stay as short as the call that defined them."""
    inherited = (defaults or Policies()).policies()
    tables, notes = [], []
    for deployment in deployments:
        table, left_out = _table(deployment, inherited)
        tables.append(table)
        notes += [
            f"# deployment {deployment.name!r}: parameter {name!r} is None, which TOML cannot"
            " write: left out (the flow's default applies)"
            for name in left_out
        ]
    text = tomli_w.dumps({"deployments": tables})
    return "\n".join([*notes, text]) if notes else text


def _table(deployment: Deployment, inherited: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """One deployment's table, and the names of parameters left out (None has no TOML)."""
    table: dict[str, Any] = {"name": deployment.name, "flow": deployment.flow}
    table.update(_schedule_table(deployment))
    if deployment.description:
        table["description"] = deployment.description
    if deployment.tags:
        table["tags"] = list(deployment.tags)
    if deployment.paused is not None:
        table["paused"] = deployment.paused
    for name, value in deployment.policies().items():
        if value != inherited.get(name) and value is not None and value != {}:
            table[name] = _toml_value(getattr(deployment, name), value)
    parameters = {key: value for key, value in deployment.parameters.items() if value is not None}
    if parameters:
        table["parameters"] = parameters
    left_out = sorted(key for key, value in deployment.parameters.items() if value is None)
    return table, left_out


def _schedule_table(deployment: Deployment) -> dict[str, Any]:
    """The deployment's schedule as the file writes it: ``cron`` or ``interval``, or
    ``schedules``, and ``after``; its zone, anchor, bounds and DST choices where it states
    them."""
    table: dict[str, Any] = {}
    if deployment.schedules is not None:
        table["schedules"] = [
            _stated(spec, {str(spec.kind): spec.expression}) for spec in deployment.schedules
        ]
    elif deployment.specs:
        table[deployment.schedule_kind] = deployment.schedule
    if deployment.after is not None:
        table["after"] = [upstream.table() for upstream in deployment.upstreams]
    if deployment.timezone != "UTC":
        table["timezone"] = deployment.timezone
    for key in ("exclude", "only"):  # the calendars by name: their [[calendars]] say the rest
        if getattr(deployment, key):
            table[key] = [calendar.name for calendar in getattr(deployment, key)]
    return _stated(deployment, table)


def _stated(entry: Deployment | ScheduleEntry, table: dict[str, Any]) -> dict[str, Any]:
    """``table`` with the anchor, bounds and DST choices ``entry`` states, and for a
    ``schedules`` entry its own parameters (None has no TOML: left out)."""
    for key in ("anchor", "active_from", "active_until"):
        if getattr(entry, key) is not None:
            table[key] = getattr(entry, key)
    if entry.dst is not None:
        table["dst"] = entry.dst.table()
    if isinstance(entry, ScheduleEntry) and entry.parameters:
        table["parameters"] = {key: val for key, val in entry.parameters.items() if val is not None}
    return table


def _toml_value(value: Any, stored: Any) -> Any:
    """A policy as the file writes it: durations as "90s", "1h 30m", the rest as stored."""
    if isinstance(value, timedelta):
        from gnomon.scheduling import format_duration

        return format_duration(value)
    return stored
