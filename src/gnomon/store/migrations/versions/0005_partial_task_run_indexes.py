"""The task_run_id indexes of run_states and run_logs leave out a flow run's own rows
(null task_run_id), which no query looks up by task run: a daemon's trivial run wrote 3 of
its 20 WAL pages for those null entries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("run_states", "run_logs")


def upgrade() -> None:
    where = sa.text("task_run_id IS NOT NULL")
    for table in TABLES:
        op.drop_index(f"ix_{table}_task_run_id", table)
        op.create_index(
            f"ix_{table}_task_run_id",
            table,
            ["task_run_id"],
            sqlite_where=where,
            postgresql_where=where,
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_task_run_id", table)
        op.create_index(f"ix_{table}_task_run_id", table, ["task_run_id"])
