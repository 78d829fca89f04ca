"""the callback outbox, its attempt log, and per-account webhook secrets

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("webhook_secret", sa.String(length=80), nullable=True))
    op.add_column(
        "accounts", sa.Column("previous_webhook_secret", sa.String(length=80), nullable=True)
    )
    op.add_column("accounts", sa.Column("previous_secret_expires_at", sa.Double(), nullable=True))
    op.create_table(
        "callbacks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Double(), nullable=False),
        sa.Column("lease_token", sa.String(length=40), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name=op.f("ck_callbacks_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_callbacks_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_callbacks_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
        sa.UniqueConstraint("task_id", name=op.f("uq_callbacks_task_id")),
    )
    with op.batch_alter_table("callbacks") as batch:
        batch.create_index("ix_callbacks_due", ["status", "next_attempt_at"])
    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("callback_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["callback_id"],
            ["callbacks.id"],
            name=op.f("fk_callback_attempts_callback_id_callbacks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempts")),
    )
    with op.batch_alter_table("callback_attempts") as batch:
        batch.create_index(batch.f("ix_callback_attempts_callback_id"), ["callback_id"])


def downgrade() -> None:
    op.drop_table("callback_attempts")
    op.drop_table("callbacks")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("previous_secret_expires_at")
        batch.drop_column("previous_webhook_secret")
        batch.drop_column("webhook_secret")
