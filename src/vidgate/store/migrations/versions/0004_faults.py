"""claim backoff, deadlines, idempotency keys

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("available_at", sa.Double(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("deadline_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("run_deadline_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("purged_at", sa.Double(), nullable=True))
        batch.create_index("ix_tasks_finished", ["status", "finished_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("locked_until", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "status IN ('in_progress', 'done')", name=op.f("ck_idempotency_keys_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_idempotency_keys_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.create_index("ix_idempotency_keys_expires", ["expires_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_finished")
        batch.drop_column("purged_at")
        batch.drop_column("run_deadline_at")
        batch.drop_column("deadline_at")
        batch.drop_column("retries")
        batch.drop_column("available_at")
