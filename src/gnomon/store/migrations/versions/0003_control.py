"""Operator control: the audit log, API tokens, run requests and searchable logs.

On flow runs: a requested cancellation, who asked for a manual run or retry (and of which
run), and whether it overrides the overlap policy. On run logs: the deployment a line is
about, and indexes for ``gnomon logs`` filters over millions of lines.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("timestamp", UTC_DATETIME, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", JSON, nullable=True),
    )
    op.create_index("ix_audit_log_timestamp", "audit_log", ["timestamp"])
    op.create_table(
        "api_tokens",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("last_used", UTC_DATETIME, nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    with op.batch_alter_table("flow_runs") as batch:
        batch.add_column(sa.Column("cancel_requested_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("requested_by", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("force", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("retry_of", sa.String(32), nullable=True))
    with op.batch_alter_table("run_logs") as batch:
        batch.add_column(sa.Column("deployment_name", sa.String(100), nullable=True))
    op.create_index("ix_run_logs_deployment_name_id", "run_logs", ["deployment_name", "id"])
    op.create_index("ix_run_logs_timestamp", "run_logs", ["timestamp"])
    op.create_index("ix_run_logs_level_id", "run_logs", ["level", "id"])


def downgrade() -> None:
    op.drop_index("ix_run_logs_level_id", "run_logs")
    op.drop_index("ix_run_logs_timestamp", "run_logs")
    op.drop_index("ix_run_logs_deployment_name_id", "run_logs")
    with op.batch_alter_table("run_logs") as batch:
        batch.drop_column("deployment_name")
    with op.batch_alter_table("flow_runs") as batch:
        for column in ("retry_of", "force", "requested_by", "cancel_requested_at"):
            batch.drop_column(column)
    op.drop_table("api_tokens")
    op.drop_table("audit_log")
