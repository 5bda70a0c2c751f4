"""Several daemons on one PostgreSQL database: the ``daemons`` members with their leases,
the ``cluster_leader`` row, ``flow_runs.released_at`` (runs handed to whichever daemon
takes them) and ``deployments.definition_hash``.

Additive: a daemon of an earlier revision neither reads nor writes them (it takes the
database's advisory lock and runs alone, as it always did).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "daemons",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("config", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workers", sa.Integer, nullable=False),
        sa.Column("busy", sa.Integer, nullable=False),
        sa.Column("idle", sa.Integer, nullable=False),
        sa.Column("definitions", sa.JSON(none_as_null=True)),
        sa.Column("backend_pid", sa.Integer),
    )
    leader = op.create_table(
        "cluster_leader",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("daemon_id", sa.String(255)),
        sa.Column("epoch", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("backend_pid", sa.Integer),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(leader, [{"id": 1, "epoch": 0}])
    # ADD COLUMN, not a batch rebuild: SQLite keeps the tables (and triggers) as they are.
    op.add_column("flow_runs", sa.Column("released_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_flow_runs_released_at",
        "flow_runs",
        ["released_at"],
        sqlite_where=sa.text("released_at IS NOT NULL"),
        postgresql_where=sa.text("released_at IS NOT NULL"),
    )
    op.add_column("deployments", sa.Column("definition_hash", sa.String(64)))


def downgrade() -> None:
    op.drop_column("deployments", "definition_hash")
    op.drop_index("ix_flow_runs_released_at", table_name="flow_runs")
    op.drop_column("flow_runs", "released_at")
    op.drop_table("cluster_leader")
    op.drop_table("daemons")
