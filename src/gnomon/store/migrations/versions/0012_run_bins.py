"""run_bins: finished runs of deployments counted by deployment, bin of their nominal time
(5 min, 15 min and 1 h wide, each run in one of each, and in the hour's of every
deployment, named '') and final state, for the dashboard's overview; kept by triggers on
flow_runs and filled from the runs already stored.

Triggers, not the store's write paths: a run reaches its final state through the batched
writer, the scheduler (Missed, Skipped), recovery (Crashed), cancellation and retries, each
in its own statement; a trigger counts it in the same transaction whichever way it came, and
uncounts it when it leaves that state (a retry) or is deleted (pruning).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

# As of this revision (a migration is history: it does not import the live constants).
SPANS = (300, 900, 3600)
FINAL = "('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')"
KEY = "span, deployment_name, bin_start, state_type, state_name"


def _bin(row: str, dialect: str, span: int) -> str:
    """SQL for the ``span``-wide bin of ``row``'s nominal time (its creation without one)."""
    moment = f"COALESCE({row}.scheduled_for, {row}.created)"
    if dialect == "sqlite":
        # To the second first: SQLite's date functions round 09:59.9999995 up to 10:00.
        seconds = f"CAST(strftime('%s', substr({moment}, 1, 19)) AS INTEGER)"
        return f"({seconds} / {span}) * {span}"
    return f"(FLOOR(EXTRACT(EPOCH FROM {moment}) / {span}) * {span})::BIGINT"


def _counted(row: str) -> str:
    return f"{row}.deployment_name IS NOT NULL AND {row}.state_type IN {FINAL}"


def _bins(row: str, dialect: str) -> list[tuple[int, str, str]]:
    """The bins the run ``row`` counts in: (span, deployment, bin start) as SQL; its
    deployment's of each span, and the hour's of every deployment ('')."""
    deployment = f"{row}.deployment_name"
    hour = SPANS[-1]
    own = [(span, deployment, _bin(row, dialect, span)) for span in SPANS]
    return [*own, (hour, "''", _bin(row, dialect, hour))]


def _add(row: str, dialect: str) -> str:
    """One statement adding the run ``row`` to each of its bins."""
    values = ", ".join(
        f"({span}, {deployment}, {start}, {row}.state_type, COALESCE({row}.state_name, ''), 1)"
        for span, deployment, start in _bins(row, dialect)
    )
    return (
        f"INSERT INTO run_bins ({KEY}, runs) VALUES {values} "
        f"ON CONFLICT ({KEY}) DO UPDATE SET runs = run_bins.runs + 1"
    )


def _remove(row: str, dialect: str) -> list[str]:
    """Statements taking the run ``row`` out of its bins, and dropping bins left empty."""
    bins = " OR ".join(
        f"(span = {span} AND deployment_name = {deployment} AND bin_start = {start})"
        for span, deployment, start in _bins(row, dialect)
    )
    match = (
        f"({bins}) AND state_type = {row}.state_type "
        f"AND state_name = COALESCE({row}.state_name, '')"
    )
    return [
        f"UPDATE run_bins SET runs = runs - 1 WHERE {match}",
        f"DELETE FROM run_bins WHERE {match} AND runs <= 0",
    ]


# What a change of these columns can move between bins.
WATCHED = "state_type, state_name, deployment_name, scheduled_for"


def _sqlite_triggers() -> list[str]:
    moved = (
        "(OLD.state_type, OLD.state_name, OLD.deployment_name, OLD.scheduled_for) IS NOT "
        "(NEW.state_type, NEW.state_name, NEW.deployment_name, NEW.scheduled_for)"
    )
    unkey = "; ".join(_remove("OLD", "sqlite"))
    return [
        f"CREATE TRIGGER run_bins_insert AFTER INSERT ON flow_runs "
        f"WHEN {_counted('NEW')} BEGIN {_add('NEW', 'sqlite')}; END",
        f"CREATE TRIGGER run_bins_leave AFTER UPDATE OF {WATCHED} ON flow_runs "
        f"WHEN {_counted('OLD')} AND {moved} BEGIN {unkey}; END",
        f"CREATE TRIGGER run_bins_enter AFTER UPDATE OF {WATCHED} ON flow_runs "
        f"WHEN {_counted('NEW')} AND {moved} BEGIN {_add('NEW', 'sqlite')}; END",
        f"CREATE TRIGGER run_bins_delete AFTER DELETE ON flow_runs "
        f"WHEN {_counted('OLD')} BEGIN {unkey}; END",
    ]


def _postgresql_triggers() -> list[str]:
    unkey = "; ".join(_remove("OLD", "postgresql"))
    function = f"""
CREATE FUNCTION run_bins_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND (OLD.state_type, OLD.state_name, OLD.deployment_name,
      OLD.scheduled_for) IS NOT DISTINCT FROM (NEW.state_type, NEW.state_name,
      NEW.deployment_name, NEW.scheduled_for) THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') AND {_counted("OLD")} THEN
    {unkey};
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') AND {_counted("NEW")} THEN
    {_add("NEW", "postgresql")};
  END IF;
  RETURN NULL;
END $$"""
    return [
        function,
        f"CREATE TRIGGER run_bins_track AFTER INSERT OR DELETE OR UPDATE OF {WATCHED} "
        f"ON flow_runs FOR EACH ROW EXECUTE FUNCTION run_bins_track()",
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "run_bins",
        sa.Column("span", sa.Integer(), nullable=False),
        sa.Column("deployment_name", sa.String(100), nullable=False),
        sa.Column("bin_start", sa.BigInteger(), nullable=False),
        sa.Column("state_type", sa.String(32), nullable=False),
        sa.Column("state_name", sa.Text(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "span", "deployment_name", "bin_start", "state_type", "state_name", name="pk_run_bins"
        ),
    )
    op.create_index(
        "ix_run_bins_span_state_name_bin_start", "run_bins", ["span", "state_name", "bin_start"]
    )
    for span, deployment, start in _bins("r", dialect):
        op.execute(
            f"INSERT INTO run_bins ({KEY}, runs) SELECT {span}, {deployment}, {start}, "
            f"state_type, COALESCE(state_name, ''), COUNT(*) "
            f"FROM flow_runs AS r WHERE {_counted('r')} GROUP BY 1, 2, 3, 4, 5"
        )
    triggers = _sqlite_triggers() if dialect == "sqlite" else _postgresql_triggers()
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "leave", "enter", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS run_bins_{name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS run_bins_track ON flow_runs")
        op.execute("DROP FUNCTION IF EXISTS run_bins_track()")
    op.drop_index("ix_run_bins_span_state_name_bin_start", "run_bins")
    op.drop_table("run_bins")
