"""deployments.fires_from replaces deployments.next_fire.

``next_fire`` was written at every fire and read by nothing: the next fires are computed
from the schedule. ``fires_from`` is what catch-up lacked: the time from which the schedule
decides fires, set when the deployment is registered, comes back into the config, or is
resumed. A daemon starting after downtime catches up from the later of it and the last
fire, so a deployment that never fired no longer loses the fires due while no daemon ran,
and a deployment resumed while none ran does not catch up its paused period.

Rows that exist take their registration time: the best the store knows.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("fires_from", sa.DateTime(timezone=True), nullable=True))
        batch.drop_column("next_fire")
    op.execute("UPDATE deployments SET fires_from = registered_at")


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("next_fire", sa.DateTime(timezone=True), nullable=True))
        batch.drop_column("fires_from")
