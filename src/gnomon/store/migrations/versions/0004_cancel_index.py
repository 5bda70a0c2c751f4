"""An index on flow_runs.cancel_requested_at: the daemon looks for new cancellation
requests every second, which without it reads every run ever stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_flow_runs_cancel_requested_at", "flow_runs", ["cancel_requested_at"])


def downgrade() -> None:
    op.drop_index("ix_flow_runs_cancel_requested_at", "flow_runs")
