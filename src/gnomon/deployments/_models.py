"""The config's models: the ``[daemon]`` table and each ``[[deployments]]`` entry.

Everything is checked at construction, so a ``Deployment`` that exists has a schedule that
parses and fires, a known time zone and a well-formed flow entrypoint. Policies a deployment
leaves out are filled in from ``[daemon]`` while it is validated (pass the ``DaemonConfig``
as ``context={"daemon": ...}``), so consumers only ever see concrete values.

Numbers and booleans are strict (``workers = "4"`` is an error, not 4): a TOML file has real
types, and a quoted number is more often a mistake than an intention.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    InstanceOf,
    SecretStr,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gnomon._files import refuse_empty_path
from gnomon._names import NAME_RULE, is_name
from gnomon.deployments._calendars import CalendarNames
from gnomon.deployments._runenv import (
    EnvValue,
    PoolName,
    RunPool,
    absolute_files,
    check_env,
    check_user,
    check_working_dir,
    env_document,
)
from gnomon.deployments._specs import (
    CHECK_ANCHOR,
    BoundValue,
    DstChoice,
    IntervalText,
    Parameters,
    ScheduleEntries,
    ScheduleEntry,
    bounds_document,
    check_bounds,
    interval_message,
    spec_document,
)
from gnomon.deployments._upstreams import AfterEntries
from gnomon.scheduling import (
    Exclusions,
    MaintenanceWindow,
    Schedule,
    ScheduleError,
    ScheduleKind,
    Upstream,
    cron_trigger,
    format_duration,
    parse_every,
    parse_interval,
)

if TYPE_CHECKING:
    from gnomon.store.rows import DeploymentRow


class Overlap(StrEnum):
    """What a fire does while the deployment's previous run is still going."""

    SKIP = "skip"
    QUEUE = "queue"
    ALLOW = "allow"
    CANCEL_PREVIOUS = "cancel_previous"


class ContainmentMode(StrEnum):
    """How the daemon keeps a run's processes from outliving it (``[daemon] containment``):
    ``auto`` uses the best that works on the machine (cgroup, then subreaper, then none)."""

    AUTO = "auto"
    CGROUP = "cgroup"  # a cgroup v2 group per worker, ended with cgroup.kill
    SUBREAPER = "subreaper"  # workers are child subreapers; trees found in /proc
    NONE = "none"  # only the worker's process group is signalled


class Catchup(StrEnum):
    """Which fire times missed while the daemon was down still run."""

    LATEST = "latest"
    ALL = "all"
    NONE = "none"


_ZERO = re.compile(r"0+(?:[.,]0*)?\s*[a-z]*", re.IGNORECASE)


def _parse_duration(value: Any) -> Any:
    """A duration from a number of seconds or a ``parse_interval`` string ("90s", "PT15M")."""
    if isinstance(value, bool):
        raise ValueError('must be a duration like 30 (seconds), "90s" or "PT15M"')
    if not isinstance(value, str):
        return value  # numbers and timedeltas: pydantic's own timedelta validation
    if _ZERO.fullmatch(value.strip()):
        return timedelta(0)  # parse_interval refuses zero; jitter and graces allow it
    try:
        return parse_interval(value)
    except ScheduleError as error:
        raise ValueError(interval_message(value, error)) from None


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_not_negative)]
PositiveDuration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_positive)]


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone this machine knows, else ValueError."""
    try:
        ZoneInfo(name)
    # An unknown key raises ZoneInfoNotFoundError (a KeyError), a malformed one ("", "../x")
    # ValueError, and a key naming a directory of the zone database OSError.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown timezone {name!r}") from None
    return name


class Policies(BaseModel):
    """The per-deployment policies; on ``DaemonConfig`` they are every deployment's defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    overlap: Overlap = Overlap.SKIP
    max_concurrent: Annotated[StrictInt, Field(ge=1)] = 1
    max_queued: Annotated[StrictInt, Field(ge=0)] = 10
    catchup: Catchup = Catchup.LATEST
    max_catchup: Annotated[StrictInt, Field(ge=1)] = 100
    misfire_grace: PositiveDuration | None = None  # None: a late fire always starts
    jitter: Duration = timedelta(0)
    timeout: PositiveDuration | None = None
    retries: Annotated[StrictInt, Field(ge=0)] = 0
    # A run whose process tree's resident memory goes above it is ended, Crashed (None: no
    # limit); unlike max_memory_per_worker, which only recycles a worker between runs.
    memory_limit: Annotated[ByteSize, Field(gt=0)] | None = None
    # What a run may log and print before the rest is dropped ("log truncated").
    max_log_lines: Annotated[StrictInt, Field(ge=1)] = 10_000
    max_log_bytes: Annotated[ByteSize, Field(gt=0)] = ByteSize(10_000_000)
    # After this many failed runs in a row (Failed, TimedOut, Crashed; a completed run
    # starts the count again, cancelled, skipped and missed ones leave it as it is) the
    # deployment pauses itself and notifies (``auto_paused``); None: never.
    pause_after_failures: Annotated[StrictInt, Field(ge=1)] | None = None
    # Deadlines and freshness, watched by the daemon's loop (daemon/_deadlines.py; None: not
    # watched): a run not started by its nominal time + late_after is late; one not finished
    # by nominal + deadline missed it (cancelled then, with cancel_at_deadline); one that
    # completed in less than min_duration was too fast; and the deployment is stale when no
    # run completed within fresh_within.
    late_after: PositiveDuration | None = None
    deadline: PositiveDuration | None = None
    cancel_at_deadline: StrictBool = False
    min_duration: PositiveDuration | None = None
    fresh_within: PositiveDuration | None = None
    # When every worker is busy, waiting runs start highest priority first, then oldest
    # nominal time first (negative numbers wait behind the default).
    priority: StrictInt = 0

    @field_validator("deadline")
    @classmethod
    def _deadline_after_late(cls, value: timedelta | None, info: ValidationInfo) -> Any:
        late = info.data.get("late_after")
        if value is not None and late is not None and value <= late:
            raise ValueError(
                f"must be longer than late_after ({format_duration(late)}): a run starts"
                " before it can finish"
            )
        return value

    @field_validator("min_duration")
    @classmethod
    def _shorter_than_deadline(cls, value: timedelta | None, info: ValidationInfo) -> Any:
        deadline = info.data.get("deadline")
        if value is not None and deadline is not None and value >= deadline:
            raise ValueError(
                f"must be shorter than deadline ({format_duration(deadline)}): no run could"
                " last long enough and still finish on time"
            )
        return value

    def policies(self) -> dict[str, Any]:
        """The policies as JSON-able values (durations in seconds), as the store keeps them."""
        return {name: _jsonable(getattr(self, name)) for name in POLICY_FIELDS}


POLICY_FIELDS = tuple(Policies.model_fields)


def _jsonable(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, ByteSize):
        return int(value)
    return value


def relative_to_config(value: Path | None, info: ValidationInfo) -> Path | None:
    """``value`` made absolute against the config file's directory (``base_dir`` in the
    validation context), with ``~`` expanded; an absolute path stays as it is."""
    return relative_to(value, (info.context or {}).get("base_dir"))


def relative_to(value: Path | None, base: Path | None) -> Path | None:
    """``value`` made absolute against ``base`` (None: left relative), ``~`` expanded."""
    if value is None or value.expanduser().is_absolute() or base is None:
        return value.expanduser() if value is not None else None
    return Path(os.path.normpath(Path(base) / value))


def is_http_url(text: str) -> bool:
    """Whether ``text`` is an absolute http or https URL with a host."""
    parts = urlsplit(text)
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


class DaemonConfig(Policies):
    """The ``[daemon]`` table: the worker pool, shutdown timing, and deployment defaults."""

    workers: Annotated[StrictInt, Field(ge=1)] = Field(default_factory=lambda: os.cpu_count() or 1)
    timezone: Annotated[str, AfterValidator(check_timezone)] = "UTC"
    max_runs_per_worker: Annotated[StrictInt, Field(ge=1)] | None = None
    max_memory_per_worker: Annotated[ByteSize, Field(gt=0)] | None = None
    shutdown_grace: Duration = timedelta(seconds=30)
    kill_grace: Duration = timedelta(seconds=10)
    # How long one flow module may take to import and check its deployments' parameters,
    # in the check process (at start, on reload, in `deployments validate` and `apply`).
    flow_check_timeout: PositiveDuration = timedelta(seconds=30)
    log_file: Path | None = None  # None: the daemon's default (LOGS_DIRECTORY or GNOMON_HOME)
    containment: ContainmentMode = ContainmentMode.AUTO
    # The log file is rotated past this size ("0": never; logrotate may do it instead),
    # keeping this many older files (gnomon.jsonl.1 the newest).
    log_file_max_bytes: Annotated[ByteSize, Field(ge=0)] = ByteSize(100_000_000)
    log_file_keep: Annotated[StrictInt, Field(ge=1, le=1000)] = 5
    # Where operators reach the API and, later, the dashboard; notifications link to
    # {public_url}/runs/{id}. None: from `api` (see gnomon._bind.public_url_for).
    public_url: str | None = None
    # The HTTP API's "host:port", or "off" (kept as None) for none; api_auth = false serves
    # it without tokens, which only a loopback address allows.
    api: str | None = "127.0.0.1:8787"
    api_auth: StrictBool = True
    # HTTPS served by the daemon itself: a PEM certificate (its chain after it) and its
    # unencrypted PEM key, both or neither; relative paths are relative to the config file.
    # The files are checked at start (gnomon.http._tls) and read again on each reload.
    api_tls_cert: Path | None = None
    api_tls_key: Path | None = None
    # The scheduling loop not ticking for this long is "stuck": /healthz answers 503 and
    # the systemd watchdog is no longer fed, so systemd restarts the daemon.
    stuck_after: PositiveDuration = timedelta(seconds=5)
    # A dead man's switch (healthchecks-style): pinged every heartbeat_interval while the
    # daemon is not stuck, so a dead machine is noticed from outside.
    heartbeat_url: str | None = None
    heartbeat_interval: PositiveDuration = timedelta(seconds=60)
    # Below this much free space on the store's (or the log file's) file system, run log
    # lines are neither stored nor written to the log file, so that run rows still fit.
    min_free_space: Annotated[ByteSize, Field(ge=0)] = ByteSize(50_000_000)
    # The largest request body the API reads (413 beyond it).
    api_max_body: Annotated[ByteSize, Field(ge=1024, le=2**30)] = ByteSize(1_000_000)
    # Housekeeping (daemon._retention): runs that ended longer ago than retain_runs, and
    # log lines older than retain_logs, are deleted by the daemon. None: kept forever.
    retain_runs: PositiveDuration | None = None
    retain_logs: PositiveDuration | None = None
    # Several daemons on one PostgreSQL database (daemon._cluster): a daemon that has not
    # renewed its lease for this long is dead, and the others settle its runs; one cut off
    # from the database kills its runs at half of it. At least 4 s (renewals are 1 s apart).
    heartbeat_timeout: Annotated[timedelta, BeforeValidator(_parse_duration)] = timedelta(
        seconds=30
    )

    @field_validator("api")
    @classmethod
    def _check_api(cls, value: str | None) -> str | None:
        from gnomon._bind import OFF, parse_bind

        if value is None or value.strip().lower() == OFF:
            return None
        parse_bind(value)
        return value.strip()

    @model_validator(mode="after")
    def _auth_off_only_on_loopback(self) -> DaemonConfig:
        from gnomon._bind import is_loopback, parse_bind

        if not self.api_auth and self.api is not None and not is_loopback(parse_bind(self.api)[0]):
            raise ValueError(
                f"api_auth = false is only allowed with api on a loopback address "
                f"(127.0.0.1, [::1], localhost), not {self.api!r}"
            )
        return self

    @model_validator(mode="after")
    def _tls_files_in_pairs(self) -> DaemonConfig:
        for given, missing in (("api_tls_cert", "api_tls_key"), ("api_tls_key", "api_tls_cert")):
            value = getattr(self, given)
            if value is not None and getattr(self, missing) is None:
                raise ValueError(
                    f"{given} = {str(value)!r} is set without {missing}: HTTPS needs both"
                    " the certificate and its private key (or neither, for plain HTTP)"
                )
        return self

    @property
    def api_tls(self) -> bool:
        """Whether the API serves HTTPS (``api_tls_cert`` and ``api_tls_key`` set)."""
        return self.api_tls_cert is not None

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not is_http_url(value):
            raise ValueError('must be an http(s) URL, like "https://gnomon.example.com"')
        return value.rstrip("/")

    @field_validator("heartbeat_timeout")
    @classmethod
    def _check_heartbeat_timeout(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=4):
            seconds = value.total_seconds()
            raise ValueError(
                f"must be at least 4s (a daemon renews its lease each second), got {seconds:g}s"
            )
        return value

    @field_validator("heartbeat_url")
    @classmethod
    def _check_heartbeat_url(cls, value: str | None) -> str | None:
        if value is not None and not is_http_url(value):
            raise ValueError('must be an http(s) URL, like "https://hc-ping.com/<uuid>"')
        return value

    _not_empty = field_validator("log_file", "api_tls_cert", "api_tls_key", mode="before")(
        refuse_empty_path
    )

    @field_validator("log_file", "api_tls_cert", "api_tls_key")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """A relative log file or TLS file is relative to the config file, like a relative
        flow path."""
        return relative_to_config(value, info)


_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_ATTRIBUTE = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*")
_ENTRYPOINT_FORMAT = "must look like 'package.module:function' or 'path/to/file.py:function'"


def check_name(value: str) -> str:
    """``value`` if it is a valid deployment or notification target name (``gnomon._names``),
    else ValueError."""
    if not is_name(value):
        raise ValueError(f"must be {NAME_RULE}")
    return value


def resolve_entrypoint(entrypoint: str, base_dir: Path | None) -> str:
    """``entrypoint`` with a relative ``.py`` path made absolute against ``base_dir``.

    Symlinks are kept, not resolved: a config that points at ``/srv/app/current/flows.py``
    must follow ``current`` when a deployment moves it to a new release.
    """
    target, colon, name = entrypoint.strip().rpartition(":")
    if not colon or not target or not _ATTRIBUTE.fullmatch(name):
        raise ValueError(_ENTRYPOINT_FORMAT)
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()).absolute() / path
        return f"{os.path.normpath(path)}:{name}"
    if not _ATTRIBUTE.fullmatch(target):
        raise ValueError(_ENTRYPOINT_FORMAT)
    return f"{target}:{name}"


# The store's schedule_kind of a deployment that has no schedule of its own, only
# upstreams (``after``); its ``schedule`` column names them.
AFTER_KIND = "after"


class Deployment(Policies):
    """A flow bound to a schedule (``cron``, ``interval``, or several specs in
    ``schedules``), or run after other deployments' runs (``after``, with or without a
    schedule of its own), with parameters and resolved policies.

    Validate it with ``context={"daemon": DaemonConfig}`` so that policies and ``timezone``
    it does not state come from ``[daemon]``; without one they come from the built-in
    defaults. ``source_file`` is the TOML file that declared it: relative flow paths are
    resolved against its directory.
    """

    source_file: Path | None = None
    name: str
    flow: str
    description: str | None = None
    timezone: str = "UTC"
    cron: str | None = None
    interval: IntervalText = None
    anchor: datetime | None = None  # interval only; None: the store's registration time
    parameters: Parameters = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    # None: not stated. Applied when it changes in the file (see deployments._sync).
    paused: StrictBool | None = None
    # Several specs instead of cron / interval, fire-time bounds, DST choices (_specs).
    schedules: ScheduleEntries = None
    active_from: BoundValue = None
    active_until: BoundValue = None
    dst: DstChoice = None  # for cron and rrule specs that state none
    # [[calendars]] by name: days whose fires do not run / the only days whose fires do.
    exclude: CalendarNames = ()
    only: CalendarNames = ()
    # Upstreams whose runs' ends start runs of this one at their nominal times (_upstreams).
    after: AfterEntries = None
    # How its runs run (_runenv): the [[pools]] entry whose slots they take, the variables,
    # working directory and user (the daemon must run as root) the worker gives the flow.
    pool: PoolName | None = None
    env: Annotated[dict[str, EnvValue], AfterValidator(check_env)] = Field(default_factory=dict)
    working_dir: Path | None = None
    user: Annotated[str | None, AfterValidator(check_user)] = None

    @model_validator(mode="before")
    @classmethod
    def _inherit_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        """Fill in the policies and time zone the entry leaves out from ``[daemon]``."""
        daemon = (info.context or {}).get("daemon")
        if daemon is None or not isinstance(data, dict):
            return data
        inherited = {
            key: getattr(daemon, key) for key in (*POLICY_FIELDS, "timezone") if key not in data
        }
        return {**data, **inherited}

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("cancel_at_deadline")
    @classmethod
    def _cancel_needs_deadline(cls, value: bool, info: ValidationInfo) -> bool:
        """A deployment's own ``cancel_at_deadline = true`` needs a deadline; as a
        ``[daemon]`` default it applies to the deployments that have one."""
        daemon = (info.context or {}).get("daemon")
        inherited = daemon is not None and daemon.cancel_at_deadline
        if value and not inherited and "deadline" in info.data and info.data["deadline"] is None:
            raise ValueError("needs a deadline: set deadline too (or leave this out)")
        return value

    @field_validator("env")
    @classmethod
    def _env_files(cls, value: dict[str, EnvValue], info: ValidationInfo) -> dict[str, EnvValue]:
        source = info.data.get("source_file")
        return absolute_files(value, source.parent if source is not None else None)

    @field_validator("working_dir")
    @classmethod
    def _working_dir(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Relative to the config file, like a relative flow path; it must exist."""
        source = info.data.get("source_file")
        return check_working_dir(relative_to(value, source.parent if source else Path.cwd()))

    def policies(self) -> dict[str, Any]:
        """The policies and how the runs run, as the store keeps them: ``env`` masked
        (``env_document``), never its values."""
        return {
            **super().policies(),
            "pool": self.pool,
            "env": env_document(self.env),
            "working_dir": str(self.working_dir) if self.working_dir is not None else None,
            "user": self.user,
        }

    @field_validator("flow")
    @classmethod
    def _resolve_flow(cls, value: str, info: ValidationInfo) -> str:
        source = info.data.get("source_file")
        return resolve_entrypoint(value, source.parent if source is not None else None)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            # With a bad time zone (reported on its own field) the expression is checked in UTC.
            cron_trigger(value, info.data.get("timezone", "UTC"))
        return value

    @field_validator("anchor")
    @classmethod
    def _localize_anchor(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        """A naive anchor is a wall-clock time in the deployment's time zone."""
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=ZoneInfo(info.data.get("timezone", "UTC")))

    @field_validator("active_until")
    @classmethod
    def _after_active_from(cls, value: BoundValue, info: ValidationInfo) -> BoundValue:
        return check_bounds(info.data.get("active_from"), value)

    @model_validator(mode="after")
    def _one_trigger(self) -> Deployment:
        if self.schedules is not None:
            if self.cron is not None or self.interval is not None:
                given = "cron" if self.cron is not None else "interval"
                raise ValueError(
                    f"set either schedules or {given}, not both (schedules = [{{{given} = ...}},"
                    " ...] holds every spec)"
                )
            if not self.schedules:
                raise ValueError(
                    "schedules is empty: list at least one {cron = ...}, {interval = ...} or"
                    " {rrule = ...}"
                )
            if self.anchor is not None:
                raise ValueError("anchor: with schedules, give it in the interval's entry")
        elif self.cron is not None and self.interval is not None:
            raise ValueError("set exactly one of cron or interval (both are set)")
        elif self.cron is None and self.interval is None:
            if self.after is None:
                raise ValueError("set one of cron, interval, schedules or after (none is set)")
            self._no_schedule_options()
        if any(upstream.deployment == self.name for upstream in self.upstreams):
            raise ValueError(f"after: runs after itself: a cycle ({self.name} -> {self.name})")
        if self.anchor is not None and self.cron is not None:
            raise ValueError("anchor applies to interval deployments only, not cron")
        if self.dst is not None and self.interval is not None:
            raise ValueError(
                "dst applies to cron and rrule schedules only: an interval is real time"
            )
        return self

    def _no_schedule_options(self) -> None:
        """A deployment that runs only after its upstreams has none of a schedule's options."""
        for option in ("anchor", "active_from", "active_until", "dst"):
            if getattr(self, option) is not None:
                raise ValueError(
                    f"{option} applies to a schedule of the deployment's own (cron, interval"
                    " or schedules); with only after, its runs take their upstreams' times"
                )

    @model_validator(mode="after")
    def _check_schedule(self) -> Deployment:
        """The schedule as a whole, in the deployment's zone (bounds in order, say)."""
        document = self.schedule_document()
        if document is not None:
            try:
                Schedule.from_document(self.name, document, self.timezone, CHECK_ANCHOR)
            except ScheduleError as error:
                raise ValueError(str(error)) from None
        return self

    @property
    def upstreams(self) -> tuple[Upstream, ...]:
        """The ``after`` entries (none when it runs by its schedule alone)."""
        return tuple(entry.upstream() for entry in self.after or ())

    @property
    def specs(self) -> tuple[ScheduleEntry, ...]:
        """The schedule's specs: ``schedules``, or the one ``cron`` / ``interval`` states
        (none for a deployment that runs only after its upstreams)."""
        if self.schedules is not None:
            return self.schedules
        if self.cron is None and self.interval is None:
            return ()
        # Both fields were checked as this model's: not again, on every look.
        lone = ScheduleEntry.model_construct(
            cron=self.cron, interval=self.interval, anchor=self.anchor
        )
        return (lone,)

    @property
    def schedule_kind(self) -> str:
        """``"cron"``, ``"interval"`` or ``"rrule"``: the (first) spec's kind; ``"after"``
        for a deployment that runs only after its upstreams."""
        return str(self.specs[0].kind) if self.specs else AFTER_KIND

    @property
    def schedule(self) -> str:
        """The (first) spec's cron expression, interval or rrule, as written in the file;
        the upstreams' names for one that runs only after them."""
        if not self.specs:
            return ", ".join(upstream.deployment for upstream in self.upstreams)
        return self.specs[0].expression

    @property
    def every(self) -> timedelta | None:
        """A lone interval's period; None for any other schedule."""
        return parse_every(self.interval) if self.interval is not None else None

    @property
    def needs_anchor(self) -> bool:
        """Whether a spec counts from the registration: an interval, or an rrule (when it
        has no DTSTART)."""
        return any(spec.kind is not ScheduleKind.CRON for spec in self.specs)

    def schedule_document(self) -> dict[str, Any] | None:
        """What the store keeps of the schedule beyond ``schedule_kind`` and ``schedule``
        (``Schedule.from_document``'s form); None for a lone ``cron`` or ``interval``
        without bounds or DST choices, which those two columns say in full."""
        plain = self.active_from is None and self.active_until is None and self.dst is None
        calendared = bool(self.exclude or self.only)
        if self.schedules is None and plain and not calendared and self.after is None:
            return None
        specs = [
            spec_document(
                spec.kind,
                spec.expression,
                parameters=spec.parameters,
                anchor=spec.anchor,
                dst=spec.dst or (self.dst if spec.kind is not ScheduleKind.INTERVAL else None),
                active_from=spec.active_from,
                active_until=spec.active_until,
            )
            for spec in self.specs
        ]
        calendars = Exclusions(self.timezone, self.exclude, self.only).document()
        document = {
            "specs": specs,
            **bounds_document(self.active_from, self.active_until),
            **calendars,
        }
        if self.after is not None:
            document["after"] = [upstream.table() for upstream in self.upstreams]
        return document

    def timing(self, anchor: datetime | None = None) -> Schedule:
        """The schedule; an interval (or an rrule without DTSTART) that the file gives no
        anchor needs the stored ``anchor``. The file's own anchor wins over ``anchor``
        (sync stores the file's)."""
        start = self.anchor or anchor
        document = self.schedule_document()
        if document is not None:
            return Schedule.from_document(self.name, document, self.timezone, start, self.jitter)
        if self.interval is None:
            start = None
        elif start is None:
            raise ScheduleError(
                f"deployment {self.name!r}: an interval needs an anchor; sync it into the "
                "store first (the anchor defaults to when it was first registered)"
            )
        kind = self.schedule_kind
        return Schedule.single(self.name, kind, self.schedule, self.timezone, start, self.jitter)


def stored_schedule(row: DeploymentRow) -> Schedule:
    """A registered deployment's schedule, from its store row alone (no config file)."""
    jitter = timedelta(seconds=(row.policies or {}).get("jitter") or 0)
    if row.schedule_specs:
        return Schedule.from_document(
            row.name, row.schedule_specs, row.timezone, row.anchor, jitter
        )
    anchor = row.anchor if row.schedule_kind == ScheduleKind.INTERVAL else None
    return Schedule.single(row.name, row.schedule_kind, row.schedule, row.timezone, anchor, jitter)


class NotifyEvent(StrEnum):
    """What a ``[[notify]]`` target can be told about."""

    FAILED = "failed"
    CRASHED = "crashed"
    TIMED_OUT = "timed_out"
    MISSED = "missed"
    RECOVERED = "recovered"  # a run completed after the deployment's previous one failed
    # The deployment paused itself after pause_after_failures failed runs in a row.
    AUTO_PAUSED = "auto_paused"
    # Breaches of a deployment's deadline and freshness policies, each told once, and when
    # it clears (see daemon/_deadlines.py).
    LATE = "late"  # a run not started by nominal time + late_after
    LATE_CLEARED = "late_cleared"  # ... it started (or ended without starting)
    DEADLINE_MISSED = "deadline_missed"  # a run not finished by nominal time + deadline
    DEADLINE_CLEARED = "deadline_cleared"  # ... it finished after all
    TOO_FAST = "too_fast"  # a run completed in less than min_duration
    TOO_FAST_CLEARED = "too_fast_cleared"  # a later run completed taking at least that
    STALE = "stale"  # no run completed within fresh_within
    FRESH_AGAIN = "fresh_again"  # ... until one did


def _some_events(events: tuple[NotifyEvent, ...]) -> tuple[NotifyEvent, ...]:
    if not events:
        raise ValueError("must name at least one event (remove the target to send none)")
    return events


class NotifyTarget(BaseModel):
    """A ``[[notify]]`` entry: a webhook, the events it wants and which runs they concern.

    The webhook URL is a secret, so the config names where to read it (``url_env`` or
    ``url_file``, relative to the config file) and never holds it; ``resolved()`` reads it
    into ``url``, which the loader does for every target it returns. Every event is sent
    by default: ``recovered`` follows a failure someone was told about, so it is the
    message that closes the incident rather than noise. ``deployments`` and ``tags`` each
    narrow the target (a run must match both when both are set).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, AfterValidator(check_name)]
    url_env: str | None = None
    url_file: Annotated[Path | None, AfterValidator(relative_to_config)] = None  # to the config
    events: Annotated[tuple[NotifyEvent, ...], AfterValidator(_some_events)] = tuple(NotifyEvent)
    deployments: tuple[str, ...] = ()  # empty: every deployment
    tags: tuple[str, ...] = ()  # empty: any tags; else a run with at least one of them
    timeout: PositiveDuration = timedelta(seconds=10)  # per attempt
    max_attempts: Annotated[StrictInt, Field(ge=1, le=100)] = 5
    url: SecretStr | None = None  # read from url_env or url_file by resolved()

    @model_validator(mode="after")
    def _one_source(self) -> NotifyTarget:
        if (self.url_env is None) == (self.url_file is None):
            which = "both are set" if self.url_env is not None else "neither is set"
            raise ValueError(f"set exactly one of url_env or url_file ({which})")
        return self

    def resolved(self) -> NotifyTarget:
        """This target with ``url`` read from its environment variable or file.

        Raises ValueError saying what is wrong with the source, never quoting the URL.
        """
        if self.url_env is not None:
            text = os.environ.get(self.url_env, "").strip()
            where = f"environment variable {self.url_env}"
            if not text:
                raise ValueError(f"{where} is not set")
        else:
            assert self.url_file is not None  # _one_source
            where = "the file"
            try:
                text = self.url_file.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                raise ValueError("no such file") from None
            except (OSError, UnicodeDecodeError) as error:
                reason = getattr(error, "strerror", None) or error
                raise ValueError(f"cannot read: {reason}") from None
            if not text:
                raise ValueError("the file is empty")
        if not is_http_url(text):
            raise ValueError(f"{where} does not hold an http(s) URL")
        return self.model_copy(update={"url": SecretStr(text)})

    def wants(self, event: NotifyEvent, deployment: str, tags: Iterable[str]) -> bool:
        """Whether this target is sent ``event`` about a run of ``deployment`` with ``tags``."""
        return (
            event in self.events
            and (not self.deployments or deployment in self.deployments)
            and (not self.tags or not set(self.tags).isdisjoint(tags))
        )


class GnomonConfig(BaseModel):
    """A loaded config: ``[daemon]``, the valid deployments and notification targets, and
    the files they came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    deployments: tuple[Deployment, ...] = ()
    notify: tuple[NotifyTarget, ...] = ()
    maintenance: tuple[InstanceOf[MaintenanceWindow], ...] = ()  # the [[maintenance]] windows
    pools: tuple[RunPool, ...] = ()
    path: Path | None = None  # the main config file; None when there was none
    files: tuple[Path, ...] = ()  # the main file, then the included ones


# What a deployment's definition hash leaves out: where the file declaring it lies (hosts
# keep their config in different places) and its `paused` (the operators' switch, which
# the scheduler applies for every host).
_NOT_DEFINITION = frozenset({"source_file", "paused"})


def definition_hash(deployment: Deployment) -> str:
    """A hash of the deployment as loaded: daemons sharing a database run its runs only if
    they loaded it alike (``daemon/_cluster``), so a config change rolling across hosts
    never has a run executed under another host's idea of it."""
    values = deployment.model_dump(mode="json", exclude=set(_NOT_DEFINITION))
    values["flow"] = _portable_flow(deployment)
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _portable_flow(deployment: Deployment) -> str:
    """The flow's entrypoint with a file beside the config (or below it) named relative to
    the config's directory: hosts keep the same files in different places."""
    path, colon, function = deployment.flow.rpartition(":")
    if not colon or deployment.source_file is None:
        return deployment.flow
    base = deployment.source_file.parent
    try:
        relative = Path(path).relative_to(base)
    except ValueError:
        return deployment.flow
    return f"{relative}:{function}"
