"""Run generations and backfills.

A run's identity becomes (deployment, nominal time, generation).
``flow_runs.generation``: 1 for the first run of a nominal time (a fire, a manual run);
`gnomon runs retry` creates the next one for the same nominal time instead of a run
whose nominal time is the request's. The unique key (deployment_name, scheduled_for)
becomes (deployment_name, scheduled_for, generation).

Additive: rows that exist are generation 1 (the column's server default), and a daemon of
revision 0017 inserts generation 1 without naming it; its fires still meet the first
generation's key (its insert has no conflict target), so a fire is still created once.

``backfills``: a backfill's range, settings and where the daemon is (its cursor and
counts); ``flow_runs.backfill_id``: the backfill that made a run, with a partial index
(backfill_id, state_type) that the runs of no backfill stay out of. A daemon of revision
0017 neither reads nor writes them (it runs a backfill's runs it finds waiting after a
restart as any other's, under the deployment's overlap policy).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # ADD COLUMN, not a batch rebuild: SQLite keeps the table (and 0012's triggers) as is.
    op.add_column(
        "flow_runs",
        sa.Column("generation", sa.Integer(), nullable=False, server_default="1"),
    )
    op.drop_index("uq_flow_runs_deployment_name_scheduled_for", "flow_runs")
    op.create_index(
        "uq_flow_runs_deployment_name_scheduled_for_generation",
        "flow_runs",
        ["deployment_name", "scheduled_for", "generation"],
        unique=True,
    )
    op.add_column("flow_runs", sa.Column("backfill_id", sa.Integer(), nullable=True))
    backfilled = sa.text("backfill_id IS NOT NULL")
    op.create_index(
        "ix_flow_runs_backfill_id_state_type",
        "flow_runs",
        ["backfill_id", "state_type"],
        sqlite_where=backfilled,
        postgresql_where=backfilled,
    )
    op.create_table(
        "backfills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_name", sa.String(100), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reverse", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("max_concurrent", sa.Integer(), nullable=False),
        sa.Column("reprocess", sa.String(8), nullable=False),
        sa.Column("parameters", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("decided", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_runs", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cursor", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_backfills_status", "backfills", ["status"])
    op.create_index("ix_backfills_deployment_name_id", "backfills", ["deployment_name", "id"])


def downgrade() -> None:
    op.drop_table("backfills")
    op.drop_index("ix_flow_runs_backfill_id_state_type", "flow_runs")
    op.drop_column("flow_runs", "backfill_id")
    # Later generations take their creation time as nominal time, as retries did before
    # this revision, so the old key holds again and no run is lost.
    op.execute("UPDATE flow_runs SET scheduled_for = created WHERE generation > 1")
    op.drop_index("uq_flow_runs_deployment_name_scheduled_for_generation", "flow_runs")
    op.create_index(
        "uq_flow_runs_deployment_name_scheduled_for",
        "flow_runs",
        ["deployment_name", "scheduled_for"],
        unique=True,
    )
    op.drop_column("flow_runs", "generation")
