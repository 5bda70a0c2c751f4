"""``flow.to_deployment()`` and ``flow.deploy()``: Prefect 3's arguments turned into one of
gnomon's deployments, the ``[[deployments]]`` table the config file would hold.

Prefect's arguments that have a meaning here are taken (``cron``, ``interval`` in seconds,
as a timedelta or in gnomon's "15m", ``rrule``; ``schedule``/``schedules`` objects with
``cron``, ``interval`` or ``rrule`` and their own ``parameters``, such as
``gnomon.schedules.Cron``: several become the deployment's ``schedules = [...]``;
``paused``, ``parameters``, ``tags``,
``description``, ``concurrency_limit``), as are gnomon's policies (``overlap``,
``catchup``, ``timeout``, ``retries``, ``jitter``, ...) and ``timezone``. Those that
name something gnomon does not have (work pools, event triggers, a deployment version)
raise ``TypeError`` naming what to use instead, never silently ignored.

Above the daemon in the layers (a top-level module): ``Flow.to_deployment`` reaches it
through the ``gnomon`` package's face when called, so ``flows`` imports nothing above it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from gnomon.exceptions import DeployNotSupported

if TYPE_CHECKING:
    from gnomon.deployments import DaemonConfig, Deployment
    from gnomon.flows import Flow

# Prefect's arguments gnomon has no use for, with what to do instead.
REFUSED = {
    "triggers": "gnomon has no event triggers: schedule the deployment with cron= or interval=,"
    " or start runs with `gnomon run NAME`",
    "work_pool_name": "gnomon has no work pools: runs go to the daemon's worker pool"
    " ([daemon] workers, or serve(limit=N))",
    "work_queue_name": "gnomon has no work queues: runs go to the daemon's worker pool",
    "job_variables": "gnomon has no work pools or job variables: set what the run needs in"
    " the environment of the process that serves it",
    "image": "gnomon runs flows on this machine, not in images: use flow.serve()",
    "build": "gnomon builds no images: use flow.serve()",
    "push": "gnomon pushes no images: use flow.serve()",
    "version": "gnomon's deployments have no version of their own: set @flow(version=...),"
    " which every run records",
    "version_type": "gnomon's deployments have no version of their own: set @flow(version=...)",
    "_sla": "gnomon has no SLAs yet",
}
# Prefect's arguments accepted and meaning nothing more here.
IGNORED = ("entrypoint_type", "print_next_steps", "ignore_warnings")
GNOMON_FIELDS = ("timezone", "anchor")


@dataclass(frozen=True)
class RunnerDeployment:
    """A flow with a name and a schedule, ready to serve (``gnomon.serve``): what Prefect's
    ``flow.to_deployment()`` returns. ``table`` is its ``[[deployments]]`` entry as the
    config file would write it, before ``[daemon]`` fills in the policies it leaves out."""

    name: str
    flow: Flow[..., Any]
    table: dict[str, Any]

    @property
    def entrypoint(self) -> str:
        return str(self.table["flow"])

    @staticmethod
    def of(flow: Flow[..., Any], name: str, **options: Any) -> RunnerDeployment:
        """``flow.to_deployment(name, ...)``, for ``Flow``, which reaches it by the
        ``gnomon`` face (see the module's docstring)."""
        return to_deployment(flow, name, **options)

    @staticmethod
    def refuse_deploy(flow: Flow[..., Any], name: str, **options: Any) -> None:
        """``flow.deploy(name, ...)``: raises ``DeployNotSupported``."""
        deploy(flow, name, **options)

    @staticmethod
    def serve_flow(flow: Flow[..., Any], name: str | None = None, **options: Any) -> None:
        """``flow.serve(name, ...)``: see ``gnomon.serve``."""
        from gnomon._serving import serve_flow

        serve_flow(flow, name, **options)

    def deployment(self, daemon: DaemonConfig | None = None) -> Deployment:
        """The deployment, with the policies it leaves out from ``daemon`` (the config's
        ``[daemon]``); ValueError naming the field and value if one is not valid."""
        from pydantic import ValidationError

        from gnomon.deployments import Deployment

        context = {"daemon": daemon} if daemon is not None else None
        try:
            return Deployment.model_validate(self.table, context=context)
        except ValidationError as error:
            problems = "; ".join(_problem(detail, self.table) for detail in error.errors())
            raise ValueError(f"deployment {self.name!r}: {problems}") from None


def to_deployment(flow: Flow[..., Any], name: str, **options: Any) -> RunnerDeployment:
    """``flow.to_deployment(name, ...)``: see the module's docstring for the arguments."""
    options = _accepted(options, "to_deployment")
    schedule = _schedule(name, options)
    table: dict[str, Any] = {"name": name, "flow": _entrypoint(flow), **schedule}
    parameters = dict(options.pop("parameters", None) or {})
    _check_parameters(flow, name, parameters)
    for index, spec in enumerate(schedule.get("schedules", [])):
        if spec.get("parameters"):  # merged over the deployment's for the spec's runs
            where = f"schedules[{index}]"
            _check_parameters(flow, name, {**parameters, **spec["parameters"]}, where)
    if parameters:
        table["parameters"] = parameters
    if options.get("tags"):
        table["tags"] = _tags(name, options.pop("tags"))
    description = options.pop("description", None) or flow.description
    if description:
        table["description"] = description
    if options.get("paused") is not None:
        table["paused"] = options.pop("paused")
    _concurrency(options, table)
    table.update({key: value for key, value in options.items() if value is not None})
    deployment = RunnerDeployment(name, flow, table)
    deployment.deployment()  # every problem now, where the call is, not when serving
    return deployment


def deploy(flow: Flow[..., Any], name: str, **options: Any) -> None:
    """``flow.deploy()``: always raises, with the table to add to the config instead."""
    from gnomon.deployments import deployments_toml

    for option in ("work_pool_name", "work_queue_name", "job_variables", "image", "build", "push"):
        options.pop(option, None)  # deploy's own: the advice below replaces them
    toml = deployments_toml([to_deployment(flow, name, **options).deployment()])
    raise DeployNotSupported(
        "gnomon has no work pools to deploy to: its daemon schedules the deployments of"
        " its config file. Add this to the config file (gnomon.toml), then run"
        " `gnomon deployments apply` (or `gnomon daemon reload` while the daemon runs);"
        f" or serve it from this script with flow.serve(...):\n\n{toml}"
    )


def _accepted(options: dict[str, Any], call: str) -> dict[str, Any]:
    """``options`` without Prefect's arguments that mean nothing here; TypeError for those
    naming what gnomon lacks (when given a value) and for unknown ones."""
    from gnomon.deployments import Policies

    known = {
        *REFUSED,
        *IGNORED,
        *GNOMON_FIELDS,
        *Policies.model_fields,
        "interval",
        "cron",
        "rrule",
        "schedule",
        "schedules",
        "paused",
        "parameters",
        "tags",
        "description",
        "concurrency_limit",
        "enforce_parameter_schema",
    }
    for option, value in options.items():
        if option not in known:
            raise TypeError(f"{call}() got an unexpected keyword argument {option!r}")
        if option in REFUSED and value not in (None, False, {}, []):
            raise TypeError(f"{call}({option}=...): {REFUSED[option]}")
    if options.get("enforce_parameter_schema") is False:
        raise TypeError(
            f"{call}(enforce_parameter_schema=False): gnomon always checks a run's parameters"
            " against the flow's; use @flow(validate_parameters=False) to take any values"
        )
    return {
        key: value
        for key, value in options.items()
        if key not in REFUSED and key not in IGNORED and key != "enforce_parameter_schema"
    }


def _schedule(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The schedules of ``options`` (cron, interval, rrule, schedule, schedules) as the
    table's fields: one plain cron or interval as its ``cron`` or ``interval`` key (with a
    schedule object's timezone and anchor), anything else as ``schedules = [...]``."""
    given = [
        key
        for key in ("interval", "cron", "rrule", "schedule", "schedules")
        if options.get(key) is not None
    ]
    if len(given) > 1:
        raise ValueError(
            f"deployment {name!r}: {' and '.join(given)} are given; pass one of interval, cron,"
            " rrule, schedule or schedules, as Prefect takes them (several schedules: a list,"
            " e.g. cron=[...] or schedules=[Cron(...), Interval(...)])"
        )
    specs = [{"cron": text} for text in _several(options.pop("cron", None), str)]
    specs += [{"interval": _interval(value)} for value in _several(options.pop("interval", None))]
    specs += [{"rrule": text} for text in _several(options.pop("rrule", None), str)]
    objects = [*_several(options.pop("schedule", None)), *_several(options.pop("schedules", None))]
    specs += [_schedule_object(each) for each in objects]
    if not specs:
        raise ValueError(
            f"deployment {name!r} has no schedule: gnomon's deployments fire on one; pass"
            " cron= (a crontab expression), interval= (seconds, a timedelta, or '15m') or"
            " rrule= (an RFC 5545 rule)"
        )
    active = [spec for spec in specs if spec.pop("active", True) is not False]
    if not active and options.get("paused") is None:
        options["paused"] = True  # no active schedule: none fires
    specs = active or specs
    if len(specs) == 1 and not {"rrule", "parameters"} & specs[0].keys():
        return specs[0]
    # An interval's fires ignore the zone (its anchor has one); a cron's and an rrule's
    # are the deployment's, which is one.
    zones = {spec.pop("timezone", None) for spec in specs if "interval" not in spec} - {None}
    for spec in specs:
        spec.pop("timezone", None)
    if len(zones) > 1:
        listed = ", ".join(sorted(zones))
        raise ValueError(
            f"deployment {name!r} has schedules in several time zones ({listed}): a gnomon"
            " deployment has one timezone; serve one deployment per zone"
        )
    zone = {"timezone": zones.pop()} if zones else {}
    return {"schedules": specs, **zone}


def _several(value: Any, single: type | tuple[type, ...] = (str, int, float, timedelta)) -> list:
    """``value`` as a list: None is none, one value (or schedule object) is one."""
    if value is None:
        return []
    if isinstance(value, single) or not isinstance(value, Iterable) or isinstance(value, Mapping):
        return [value]
    return list(value)


def _interval(value: Any) -> str:
    """An interval as the config writes it: seconds or a timedelta as "1h 30m"; gnomon's
    own text ("15m") as it is."""
    from gnomon.scheduling import format_duration

    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ValueError(f"interval {value!r}: must be seconds, a timedelta or text like '15m'")
    every = value if isinstance(value, timedelta) else timedelta(seconds=value)
    return format_duration(every)


def _schedule_object(schedule: Any) -> dict[str, Any]:
    """A schedule object (``gnomon.schedules.Cron``, ``Interval``, ``RRule``, Prefect-style)
    or a dict with ``cron``, ``interval`` or ``rrule``, as one spec's fields. An object that
    says so itself (``gnomon.schedules``' ``deployment_fields()``, which refuses what the
    scheduler cannot run) is asked; any other is read by its attributes, as Prefect's
    schedules have them."""
    fields = getattr(schedule, "deployment_fields", None)
    if callable(fields):
        return dict(fields(allow_inactive=True))

    def field(key: str) -> Any:
        if isinstance(schedule, Mapping):
            return schedule.get(key)
        return getattr(schedule, key, None)

    if field("day_or") is False:
        raise TypeError(
            f"schedule {schedule!r}: day_or=False is not supported; gnomon's cron joins"
            " day-of-month and day-of-week with OR, as cron does"
        )
    spec: dict[str, Any] = {}
    if field("cron") is not None:
        spec["cron"] = field("cron")
    elif field("interval") is not None:
        spec["interval"] = _interval(field("interval"))
    elif field("rrule") is not None:
        spec["rrule"] = str(field("rrule"))
    else:
        raise TypeError(f"schedule {schedule!r}: has none of cron, interval or rrule")
    if field("timezone"):
        spec["timezone"] = str(field("timezone"))
    anchor = field("anchor_date") or field("anchor")
    if anchor is not None and "interval" in spec:
        spec["anchor"] = anchor
    if field("parameters"):
        spec["parameters"] = dict(field("parameters"))
    if field("active") is False:
        spec["active"] = False
    return spec


def _concurrency(options: dict[str, Any], table: dict[str, Any]) -> None:
    """Prefect's ``concurrency_limit``: at most that many runs at once, the others queued
    (Prefect's default collision strategy, ENQUEUE)."""
    limit = options.pop("concurrency_limit", None)
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(
            f"concurrency_limit={limit!r}: give a number of runs; for what happens to the"
            " others, set overlap= ('queue', 'skip', 'cancel_previous')"
        )
    table.setdefault("max_concurrent", limit)
    table.setdefault("overlap", "queue")


def _entrypoint(flow: Flow[..., Any]) -> str:
    """Where a worker imports ``flow`` from: the script's path when the flow is defined in
    the script being run, its module's name otherwise; the name there must be ``flow``
    itself (a worker runs what it imports)."""
    import sys

    entrypoint = flow.entrypoint
    module = sys.modules.get(flow.fn.__module__)
    found = getattr(module, flow.fn.__qualname__, None) if "." not in flow.fn.__qualname__ else None
    if found is not flow:
        raise ValueError(
            f"flow {flow.name!r}: a worker would import {entrypoint!r}, which is not this flow"
            " (a flow from with_options(), or one not defined at the top level of its"
            " module): define the flow to serve at the top level of its module, under its"
            " function's name"
        )
    return entrypoint


def _check_parameters(
    flow: Flow[..., Any], name: str, parameters: dict[str, Any], where: str = ""
) -> None:
    """The deployment's parameters (or a schedule's, ``where``, merged over them) are the
    flow's, valid, and JSON (the store's form)."""
    prefix = f"deployment {name!r}: {where}{'.' if where else ''}"
    try:
        json.dumps(parameters)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{prefix}parameters must be JSON values: {error}") from None
    from gnomon.flows import parameter_problems

    problems = parameter_problems(flow, parameters)
    if problems:
        listed = "; ".join(
            f"{where}{'.' if where else ''}{field} {value!r}: {message}"
            for field, value, message in problems
        )
        raise ValueError(f"deployment {name!r}: {listed}")


def _problem(detail: Mapping[str, Any], table: Mapping[str, Any]) -> str:
    """A pydantic error as "interval '0.5s': must be at least 1s"."""
    field = ".".join(str(part) for part in detail.get("loc", ()))
    message = str(detail.get("msg", "")).removeprefix("Value error, ")
    if field and field in table:
        return f"{field} {table[field]!r}: {message}"
    return f"{field}: {message}" if field else message


def _tags(name: str, tags: Any) -> list[Any]:
    """``tags=`` as a list (its tags are checked with the deployment's); ValueError naming
    the value when it is not a list of tags."""
    if isinstance(tags, str) or not isinstance(tags, list | tuple | set | frozenset):
        raise ValueError(f"deployment {name!r}: tags = {tags!r}: give a list of tags")
    return list(tags)
