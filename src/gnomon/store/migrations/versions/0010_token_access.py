"""api_tokens.access and api_tokens.expires_at: tokens scoped read, operate or admin, and
tokens that expire.

``read_only`` stays, kept in step (read_only is access == read), so that a daemon older
than this revision still refuses a read token's writes. Existing tokens keep what they
could do: a read-only token is read, any other admin.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("access", sa.String(16), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE api_tokens SET access = CASE WHEN read_only THEN 'read' ELSE 'admin' END")


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("access")
