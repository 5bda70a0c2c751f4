"""Deployments and scheduled runs: the deployments table, and on flow runs the deployment,
nominal fire time, trigger, owning daemon and worker outcome.

A scheduled run is identified by (deployment_name, scheduled_for) under a unique index, so
a restart, a reload or a second daemon can never create the same run twice.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("flow", sa.Text(), nullable=False),
        sa.Column("schedule_kind", sa.String(16), nullable=False),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column("anchor", UTC_DATETIME, nullable=True),
        sa.Column("parameters", JSON, nullable=True),
        sa.Column("tags", JSON, nullable=True),
        sa.Column("policies", JSON, nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("paused_by", sa.Text(), nullable=True),
        sa.Column("paused_at", UTC_DATETIME, nullable=True),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.Column("last_fire", UTC_DATETIME, nullable=True),
        sa.Column("next_fire", UTC_DATETIME, nullable=True),
        sa.Column("registered_at", UTC_DATETIME, nullable=False),
        sa.Column("updated", UTC_DATETIME, nullable=False),
    )
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(sa.Column("deployment_name", sa.String(100), nullable=True))
        batch.add_column(sa.Column("scheduled_for", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("trigger", sa.String(16), nullable=True))
        batch.add_column(sa.Column("daemon_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("worker_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("exit_code", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("signal", sa.Text(), nullable=True))
    op.create_index(
        "uq_flow_runs_deployment_name_scheduled_for",
        "flow_runs",
        ["deployment_name", "scheduled_for"],
        unique=True,
    )
    op.create_index(
        "ix_flow_runs_deployment_name_created", "flow_runs", ["deployment_name", "created"]
    )


def downgrade() -> None:
    op.drop_index("ix_flow_runs_deployment_name_created", "flow_runs")
    op.drop_index("uq_flow_runs_deployment_name_scheduled_for", "flow_runs")
    with op.batch_alter_table("flow_runs") as batch:
        for column in (
            "signal",
            "exit_code",
            "worker_pid",
            "daemon_id",
            "trigger",
            "scheduled_for",
            "deployment_name",
        ):
            batch.drop_column(column)
    op.drop_table("deployments")
