"""Reload requests: the CLI and the API ask the daemon to reload its config with a row here
and wait for the outcome the daemon writes into it (applied, partial or refused).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "config_reloads",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("requested_at", UTC_DATETIME, nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("finished_at", UTC_DATETIME),
        sa.Column("detail", JSON, nullable=True),
    )
    op.create_index("ix_config_reloads_status", "config_reloads", ["status"])


def downgrade() -> None:
    op.drop_index("ix_config_reloads_status", "config_reloads")
    op.drop_table("config_reloads")
