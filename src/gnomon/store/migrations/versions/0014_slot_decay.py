"""Prefect's ``slot_decay_per_second`` on concurrency limits, and a release time on the
slots ``rate_limit`` takes, which free themselves then instead of being released.

Additive: a daemon of revision 0013 inserts limits without a decay (the server default, 0)
and slots without a release time (held until released, as before); it counts a rate-limit
slot until some newer process deletes it after its release time, which only limits more.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # ADD COLUMN, not a batch rebuild: SQLite keeps the tables as they are.
    op.add_column(
        "concurrency_limits",
        sa.Column("slot_decay_per_second", sa.Float(), server_default="0", nullable=False),
    )
    op.add_column(
        "concurrency_slots",
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    # Rate-limit slots would count as held forever once their release time is gone.
    op.execute(sa.text("DELETE FROM concurrency_slots WHERE release_at IS NOT NULL"))
    # DROP COLUMN (SQLite 3.35+), not a batch rebuild: dropping concurrency_limits to copy it
    # would cascade to the held slots.
    op.drop_column("concurrency_slots", "release_at")
    op.drop_column("concurrency_limits", "slot_decay_per_second")
