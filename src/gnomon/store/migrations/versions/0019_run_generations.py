"""Run generations: a run's identity becomes (deployment, nominal time, generation).

``flow_runs.generation``: 1 for the first run of a nominal time (a fire, a manual run);
`gnomon runs retry` creates the next one for the same nominal time instead of a run
whose nominal time is the request's. The unique key (deployment_name, scheduled_for)
becomes (deployment_name, scheduled_for, generation).

Additive: rows that exist are generation 1 (the column's server default), and a daemon of
revision 0017 inserts generation 1 without naming it; its fires still meet the first
generation's key (its insert has no conflict target), so a fire is still created once.

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0017"
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


def downgrade() -> None:
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
