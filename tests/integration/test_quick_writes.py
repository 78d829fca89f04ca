"""A create's transaction: on SQLite through the plain driver on the loop's thread while the
write lock is free, through the async engine (which waits) while another connection holds it;
on PostgreSQL always the async engine. Either way all of it commits, or none of it."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from vidgate.services import Services
from vidgate.store import ledger_rows, task_rows
from vidgate.store.database import CHECKPOINT_EVERY, QuickConnection
from vidgate.store.tables import ledger_entries, tasks
from vidgate.tasks.service import VideoRequest

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A lighthouse in a storm"}


def file_size(path: Path) -> int:
    return path.stat().st_size


async def count_rows(services: Services) -> tuple[int, int]:
    async with services.db.read() as conn:
        task_count = (await conn.execute(select(func.count()).select_from(tasks))).scalar()
        entry_count = (
            await conn.execute(select(func.count()).select_from(ledger_entries))
        ).scalar()
    return int(task_count or 0), int(entry_count or 0)


async def test_a_create_commits_the_task_and_its_reservation_together(
    client: httpx.AsyncClient, services: Services
) -> None:
    async with services.db.write_quick() as conn:
        assert isinstance(conn, QuickConnection) == services.db.is_sqlite
    principal = await services.accounts.authenticate(client.headers["Authorization"])
    async with services.db.read() as conn:
        before = await ledger_rows.balance_cents(conn, principal.account_id)

    created = await client.post("/v1/videos/generations", json=SEED_REQUEST)
    assert created.status_code == 200
    task_id = created.json()["id"]

    # Read back through the async engine: another connection than the one that wrote.
    async with services.db.read() as conn:
        task = await task_rows.get_task(conn, task_id)
        after = await ledger_rows.balance_cents(conn, principal.account_id)
        reserved = (
            await conn.execute(
                select(ledger_entries.c.amount_cents).where(ledger_entries.c.task_id == task_id)
            )
        ).scalar_one()
    assert task is not None
    assert task.status.value == "pending"
    assert reserved == -task.credits_cents
    assert after == before - task.credits_cents


async def test_a_refused_create_writes_nothing_and_the_next_one_still_runs(
    client: httpx.AsyncClient, services: Services
) -> None:
    poor = await services.accounts.create_account("poor")
    before = await count_rows(services)
    refused = await client.post(
        "/v1/videos/generations",
        json=SEED_REQUEST,
        headers={"Authorization": f"Bearer {poor.key}"},
    )
    assert refused.status_code == 402
    assert await count_rows(services) == before  # the task's insert was rolled back

    # The quick path has one connection: a rolled-back write must have given it back.
    for _ in range(3):
        assert (await client.post("/v1/videos/generations", json=SEED_REQUEST)).status_code == 200
    assert await count_rows(services) == (before[0] + 3, before[1] + 3)


async def test_an_error_inside_a_quick_write_rolls_all_of_it_back(services: Services) -> None:
    before = await count_rows(services)
    rich = await services.accounts.create_account("rich", credits=Decimal(100))
    principal = await services.accounts.authenticate(f"Bearer {rich.key}")

    async def top_up_then_fail() -> None:
        async with services.db.write_quick() as conn:
            await ledger_rows.top_up(conn, principal.account_id, 500, now=time.time())
            raise RuntimeError("after the top-up")

    with pytest.raises(RuntimeError, match="after the top-up"):
        await top_up_then_fail()
    async with services.db.read() as conn:
        assert await ledger_rows.balance_cents(conn, principal.account_id) == 100 * 100
    # The account's opening top-up is the one new entry.
    assert await count_rows(services) == (before[0], before[1] + 1)


@pytest.mark.sqlite_only  # SQLite's database-wide write lock; PostgreSQL locks rows
async def test_a_create_waits_for_a_write_lock_held_by_another_connection(
    client: httpx.AsyncClient, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    path = services.db.url.database
    assert path is not None
    caplog.set_level(logging.DEBUG, logger="vidgate.store.database")
    # Authenticated once before: the create below writes nothing but the task.
    assert (await client.get("/v1/credits")).status_code == 200
    other = sqlite3.connect(path, isolation_level=None)  # as another process would
    try:
        other.execute("BEGIN IMMEDIATE")
        creating = asyncio.create_task(
            client.post("/v1/videos/generations", json=SEED_REQUEST), name="create"
        )
        deadline = time.monotonic() + 30
        while "write lock held elsewhere" not in caplog.text:
            assert time.monotonic() < deadline, "the create never found the lock taken"
            assert not creating.done(), creating.result()
            await asyncio.sleep(0.01)
        assert not creating.done()  # it waits for the lock instead of failing
        other.execute("COMMIT")
        created = await asyncio.wait_for(creating, 30)
    finally:
        other.close()
    assert created.status_code == 200
    polled = await client.get(f"/v1/tasks/{created.json()['id']}")
    assert polled.json()["status"] == "pending"


@pytest.mark.sqlite_only  # SQLite's checkpoints; PostgreSQL has its own
async def test_quick_writes_leave_checkpoints_to_a_thread(services: Services) -> None:
    db = services.db
    path = Path(str(db.url.database))
    async with db.write_quick() as conn:
        # The loop's writer never checkpoints inside a commit (an fsync on the loop's thread).
        assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 0
    rich = await services.accounts.create_account("rich", credits=Decimal(10**6))
    principal = await services.accounts.authenticate(f"Bearer {rich.key}")
    request = VideoRequest(model="veo3.1-fast", prompt="a kite over the dunes")
    services.tasks.max_active_tasks = 0  # no limit: this test makes a hundred tasks
    while db.quick_writes_since_checkpoint != 0:  # line up with the next checkpoint
        await services.tasks.create(principal, request)
    if db.checkpointing is not None:
        await db.checkpointing
    size_before = file_size(path)
    for _ in range(CHECKPOINT_EVERY - 1):
        await services.tasks.create(principal, request)
    assert db.quick_writes_since_checkpoint == CHECKPOINT_EVERY - 1
    assert file_size(path) == size_before  # the new pages are all in the WAL still

    await services.tasks.create(principal, request)
    assert db.checkpointing is not None
    await db.checkpointing
    assert file_size(path) > size_before  # copied into the database file
