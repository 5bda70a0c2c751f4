"""The vocabularies of the store's text columns that code branches on, as enums; a module
free of SQLAlchemy for the command line's fast path. (Run states are ``gnomon.states``.)"""

from __future__ import annotations

import enum


class RunCause(enum.StrEnum):
    """Why a deployment's run exists (``flow_runs.trigger``)."""

    SCHEDULE = "schedule"  # a fire time of its schedule, decided on time (or late)
    CATCHUP = "catchup"  # a fire time missed while no daemon ran, run by the catch-up policy
    MANUAL = "manual"  # `gnomon run` or the API's run request
    RETRY = "retry"  # `gnomon runs retry` of a finished run
    BACKFILL = "backfill"  # a backfill's run of a nominal time that had passed
    # The end of its upstreams' runs at its nominal time (a deployment's ``after``)
    UPSTREAM = "upstream"


# Runs a schedule decided: each (deployment, nominal time) has at most one.
SCHEDULED_CAUSES = frozenset({RunCause.SCHEDULE, RunCause.CATCHUP})
# Runs an operator asked for. A time whose first run is one (a manual run's: when it was
# asked for) is no schedule's: its runs start no downstream (``after``).
REQUESTED_CAUSES = frozenset({RunCause.MANUAL, RunCause.RETRY})


def run_on_its_time(trigger: str | None, generation: int | None) -> bool:
    """Whether a run was meant to run at its nominal time: its first generation, unless a
    backfill made it. Later generations (a retry) and a backfill's runs run after their
    time on purpose, so the deadline watch judges only the others against late_after and
    deadline."""
    return generation in (None, 1) and trigger != RunCause.BACKFILL


class Reprocess(enum.StrEnum):
    """Which nominal times that have a run a backfill runs again (``backfills.reprocess``):
    none, those whose newest run failed, or all; as their next generation."""

    NONE = "none"
    FAILED = "failed"
    ALL = "all"


class BackfillStatus(enum.StrEnum):
    """Where a backfill stands (``backfills.status``)."""

    RUNNING = "running"  # the daemon creates its runs (or will, once one runs)
    COMPLETED = "completed"  # every time decided and every run it made finished
    CANCELLED = "cancelled"  # cancelled by an operator: no more runs


class BreachKind(enum.StrEnum):
    """Which of a deployment's deadline and freshness policies a breach broke
    (``breaches.kind``); each is also the notification event that tells of it."""

    LATE = "late"  # a run not started by its nominal time + late_after
    DEADLINE_MISSED = "deadline_missed"  # a run not finished by its nominal time + deadline
    TOO_FAST = "too_fast"  # a run that completed in less than min_duration
    STALE = "stale"  # no run completed within fresh_within

    @property
    def policy(self) -> str:
        """The deployment policy this kind of breach breaks."""
        return _BREACH_POLICIES[self]


_BREACH_POLICIES = {
    BreachKind.LATE: "late_after",
    BreachKind.DEADLINE_MISSED: "deadline",
    BreachKind.TOO_FAST: "min_duration",
    BreachKind.STALE: "fresh_within",
}


class AuditAction(enum.StrEnum):
    """What an audit log entry records (``audit_log.action``)."""

    PAUSE = "pause"
    RESUME = "resume"
    RELOAD = "reload"  # a config reload's outcome
    APPLY = "apply"  # `gnomon apply`: a config checked and written
    # A deployment a killed serving script left scheduled, taken by the source starting now
    TAKEOVER = "takeover"
    RELEASE = "release"  # `gnomon deployments release`: such a deployment retired
    RUN = "run"  # a manual run requested
    RETRY = "retry"  # a finished run requested again
    BACKFILL = "backfill"  # a backfill asked for (its id the target)
    BACKFILL_CANCEL = "backfill-cancel"
    CANCEL = "cancel"
    RUN_RESUME = "run-resume"  # a paused or suspended flow run resumed (with its input)
    LIMIT_SET = "limit-set"
    LIMIT_RM = "limit-rm"
    TOKEN_CREATE = "token-create"
    TOKEN_REVOKE = "token-revoke"
    VARIABLE_SET = "variable-set"  # a variable created or overwritten (its new value kept)
    VARIABLE_RM = "variable-rm"  # a variable removed (its last value kept)
    SECRET_SET = "secret-set"  # a secret created or overwritten (never its value)
    SECRET_RM = "secret-rm"
    SECRET_ROTATE = "secret-rotate"  # every secret encrypted again with the key file's first key
    MAINTENANCE_ADD = "maintenance-add"  # an ad-hoc maintenance window added
    MAINTENANCE_RM = "maintenance-rm"  # ... removed (its span and reason kept in the detail)
    PRUNE = "prune"  # old runs and log lines deleted (retain_runs, `gnomon db prune`): counts
    VACUUM = "vacuum"  # `gnomon db vacuum`: a SQLite store rewritten, its sizes before and after


class MaintenanceSource(enum.StrEnum):
    """Where a maintenance window comes from (``maintenance_windows.source``)."""

    OPERATOR = "operator"  # `gnomon maintenance add`, the API: removed the same way
    CONFIG = "config"  # a [[maintenance]] entry, as the daemon's sync last wrote it


class TokenAccess(enum.StrEnum):
    """What an API token may do (``api_tokens.access``), each level including the ones
    before it: read (GET), operate (pause, resume, run, cancel, retry), admin (everything:
    tokens, apply, reload, concurrency limits)."""

    READ = "read"
    OPERATE = "operate"
    ADMIN = "admin"

    @classmethod
    def of(cls, access: str | None, read_only: bool) -> TokenAccess:
        """A stored token's access; a row older than the column's is read if read-only,
        else admin (what it could do then)."""
        if access is not None:
            return cls(access)
        return cls.READ if read_only else cls.ADMIN

    def allows(self, needed: TokenAccess) -> bool:
        """Whether a token with this access may do what needs ``needed``."""
        order = list(TokenAccess)
        return order.index(self) >= order.index(needed)


class Origin(enum.StrEnum):
    """Through what a change was made (``audit_log.origin``)."""

    CLI = "cli"
    API = "api"
    DASHBOARD = "dashboard"
    DAEMON = "daemon"
    # gnomon's Python API in a flow or a script: Variable.set, Secret.save, resume_flow_run
    PYTHON = "python"


class Nudge(enum.StrEnum):
    """What running daemons are asked to do after an operator's change: read the store now
    (``POLL``: a pause, a cancel, a run asked for), or reload their config (``RELOAD``).
    The CLI signals a daemon on its host so (SIGUSR1, SIGHUP); on PostgreSQL the change's
    transaction also notifies every daemon on the database (``NOTIFY_CHANNEL``)."""

    POLL = "poll"
    RELOAD = "reload"
    # Runs were released to the daemons sharing the database: take them (``_cluster``).
    RELEASE = "release"


# The PostgreSQL channel a change's transaction notifies (its payload a ``Nudge``) and
# each daemon listens on (``gnomon.daemon._listen``).
NOTIFY_CHANNEL = "gnomon"


class ReloadStatus(enum.StrEnum):
    """Where a config reload request stands (``config_reloads.status``): waiting for the
    daemon, or the reload's outcome."""

    PENDING = "pending"
    APPLIED = "applied"
    PARTIAL = "partial"
    REFUSED = "refused"

    @property
    def exit_code(self) -> int:
        """A command's exit code for this outcome: 0 applied, 1 applied but for the
        deployments with problems, 2 nothing applied."""
        return {ReloadStatus.APPLIED: 0, ReloadStatus.PARTIAL: 1}.get(self, 2)
