"""The database tables. Money is integer hundredths of a credit; times are unix seconds."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Server-wide facts that every replica must agree on: the URL signing secret, the bootstrap mark.
server_state = Table(
    "server_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# A user group sets a price ratio and the limits of its accounts (None: the server default).
# The ratio is kept as decimal text: exact on every database.
user_groups = Table(
    "user_groups",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("price_ratio", String(20), nullable=False),
    Column("rate_limit_per_minute", Integer),
    Column("max_active_tasks", Integer),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("user_group", String(64), nullable=False, default="default"),
    Column("is_admin", Boolean, nullable=False, default=False),
    # The available balance, kept equal to the sum of the ledger entries' amounts by the only
    # code that writes either (billing); the CHECK is the last wall against overdraft.
    Column("balance_cents", BigInteger, nullable=False, default=0),
    Column("created_at", Double, nullable=False),
    # Standard Webhooks signing secrets (whsec_...). They must be readable to sign with; during
    # a rotation the previous one also signs until it expires, so receivers can switch over.
    Column("webhook_secret", String(80)),
    Column("previous_webhook_secret", String(80)),
    Column("previous_secret_expires_at", Double),
    CheckConstraint("balance_cents >= 0", name="balance_not_negative"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double),
    Column("expires_at", Double),
    Column("revoked_at", Double),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("api_key_id", String(40)),
    Column("model", String(100), nullable=False),
    Column("engine", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("progress", Integer, nullable=False, default=0),
    Column("prompt", Text, nullable=False),
    Column("aspect_ratio", String(8), nullable=False),
    Column("image_keys", JSON, nullable=False),
    Column("callback_url", Text),
    # What the request carried beyond the fields vidgate acts on (SPEC.md §2: recorded).
    Column("extra", JSON, nullable=False),
    Column("user_group", String(64), nullable=False),
    Column("credits_cents", BigInteger, nullable=False),
    Column("estimated_time", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("started_at", Double),
    Column("finished_at", Double),
    # Fencing: every claim increments the attempt; a worker's writes name the attempt they hold.
    Column("attempt", Integer, nullable=False, default=0),
    Column("lease_owner", String(100)),
    Column("lease_expires_at", Double),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    # Not claimable before this time: a short backoff after a lost lease or a crash.
    Column("available_at", Double, nullable=False, default=0.0),
    # Attempts that ended without an answer (a lost lease, a crash); a graceful hand-back
    # does not count. At the model's limit the task fails.
    Column("retries", Integer, nullable=False, default=0),
    # The client's deadline (Cancel-After) and this attempt's run-time limit (the model's).
    Column("deadline_at", Double),
    Column("run_deadline_at", Double),
    # Past retention: its files are deleted and it answers 404; the row stays for the ledger.
    Column("purged_at", Double),
    Column("result_key", Text),
    Column("error_code", String(64)),
    Column("error_message", Text),
    CheckConstraint(
        "status IN ('pending', 'processing', 'completed', 'failed')", name="status_known"
    ),
    CheckConstraint("progress >= 0 AND progress <= 100", name="progress_range"),
)
Index("ix_tasks_claim", tasks.c.status, tasks.c.created_at)
Index("ix_tasks_queue", tasks.c.status, tasks.c.engine, tasks.c.created_at, tasks.c.id)
Index("ix_tasks_account_created", tasks.c.account_id, tasks.c.created_at)
Index("ix_tasks_lease", tasks.c.status, tasks.c.lease_expires_at)
Index("ix_tasks_account_status_created", tasks.c.account_id, tasks.c.status, tasks.c.created_at)
Index("ix_tasks_deadline", tasks.c.deadline_at)
Index("ix_tasks_run_deadline", tasks.c.status, tasks.c.run_deadline_at)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False, index=True),
    Column("task_id", ForeignKey("tasks.id")),
    Column("kind", String(16), nullable=False),
    # 'reserve' for a task's reservation, 'settle' for its capture or release: the unique pair
    # below makes a second reservation or a second settlement of one task impossible.
    Column("phase", String(8)),
    Column("amount_cents", BigInteger, nullable=False),
    Column("credits_cents", BigInteger, nullable=False),
    Column("balance_after_cents", BigInteger),
    Column("reason", Text),
    Column("created_at", Double, nullable=False),
    CheckConstraint(
        "kind IN ('topup', 'reserve', 'capture', 'release', 'adjustment')", name="kind_known"
    ),
    UniqueConstraint("task_id", "phase", name="uq_ledger_entries_task_phase"),
)
Index("ix_ledger_entries_account_id_id", ledger_entries.c.account_id, ledger_entries.c.id)

# The outbox: one row per task callback, written in the transaction that finishes the task.
callbacks = Table(
    "callbacks",
    metadata,
    Column("id", String(40), primary_key=True),  # the webhook-id, the same on every attempt
    Column("task_id", ForeignKey("tasks.id"), nullable=False, unique=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Double, nullable=False),
    # A dispatcher's claim: its token and until when; a write naming another token is refused.
    Column("lease_token", String(40)),
    Column("lease_until", Double),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("delivered_at", Double),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_known"),
)
Index("ix_callbacks_due", callbacks.c.status, callbacks.c.next_attempt_at)

callback_attempts = Table(
    "callback_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("callback_id", ForeignKey("callbacks.id"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("succeeded", Boolean, nullable=False),
)

# Idempotency-Key: the first request's fingerprint and, once done, its answer; kept 24 h.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", ForeignKey("accounts.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("response_status", Integer),
    Column("response_body", Text),
    Column("task_id", String(64)),
    # While in progress, until when the first request holds the key (a crash frees it).
    Column("locked_until", Double),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    CheckConstraint("status IN ('in_progress', 'done')", name="status_known"),
)
Index("ix_idempotency_keys_expires", idempotency_keys.c.expires_at)
Index("ix_tasks_finished", tasks.c.status, tasks.c.finished_at)

# Tokens of remote workers (``wk-...``): they may only speak the worker protocol. Stored hashed.
worker_tokens = Table(
    "worker_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double),
    Column("revoked_at", Double),
)
