"""task indexes that keep lists and sweeps on indexes at a million tasks

Revision ID: 0006
Revises: 0005

Measured with bench/scale.py: an account's tasks filtered by status walked every account's
tasks of that status (ix_tasks_claim) and sorted them; the deadline sweep scanned the table
once SQLite had statistics.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_tasks_account_status", table_name="tasks")
    op.create_index(
        "ix_tasks_account_status_created", "tasks", ["account_id", "status", "created_at"]
    )
    op.create_index("ix_tasks_deadline", "tasks", ["deadline_at"])
    op.create_index("ix_tasks_run_deadline", "tasks", ["status", "run_deadline_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_run_deadline", table_name="tasks")
    op.drop_index("ix_tasks_deadline", table_name="tasks")
    op.drop_index("ix_tasks_account_status_created", table_name="tasks")
    op.create_index("ix_tasks_account_status", "tasks", ["account_id", "status"])
