"""Initial schema: flow runs, task runs, their states and logs, concurrency limits and slots.

Revision ID: 0001
Revises:
Create Date: 2024-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Written out rather than imported from gnomon.store._schema: a migration describes the
# schema as it was at this revision, whatever the code says later.
UTC_DATETIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True)


def _run_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("tags", JSON, nullable=True),
        sa.Column("state_type", sa.String(32), nullable=True),
        sa.Column("state_name", sa.Text(), nullable=True),
        sa.Column("state_message", sa.Text(), nullable=True),
        sa.Column("run_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("start_time", UTC_DATETIME, nullable=True),
        sa.Column("end_time", UTC_DATETIME, nullable=True),
        sa.Column("created", UTC_DATETIME, nullable=False),
        sa.Column("updated", UTC_DATETIME, nullable=True),
        sa.Column("result_ref", JSON, nullable=True),
        sa.Column("error_type", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_traceback", sa.Text(), nullable=True),
    ]


def _flow_run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["flow_run_id"],
        ["flow_runs.id"],
        name=f"fk_{table}_flow_run_id_flow_runs",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "flow_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("flow_name", sa.Text(), nullable=False),
        sa.Column("flow_version", sa.Text(), nullable=True),
        sa.Column("entrypoint", sa.Text(), nullable=True),
        sa.Column("parent_flow_run_id", sa.String(32), nullable=True),
        sa.Column("parameters", JSON, nullable=True),
        sa.Column("expected_start_time", UTC_DATETIME, nullable=True),
        *_run_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_flow_runs"),
    )
    op.create_index("ix_flow_runs_state_type", "flow_runs", ["state_type"])
    op.create_index("ix_flow_runs_created", "flow_runs", ["created"])
    op.create_index("ix_flow_runs_parent_flow_run_id", "flow_runs", ["parent_flow_run_id"])

    op.create_table(
        "task_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("flow_run_id", sa.String(32), nullable=True),
        sa.Column("task_key", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("dynamic_key", sa.Text(), nullable=True),
        sa.Column("cache_key", sa.Text(), nullable=True),
        *_run_columns(),
        _flow_run_fk("task_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_task_runs"),
    )
    op.create_index("ix_task_runs_flow_run_id", "task_runs", ["flow_run_id"])

    op.create_table(
        "run_states",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flow_run_id", sa.String(32), nullable=True),
        sa.Column("task_run_id", sa.String(32), nullable=True),
        sa.Column("timestamp", UTC_DATETIME, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        _flow_run_fk("run_states"),
        sa.PrimaryKeyConstraint("id", name="pk_run_states"),
    )
    op.create_index("ix_run_states_flow_run_id", "run_states", ["flow_run_id"])
    op.create_index("ix_run_states_task_run_id", "run_states", ["task_run_id"])

    op.create_table(
        "run_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flow_run_id", sa.String(32), nullable=True),
        sa.Column("task_run_id", sa.String(32), nullable=True),
        sa.Column("timestamp", UTC_DATETIME, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("logger", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("extra", JSON, nullable=True),
        _flow_run_fk("run_logs"),
        sa.PrimaryKeyConstraint("id", name="pk_run_logs"),
    )
    op.create_index("ix_run_logs_flow_run_id_id", "run_logs", ["flow_run_id", "id"])
    op.create_index("ix_run_logs_task_run_id", "run_logs", ["task_run_id"])

    op.create_table(
        "concurrency_limits",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("slot_limit", sa.Integer(), nullable=False),
        sa.Column("created", UTC_DATETIME, nullable=False),
        sa.Column("updated", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_concurrency_limits"),
    )

    op.create_table(
        "concurrency_slots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("limit_name", sa.String(255), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("occupy", sa.Integer(), server_default="1", nullable=False),
        sa.Column("acquired_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["limit_name"],
            ["concurrency_limits.name"],
            name="fk_concurrency_slots_limit_name_concurrency_limits",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_concurrency_slots"),
    )
    op.create_index("ix_concurrency_slots_limit_name", "concurrency_slots", ["limit_name"])
    op.create_index("ix_concurrency_slots_holder", "concurrency_slots", ["holder"])


def downgrade() -> None:
    for table in (
        "concurrency_slots",
        "concurrency_limits",
        "run_logs",
        "run_states",
        "task_runs",
        "flow_runs",
    ):
        op.drop_table(table)
