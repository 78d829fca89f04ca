"""user groups, the key behind each task, the balance after each ledger entry

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    groups = op.create_table(
        "user_groups",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("price_ratio", sa.String(length=20), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True),
        sa.Column("max_active_tasks", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_user_groups")),
    )
    now = time.time()
    op.bulk_insert(
        groups,
        [{"name": "default", "price_ratio": "1.0", "created_at": now, "updated_at": now}],
    )
    op.add_column("tasks", sa.Column("api_key_id", sa.String(length=40), nullable=True))
    op.add_column(
        "ledger_entries", sa.Column("balance_after_cents", sa.BigInteger(), nullable=True)
    )
    with op.batch_alter_table("ledger_entries") as batch:
        batch.create_index("ix_ledger_entries_account_id_id", ["account_id", "id"])
    with op.batch_alter_table("tasks") as batch:
        batch.create_index("ix_tasks_account_status", ["account_id", "status"])


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_account_status")
        batch.drop_column("api_key_id")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_index("ix_ledger_entries_account_id_id")
        batch.drop_column("balance_after_cents")
    op.drop_table("user_groups")
