"""The store's tables, as SQLAlchemy Core metadata.

The schema is dialect-neutral: SQLite today, PostgreSQL later. Ids are UUID4 hex strings made
by the process that creates the row, so a row can be referenced before the batched writer has
written it. Every datetime is UTC and comes back timezone-aware (see ``UTCDateTime``).

The migrations in ``migrations/versions`` create exactly these tables; a test compares the
two, so a change here needs a new migration.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    false,
    or_,
    text,
    true,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeEngine

from gnomon.states import FINAL_TYPES, StateType
from gnomon.store._codecs import as_utc, aware, utc_text, utcnow
from gnomon.store._kinds import (
    AuditAction,
    BackfillStatus,
    BreachKind,
    MaintenanceSource,
    Origin,
    ReloadStatus,
    Reprocess,
    RunCause,
    TokenAccess,
)

# Deterministic constraint names, so later migrations (and PostgreSQL) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class _SQLiteDateTimeText(sqlite.DATETIME):
    """SQLite's DATETIME column, bound as text that ``UTCDateTime`` has already formatted."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None


class UTCDateTime(TypeDecorator[datetime]):
    """A UTC timestamp that always reads back as an aware UTC datetime.

    SQLite has no time zone support and SQLAlchemy drops ``tzinfo`` there, so values are
    stored as naive UTC text and given ``UTC`` again on the way out. Aware values in any zone
    are converted to UTC; naive values are taken to be UTC already (the convention of every
    ``utcnow``-style helper), rather than failing a whole batched write.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _SQLiteDateTimeText()
        return dialect.type_descriptor(self.impl_instance)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return utc_text(value)  # the text SQLAlchemy's SQLite DATETIME stores
        return aware(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def _id(**kwargs: Any) -> Column[str]:
    return Column("id", String(32), primary_key=True, **kwargs)


def _flow_run_ref(*, nullable: bool = True) -> Column[str]:
    """A reference to a flow run; deleting the flow run deletes the referring rows."""
    return Column(
        "flow_run_id",
        String(32),
        ForeignKey("flow_runs.id", ondelete="CASCADE"),
        nullable=nullable,
    )


def _json(name: str, python: str) -> Column[Any]:
    """A JSON column holding ``python`` values (the type the store's rows give it)."""
    # none_as_null: Python None is SQL NULL, not the JSON text 'null'.
    return Column(name, JSON(none_as_null=True), nullable=True, info={"python": python})


def _enum(name: str, length: int, of: type[enum.StrEnum], *, nullable: bool = True) -> Column[str]:
    """A text column holding the values of the enum ``of``, which the store's rows give as
    its members. Stored as plain text (no CHECK, no database enum type): a value added to
    the enum needs no migration."""
    return Column(name, String(length), nullable=nullable, info={"enum": of})


def _run_columns() -> list[Column[Any]]:
    """Columns flow runs and task runs share: state summary, timing, result and error."""
    return [
        _json("tags", "list[str]"),
        _enum("state_type", 32, StateType),
        Column("state_name", Text),
        Column("state_message", Text),
        Column("run_count", Integer, nullable=False, server_default="0", default=0),
        Column("start_time", UTCDateTime),
        Column("end_time", UTCDateTime),
        Column("created", UTCDateTime, nullable=False, default=utcnow),
        Column("updated", UTCDateTime, default=utcnow),
        _json("result_ref", "dict[str, Any]"),
        Column("error_type", Text),
        Column("error_message", Text),
        Column("error_traceback", Text),
    ]


metadata = MetaData(naming_convention=NAMING_CONVENTION)

flow_runs = Table(
    "flow_runs",
    metadata,
    _id(),
    Column("name", Text, nullable=False),
    Column("flow_name", Text, nullable=False),
    Column("flow_version", Text),
    # `module:function` or `path.py:function`: a worker can start the run from its id alone.
    Column("entrypoint", Text),
    # No foreign key: a subflow's row may be batched in the same insert as its parent's.
    Column("parent_flow_run_id", String(32)),
    _json("parameters", "dict[str, Any]"),
    Column("expected_start_time", UTCDateTime),
    *_run_columns(),
    # Runs of deployments: the nominal fire time, what caused the run (schedule, catchup,
    # manual, retry), the daemon instance that owns it and how its worker process ended.
    Column("deployment_name", String(100)),
    Column("scheduled_for", UTCDateTime),
    _enum("trigger", 16, RunCause),
    Column("daemon_id", String(255)),
    Column("worker_pid", Integer),
    Column("exit_code", Integer),
    Column("signal", Text),
    # Operator requests: a cancellation the daemon carries out, who asked for a manual run
    # (or a retry, and of which run), and whether it overrides the overlap policy.
    Column("cancel_requested_at", UTCDateTime),
    Column("requested_by", Text),
    Column("force", Boolean, nullable=False, server_default=false(), default=False),
    Column("retry_of", String(32)),
    # Which run of its nominal time this is: 1 for the first (a fire, a backfill's, a
    # manual run); a retry or a backfill's reprocessing creates the next one. A new one is
    # only created once every earlier one has finished, so they never run at once.
    Column("generation", Integer, nullable=False, server_default="1", default=1),
    # The backfill that made it (``backfills.id``); null for every other run.
    Column("backfill_id", Integer),
    # A run of cause upstream (or the Skipped row of one that did not run): the upstream
    # run whose end decided it (with several upstreams, the last to end). No foreign key:
    # either run may be deleted alone.
    Column("caused_by", String(32)),
    # When the cluster's scheduler handed the run to whichever daemon takes it (several
    # daemons on one PostgreSQL database: a daemon claims released runs in this order,
    # which is the scheduler's priority order); null once a daemon took it, or for a run
    # its scheduler started itself.
    Column("released_at", UTCDateTime),
    Index("ix_flow_runs_state_type", "state_type"),
    # The runs listing's order, (created, id) newest first: its pages are index ranges.
    Index("ix_flow_runs_created_id", "created", "id"),
    Index("ix_flow_runs_parent_flow_run_id", "parent_flow_run_id"),
    # One run per deployment, nominal fire time and generation, whoever tries to create
    # it: two fires of one time, or two retries of one run, create one row.
    Index(
        "uq_flow_runs_deployment_name_scheduled_for_generation",
        "deployment_name",
        "scheduled_for",
        "generation",
        unique=True,
    ),
    Index("ix_flow_runs_deployment_name_created_id", "deployment_name", "created", "id"),
    Index("ix_flow_runs_cancel_requested_at", "cancel_requested_at"),
    # The released runs, which the daemons' claims read (few at any time).
    Index(
        "ix_flow_runs_released_at",
        "released_at",
        sqlite_where=text("released_at IS NOT NULL"),
        postgresql_where=text("released_at IS NOT NULL"),
    ),
    # A backfill's runs by state (its progress, its unfinished ones); partial, so the runs
    # of no backfill cost nothing to write.
    Index(
        "ix_flow_runs_backfill_id_state_type",
        "backfill_id",
        "state_type",
        sqlite_where=text("backfill_id IS NOT NULL"),
        postgresql_where=text("backfill_id IS NOT NULL"),
    ),
    Index("ix_flow_runs_caused_by", "caused_by"),
)

deployments = Table(
    "deployments",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("flow", Text, nullable=False),  # the flow's entrypoint
    Column("schedule_kind", String(16), nullable=False),  # "cron" or "interval"
    Column("schedule", Text, nullable=False),  # the cron expression or the interval as written
    Column("timezone", Text),
    # Interval deployments fire at anchor + k * interval; stored so restarts don't shift it.
    Column("anchor", UTCDateTime),
    _json("parameters", "dict[str, Any]"),
    _json("tags", "list[str]"),
    # overlap, catchup, timeout, retries, ... as validated at load
    _json("policies", "dict[str, Any]"),
    Column("description", Text),
    Column("source_file", Text),
    # Who defines it: "config" (the daemon's config file; None in rows older than the
    # column) or "serve:<script path>" (a script's ``serve()``). Syncing one source never
    # deactivates another's deployments.
    Column("source", Text),
    # False once removed from the config: it stops scheduling, its history stays.
    Column("active", Boolean, nullable=False, server_default=true(), default=True),
    Column("paused", Boolean, nullable=False, server_default=false(), default=False),
    Column("paused_by", Text),
    Column("paused_at", UTCDateTime),
    Column("paused_reason", Text),
    # A pause that ends by itself (`gnomon pause --until/--for`): the daemon resumes the
    # deployment at this time. Null: paused until resumed, or not paused.
    Column("paused_until", UTCDateTime),
    # The config file's `paused` as last synced (null: the file did not state it). A sync
    # applies the file's value only when it differs from this, so an unchanged file never
    # undoes an operator's pause or resume.
    Column("config_paused", Boolean),
    Column("last_fire", UTCDateTime),  # nominal time of the newest schedule decision
    # The schedule decides the fires after this: set when the deployment is registered,
    # comes back into the config or is resumed. Catch-up starts at the later of the two.
    Column("fires_from", UTCDateTime),
    # A hash of the deployment's definition as its scheduler loaded it: several daemons on
    # one database run only the deployments whose definition they agree with.
    Column("definition_hash", String(64)),
    Column("registered_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated", UTCDateTime, nullable=False, default=utcnow),
    # The JSON schema of the flow's parameters, from the flow check: run requests are
    # checked against it without importing the flow. Null until a checked sync.
    _json("parameter_schema", "dict[str, Any]"),
    # The full schedule when schedule_kind / schedule do not say it all: several specs
    # (schedules = [...]), rrules, active_from / active_until, DST choices, a spec's own
    # parameters (Schedule.from_document's form). Null for a lone cron or interval; else
    # schedule_kind / schedule hold its first spec, which daemons older than it read.
    _json("schedule_specs", "dict[str, Any]"),
    # The daemon asks every second which deployments changed (a pause, a resume): with
    # 10,000 registered, scanning them was most of its idle CPU.
    Index("ix_deployments_updated", "updated"),
)

task_runs = Table(
    "task_runs",
    metadata,
    _id(),
    # Nullable: a task called outside any flow still gets a task run.
    _flow_run_ref(),
    Column("task_key", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("dynamic_key", Text),
    Column("cache_key", Text),
    *_run_columns(),
    Index("ix_task_runs_flow_run_id", "flow_run_id"),
)


def _task_run_index(table: str) -> Index:
    """The index finding a task run's rows. A flow run's own rows (null ``task_run_id``:
    most states and logs of a daemon's runs) stay out of it: each would cost the run's
    commits an index page to write, and the other processes' next transactions one to
    read back (a worker's run wrote 20 WAL pages, 3 of them for these null entries)."""
    where = text("task_run_id IS NOT NULL")
    return Index(
        f"ix_{table}_task_run_id", "task_run_id", sqlite_where=where, postgresql_where=where
    )


run_states = Table(
    "run_states",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _flow_run_ref(),
    Column("task_run_id", String(32)),  # null for a flow run's own states
    Column("timestamp", UTCDateTime, nullable=False, default=utcnow),
    _enum("type", 32, StateType, nullable=False),
    Column("name", Text),
    Column("message", Text),
    Column("attempt", Integer),
    Index("ix_run_states_flow_run_id", "flow_run_id"),
    _task_run_index("run_states"),
)

run_logs = Table(
    "run_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _flow_run_ref(),
    Column("task_run_id", String(32)),
    Column("timestamp", UTCDateTime, nullable=False, default=utcnow),
    Column("level", Integer, nullable=False),  # a `logging` level number, as Prefect stores it
    Column("logger", Text),
    Column("message", Text, nullable=False),
    _json("extra", "dict[str, Any]"),  # the structured context of the event
    # The deployment a line is about: a run's lines, and the daemon's decisions.
    Column("deployment_name", String(100)),
    Index("ix_run_logs_flow_run_id_id", "flow_run_id", "id"),
    _task_run_index("run_logs"),
    Index("ix_run_logs_deployment_name_id", "deployment_name", "id"),
    Index("ix_run_logs_timestamp", "timestamp"),
    Index("ix_run_logs_level_id", "level", "id"),
)

concurrency_limits = Table(
    "concurrency_limits",
    metadata,
    Column("name", String(255), primary_key=True),  # tag limits are named `tag:<tag>`
    Column("slot_limit", Integer, nullable=False),
    # Prefect's: the rate at which ``rate_limit``'s slots free themselves; 0 for a limit
    # that only ``concurrency()`` and tag limits hold (``rate_limit`` refuses it).
    Column("slot_decay_per_second", Float, nullable=False, server_default="0", default=0.0),
    Column("created", UTCDateTime, nullable=False, default=utcnow),
    Column("updated", UTCDateTime, nullable=False, default=utcnow),
)

concurrency_slots = Table(
    "concurrency_slots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "limit_name",
        String(255),
        ForeignKey("concurrency_limits.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("holder", String(255), nullable=False),  # hostname:pid:token
    Column("occupy", Integer, nullable=False, server_default="1", default=1),
    Column("acquired_at", UTCDateTime, nullable=False, default=utcnow),
    # A ``rate_limit`` slot's: when it frees itself (it is never released); null for a slot
    # held until its holder releases it. Each rate-limit slot is a row of occupy 1.
    Column("release_at", UTCDateTime),
    Index("ix_concurrency_slots_limit_name", "limit_name"),
    Index("ix_concurrency_slots_holder", "holder"),
)

# Finished runs of deployments counted by (bin span, deployment, bin of their nominal time,
# final state): what the dashboard's overview timeline reads, so a day of 1,000 deployments
# firing every minute is ~400,000 small rows rather than 1.44 million runs to group per
# request. Each run is counted in a bin of each span of ``RUN_BIN_SPANS`` (5 min, 15 min,
# 1 h), so a window reads about one row per column it shows, and in the hour's bin of every
# deployment (``ALL_DEPLOYMENTS``), which the day's totals read. Kept by triggers on flow_runs
# (migration 0011) in the transaction that writes the run, whichever code path that is;
# ``bin_start`` is seconds since the epoch, a multiple of its ``span``. A later migration
# that rebuilds flow_runs on SQLite (batch mode) drops its triggers and must create them
# again (see docs/design.md, "The overview's data").
RUN_BIN_SPANS = (300, 900, 3600)
ALL_DEPLOYMENTS = ""  # no deployment's name (the name rule refuses it)
run_bins = Table(
    "run_bins",
    metadata,
    Column("span", Integer, nullable=False),
    Column("deployment_name", String(100), nullable=False),
    Column("bin_start", BigInteger, nullable=False),
    _enum("state_type", 32, StateType, nullable=False),
    Column("state_name", Text, nullable=False),  # '' for a run without a name
    Column("runs", Integer, nullable=False),
    PrimaryKeyConstraint("span", "deployment_name", "bin_start", "state_type", "state_name"),
    # A state's runs by deployment (the Missed ones of the last day).
    Index("ix_run_bins_span_state_name_bin_start", "span", "state_name", "bin_start"),
)

# Artifacts a run created (``gnomon.artifacts``): markdown, tables, links, images and
# progress. A keyed artifact's history is its rows with that key; the newest is its latest.
artifacts = Table(
    "artifacts",
    metadata,
    _id(),
    Column("key", String(255)),
    Column("type", String(32), nullable=False),  # markdown, table, link, image, progress
    Column("description", Text),
    _json("data", "Any"),
    _flow_run_ref(),
    Column("task_run_id", String(32)),
    Column("created", UTCDateTime, nullable=False, default=utcnow),
    Column("updated", UTCDateTime, nullable=False, default=utcnow),
    Index("ix_artifacts_key_created", "key", "created"),
    Index("ix_artifacts_flow_run_id", "flow_run_id"),
)

# Variables (``gnomon.variables.Variable``): named JSON values that flows read and operators
# set; each change is audited.
variables = Table(
    "variables",
    metadata,
    Column("name", String(255), primary_key=True),
    _json("value", "Any"),
    _json("tags", "list[str]"),
    Column("created", UTCDateTime, nullable=False, default=utcnow),
    Column("updated", UTCDateTime, nullable=False, default=utcnow),
)

# Secrets (``gnomon.blocks.system.Secret``): values encrypted with a key that is never in the
# database (a file named in the config, or systemd's credentials directory).
secrets = Table(
    "secrets",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("ciphertext", Text, nullable=False),
    Column("created", UTCDateTime, nullable=False, default=utcnow),
    Column("updated", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_by", Text),
)

# A flow run's pauses (``pause_flow_run``) and suspensions (``suspend_flow_run``), one per
# (run, key): the input it waits for (a JSON schema), until when, and once resumed, by whom
# and with what input. A suspended run starts again from the top when resumed; its pause
# call finds its row resumed and returns the input at once.
run_pauses = Table(
    "run_pauses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _flow_run_ref(nullable=False),
    Column("pause_key", String(255), nullable=False),
    Column("suspend", Boolean, nullable=False, server_default=false(), default=False),
    Column("created", UTCDateTime, nullable=False, default=utcnow),
    Column("timeout_at", UTCDateTime),
    _json("input_schema", "dict[str, Any]"),
    Column("description", Text),
    Column("resumed_at", UTCDateTime),
    Column("resumed_by", Text),
    _json("input", "dict[str, Any]"),
    Index("uq_run_pauses_flow_run_id_pause_key", "flow_run_id", "pause_key", unique=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("timestamp", UTCDateTime, nullable=False, default=utcnow),
    Column("actor", Text, nullable=False),  # the OS user (CLI) or the token's name (API)
    _enum("origin", 16, Origin, nullable=False),
    _enum("action", 32, AuditAction, nullable=False),
    Column("target", Text),  # a deployment name, run id, token name or tag limit
    Column("reason", Text),
    _json("detail", "dict[str, Any]"),
    Index("ix_audit_log_timestamp", "timestamp"),
)

config_reloads = Table(
    "config_reloads",
    metadata,
    # The generation: `gnomon daemon reload`, `deployments apply` and the API insert a
    # request, the daemon answers it with the outcome of the reload that read the config
    # after it, and the command waits for that.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("requested_at", UTCDateTime, nullable=False, default=utcnow),
    Column("requested_by", Text, nullable=False),
    _enum("origin", 16, Origin, nullable=False),  # the daemon's own: a SIGHUP
    _enum("status", 16, ReloadStatus, nullable=False),
    Column("finished_at", UTCDateTime),
    _json("detail", "dict[str, Any]"),  # added, removed, changed fields, kept, problems
    Index("ix_config_reloads_status", "status"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", String(100), primary_key=True),
    # SHA-256 of the token: tokens are 256-bit random strings, so a plain digest cannot be
    # reversed or guessed, and lookups stay one indexed equality.
    Column("token_hash", String(64), nullable=False, unique=True),
    # Kept in step with ``access`` (read_only is access == read) for daemons older than it.
    Column("read_only", Boolean, nullable=False, server_default=false(), default=False),
    Column("created", UTCDateTime, nullable=False, default=utcnow),
    Column("created_by", Text),
    Column("last_used", UTCDateTime),
    # What the token may do; None in rows older than it: read if read_only, else admin.
    _enum("access", 16, TokenAccess),
    Column("expires_at", UTCDateTime),  # None: it does not expire
)

# Breaches of deployments' deadline and freshness policies (late_after, deadline,
# min_duration, fresh_within), recorded by the daemon before it tells the [[notify]]
# targets, so that a restart never tells one twice: one row per (deployment, kind, nominal
# time), the nominal time being the run's (one run per deployment and nominal time), or for
# ``stale`` when the deployment went stale. ``notified``: its event was handed to the
# targets that want it (also when none does); ``cleared_at``: when it ended.
breaches = Table(
    "breaches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment_name", String(100), nullable=False),
    _enum("kind", 16, BreachKind, nullable=False),
    _flow_run_ref(),
    Column("nominal_time", UTCDateTime, nullable=False),
    # The policy's value when it was found (late_after, deadline, ...), in seconds.
    Column("limit_seconds", Float, nullable=False),
    Column("detected_at", UTCDateTime, nullable=False, default=utcnow),
    Column("cleared_at", UTCDateTime),
    Column("notified", Boolean, nullable=False, server_default=false(), default=False),
    Index(
        "uq_breaches_deployment_name_kind_nominal_time",
        "deployment_name",
        "kind",
        "nominal_time",
        unique=True,
    ),
    # A deployment's breaches newest first (its page), and everyone's (`gnomon breaches ls`).
    Index("ix_breaches_deployment_name_detected_at", "deployment_name", "detected_at"),
    Index("ix_breaches_detected_at", "detected_at"),
    # The open ones: what the daemon reads at start, and `--open` lists.
    Index("ix_breaches_cleared_at", "cleared_at"),
)

# Maintenance windows: [starts_at, ends_at) in which the deployments named (``deployments``)
# or tagged (``tags``), or all if neither, do not fire. ``source``: "operator" for one
# `gnomon maintenance add` or the API added (removed the same way, each audited), "config"
# for a [[maintenance]] entry, which the daemon's sync keeps as the file says (``name``:
# the entry's). Past windows stay, for `maintenance ls --all`.
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("reason", Text),
    _json("deployments", "list[str]"),
    _json("tags", "list[str]"),
    _enum("source", 16, MaintenanceSource, nullable=False),
    Column("name", String(100)),
    Column("created", UTCDateTime, nullable=False, default=utcnow),
    Column("created_by", Text),
    # The windows not over yet (what the daemon and `maintenance ls` read).
    Index("ix_maintenance_windows_ends_at", "ends_at"),
)

# Several daemons on one PostgreSQL database: each is a member with a lease it renews
# (times from the database's clock); a member whose lease ran out is dead, and the
# scheduler settles the runs it held.
daemons = Table(
    "daemons",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(64), nullable=False),
    Column("config", Text),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
    Column("workers", Integer, nullable=False),
    Column("busy", Integer, nullable=False),
    Column("idle", Integer, nullable=False),
    # Deployment name -> definition hash, as this daemon loaded them.
    _json("definitions", "dict[str, str]"),
    # The server process of its membership's connection: gone means the daemon is gone.
    Column("backend_pid", Integer),
)

# The one row saying which member schedules (decides fires) for the cluster, and until
# when: the scheduler renews it; another member takes it once it has run out, or once the
# holder's connection is gone.
cluster_leader = Table(
    "cluster_leader",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("daemon_id", String(255)),
    Column("epoch", Integer, nullable=False, server_default=text("0"), default=0),
    Column("backend_pid", Integer),
    Column("expires_at", UTCDateTime),
)

backfills = Table(
    "backfills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment_name", String(100), nullable=False),
    # Its range of nominal times, both included, and its order (reverse: newest first).
    Column("start", UTCDateTime, nullable=False),
    Column("end", UTCDateTime, nullable=False),
    Column("reverse", Boolean, nullable=False, server_default=false(), default=False),
    # Its own concurrency: at most this many of its runs unfinished at once.
    Column("max_concurrent", Integer, nullable=False),
    _enum("reprocess", 8, Reprocess, nullable=False),
    _json("parameters", "dict[str, Any]"),  # over the deployment's, for each of its runs
    _enum("status", 16, BackfillStatus, nullable=False),
    Column("total", Integer, nullable=False),  # nominal times in the range when asked for
    # Where the daemon is: times decided (a run made, or left), runs made, the last time
    # decided (in its order). A restarted daemon goes on after ``cursor``.
    Column("decided", Integer, nullable=False, server_default="0", default=0),
    Column("created_runs", Integer, nullable=False, server_default="0", default=0),
    Column("cursor", UTCDateTime),
    Column("requested_by", Text),
    Column("created", UTCDateTime, nullable=False, default=utcnow),
    Column("updated", UTCDateTime, nullable=False, default=utcnow),
    Column("finished_at", UTCDateTime),
    Column("reason", Text),  # a cancellation's
    # The running ones, read by the daemon's every look; a deployment's, newest first.
    Index("ix_backfills_status", "status"),
    Index("ix_backfills_deployment_name_id", "deployment_name", "id"),
)

# A run's final state types (``gnomon.states.FINAL_TYPES``), as stored.
FINAL_STATE_TYPES = tuple(sorted(str(state_type) for state_type in FINAL_TYPES))


def without_final_state(table: Table) -> ColumnElement[bool]:
    """SQL: the run in ``table`` has no final state yet. The store's writes of a run's
    state carry it, so that a run never gets a second final state (a worker's final commit
    racing the pool's timeout record, a recovered run's worker finishing after all); only a
    deliberate retry (AwaitingRetry) reopens a finished run. Its list of states is the
    statement's own: compiled ahead (``_compile``), it is written into the SQL."""
    column = table.c.state_type
    return or_(column.is_(None), column.not_in(FINAL_STATE_TYPES))


def on_its_time(table: Table) -> ColumnElement[bool]:
    """SQL: the run in ``table`` was meant to run at its nominal time (``run_on_its_time``:
    its first generation, not a backfill's), so it can be late."""
    trigger = table.c.trigger
    return and_(table.c.generation == 1, or_(trigger.is_(None), trigger != str(RunCause.BACKFILL)))


def columns(table: Table, *names: str) -> tuple[Column[Any], ...]:
    """Some of ``table``'s columns, in the order a row class of them has its fields."""
    return tuple(table.c[name] for name in names)


# Projections: the columns a query selects where the whole row would cost (see the queries).
CLAIMED_RUN = columns(
    flow_runs,
    "id",
    "name",
    "entrypoint",
    "parameters",
    "deployment_name",
    "parent_flow_run_id",
    "run_count",
    "start_time",
    "tags",
)
SCHEDULE_STATE = columns(
    deployments, "name", "anchor", "paused", "paused_until", "last_fire", "fires_from"
)
PAUSE_CHANGE = columns(deployments, "name", "paused", "paused_until")
CANCEL_REQUEST = columns(flow_runs, "id", "state_type", "state_message")
RECENT_RUN = columns(
    flow_runs, "deployment_name", "id", "state_name", "state_type", "scheduled_for", "end_time"
)
TOKEN_INFO = columns(
    api_tokens, "name", "read_only", "access", "expires_at", "created", "created_by", "last_used"
)
TOKEN_SCOPE = columns(api_tokens, "name", "read_only", "access", "expires_at")
# What the daemon's deadline watch reads of a deployment's run that has not finished.
WATCHED_RUN = columns(
    flow_runs,
    "id",
    "deployment_name",
    "scheduled_for",
    "expected_start_time",
    "created",
    "state_type",
    "state_name",
    "start_time",
    "end_time",
    "trigger",  # whether its end decides downstreams (a waiting downstream is watched too)
)

# The rows the store's reads return, by the name of their class in ``gnomon.store.rows``:
# every column of a table, or a projection's. ``python -m gnomon.store._compile`` writes
# the classes from this (and a test fails until it has), typed from the columns: a
# column's Python type, its enum (``_enum``), its JSON values (``_json``), None if nullable.
ROWS: dict[str, Table | tuple[Column[Any], ...]] = {
    "FlowRunRow": flow_runs,
    "TaskRunRow": task_runs,
    "StateRow": run_states,
    "LogRow": run_logs,
    "DeploymentRow": deployments,
    "AuditEntry": audit_log,
    "ReloadRequest": config_reloads,
    "ClaimedRun": CLAIMED_RUN,
    "ScheduleState": SCHEDULE_STATE,
    "PauseChange": PAUSE_CHANGE,
    "CancelRequest": CANCEL_REQUEST,
    "RecentRun": RECENT_RUN,
    "TokenInfo": TOKEN_INFO,
    "TokenScope": TOKEN_SCOPE,
    "RunBin": run_bins,
    "ArtifactRow": artifacts,
    "VariableRow": variables,
    "SecretRow": secrets,
    "RunPauseRow": run_pauses,
    "ConcurrencyLimitRow": concurrency_limits,
    "BreachRow": breaches,
    "BackfillRow": backfills,
    "WatchedRun": WATCHED_RUN,
    "MaintenanceRow": maintenance_windows,
    "DaemonRow": daemons,
}

# What the store's writes take, by the name of their ``TypedDict`` in ``gnomon.store.rows``:
# a new row of a table (its columns that have neither a default nor a null are required;
# an autoincremented id is the database's), or changes to one (any of its columns).
NEW_ROWS: dict[str, Table] = {
    "NewFlowRun": flow_runs,
    "NewTaskRun": task_runs,
    "NewState": run_states,
    "NewLog": run_logs,
    "NewArtifact": artifacts,
    "NewBreach": breaches,
    "NewMaintenance": maintenance_windows,
}
CHANGES: dict[str, Table] = {"FlowRunChanges": flow_runs}
