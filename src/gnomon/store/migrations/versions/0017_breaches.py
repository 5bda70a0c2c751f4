"""breaches: deployments' deadline and freshness breaches (late, deadline_missed, too_fast,
stale), recorded by the daemon before it notifies, so a restart never notifies one twice.

Additive: a daemon of revision 0014 neither reads nor writes the table.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "breaches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("flow_run_id", sa.String(32), nullable=True),
        sa.Column("nominal_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("limit_seconds", sa.Float(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(
            ["flow_run_id"],
            ["flow_runs.id"],
            name="fk_breaches_flow_run_id_flow_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "uq_breaches_deployment_name_kind_nominal_time",
        "breaches",
        ["deployment_name", "kind", "nominal_time"],
        unique=True,
    )
    op.create_index(
        "ix_breaches_deployment_name_detected_at", "breaches", ["deployment_name", "detected_at"]
    )
    op.create_index("ix_breaches_detected_at", "breaches", ["detected_at"])
    op.create_index("ix_breaches_cleared_at", "breaches", ["cleared_at"])


def downgrade() -> None:
    op.drop_table("breaches")
