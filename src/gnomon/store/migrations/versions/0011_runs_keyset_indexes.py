"""The runs listing's indexes end with the run's id: the listing is ordered by (created, id)
newest first, and a page starts below the previous page's last (created, id). With the id
in the index, a page of any depth, filtered by deployment or not, is one index range read in
order, with no sort of the runs created in the same instant.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_flow_runs_created_id", "flow_runs", ["created", "id"])
    op.drop_index("ix_flow_runs_created", "flow_runs")
    op.create_index(
        "ix_flow_runs_deployment_name_created_id",
        "flow_runs",
        ["deployment_name", "created", "id"],
    )
    op.drop_index("ix_flow_runs_deployment_name_created", "flow_runs")


def downgrade() -> None:
    op.create_index(
        "ix_flow_runs_deployment_name_created", "flow_runs", ["deployment_name", "created"]
    )
    op.drop_index("ix_flow_runs_deployment_name_created_id", "flow_runs")
    op.create_index("ix_flow_runs_created", "flow_runs", ["created"])
    op.drop_index("ix_flow_runs_created_id", "flow_runs")
