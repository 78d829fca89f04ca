"""The Alembic migrations build exactly the schema the code declares, and run once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from vidgate.store.database import Database
from vidgate.store.tables import metadata


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_tables(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        await db.migrate()
        await db.migrate()  # a second start changes nothing and does not fail
        async with db.read() as conn:
            assert await conn.run_sync(_differences) == []
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"accounts", "api_keys", "tasks", "ledger_entries", "user_groups"} <= tables
    finally:
        await db.close()


@pytest.mark.postgres
async def test_postgres_replicas_migrating_at_once_build_the_same_schema(
    empty_postgres_url: str,
) -> None:
    replicas = [Database(empty_postgres_url) for _ in range(3)]
    try:
        # They take turns on an advisory lock; the later ones find the schema at head.
        await asyncio.gather(*(db.migrate() for db in replicas))
        async with replicas[0].read() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        for db in replicas:
            await db.close()
