"""An index on deployments.updated: the daemon polls once a second for the deployments
whose row changed (paused or resumed by the CLI or the API), and with 10,000 registered the
table scan was most of an idle daemon's CPU.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_deployments_updated", "deployments", ["updated"])


def downgrade() -> None:
    op.drop_index("ix_deployments_updated", "deployments")
