"""Prefect's features on gnomon's own store: artifacts, variables, secrets (encrypted),
flow runs' pauses and suspensions with their input, and deployments.source (a config file
or a serving script), so syncing one source never deactivates another's deployments.

All additive: a daemon of revision 0012 ignores them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def _flow_run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["flow_run_id"],
        ["flow_runs.id"],
        name=f"fk_{table}_flow_run_id_flow_runs",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    # ADD COLUMN, not a batch rebuild: SQLite keeps the table (and no trigger is lost).
    op.add_column("deployments", sa.Column("source", sa.Text(), nullable=True))
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("flow_run_id", sa.String(32), nullable=True),
        sa.Column("task_run_id", sa.String(32), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        _flow_run_fk("artifacts"),
    )
    op.create_index("ix_artifacts_key_created", "artifacts", ["key", "created"])
    op.create_index("ix_artifacts_flow_run_id", "artifacts", ["flow_run_id"])
    op.create_table(
        "variables",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("value", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("tags", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "run_pauses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flow_run_id", sa.String(32), nullable=False),
        sa.Column("pause_key", sa.String(255), nullable=False),
        sa.Column("suspend", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timeout_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("input_schema", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resumed_by", sa.Text(), nullable=True),
        sa.Column("input", sa.JSON(none_as_null=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        _flow_run_fk("run_pauses"),
    )
    op.create_index(
        "uq_run_pauses_flow_run_id_pause_key",
        "run_pauses",
        ["flow_run_id", "pause_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("run_pauses")
    op.drop_table("secrets")
    op.drop_table("variables")
    op.drop_table("artifacts")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("source")
