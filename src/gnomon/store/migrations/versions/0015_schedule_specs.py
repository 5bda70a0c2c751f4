"""deployments.schedule_specs: a deployment's full schedule when ``schedule_kind`` and
``schedule`` do not say it all (several specs, an rrule, active_from / active_until, DST
choices, a spec's own parameters), as JSON.

Additive: rows of a lone cron or interval keep it null and read as before. For the others
``schedule_kind`` / ``schedule`` hold the first spec, so a daemon or CLI of revision 0014
reading such a row sees that spec alone (one whose first spec is an rrule has
``schedule_kind = 'rrule'``, which 0014 does not know).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # ADD COLUMN, not a batch rebuild: SQLite keeps the table as it is.
    op.add_column("deployments", sa.Column("schedule_specs", sa.JSON(none_as_null=True)))


def downgrade() -> None:
    op.drop_column("deployments", "schedule_specs")
