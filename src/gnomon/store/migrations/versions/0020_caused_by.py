"""Runs triggered by runs: ``flow_runs.caused_by``, the upstream run whose end decided a
run of cause ``upstream`` (or its Skipped row), indexed for the runs a run caused.

Additive: a daemon of an earlier revision neither reads nor writes the column, and
downstream deployments (``after``) are not scheduled by it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # ADD COLUMN, not a batch rebuild: SQLite keeps the table (and its triggers) as it is.
    op.add_column("flow_runs", sa.Column("caused_by", sa.String(32)))
    op.create_index("ix_flow_runs_caused_by", "flow_runs", ["caused_by"])


def downgrade() -> None:
    op.drop_index("ix_flow_runs_caused_by", table_name="flow_runs")
    op.drop_column("flow_runs", "caused_by")
