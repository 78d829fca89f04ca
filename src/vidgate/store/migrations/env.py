"""Alembic environment: runs on the connection that ``Database.migrate`` hands over."""

from __future__ import annotations

from alembic import context

from vidgate.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("vidgate runs its migrations itself: use Database.migrate()")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
context.run_migrations()
