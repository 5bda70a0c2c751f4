"""Pauses that end by themselves, and the config file's `paused` as last synced.

``deployments.paused_until``: when the daemon resumes a paused deployment on its own
(`gnomon pause --until/--for`); null for a pause that lasts until resumed.
``deployments.config_paused``: the file's ``paused = true/false`` as last synced (null:
not stated). A sync applies the file's value only when it differs from this one, so a
file that keeps saying ``paused = false`` no longer undoes an operator's pause at every
reload. Rows that exist have none: a file that states ``paused`` is applied once more, at
the first sync after the upgrade (as every sync did before), and from then on only when
it changes.

Additive: a daemon of revision 0014 ignores both columns (it neither ends a timed pause
nor keeps the file's value, and applies the file's ``paused`` at every sync, as before).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # ADD COLUMN, not a batch rebuild: SQLite keeps the table as it is.
    op.add_column("deployments", sa.Column("paused_until", sa.DateTime(timezone=True)))
    op.add_column("deployments", sa.Column("config_paused", sa.Boolean()))


def downgrade() -> None:
    op.drop_column("deployments", "config_paused")
    op.drop_column("deployments", "paused_until")
