"""The poll's point lookups: on SQLite through the plain driver on the loop's thread, on
PostgreSQL through the async engine; either way they see what committed before them."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import bindparam, column, select, table

from vidgate.services import Services
from vidgate.store import prepared, task_rows
from vidgate.store.database import QuickConnection
from vidgate.store.prepared import Prepared


async def test_a_quick_read_sees_each_committed_change(
    client: httpx.AsyncClient, services: Services
) -> None:
    created = await client.post(
        "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": "a tram at night"}
    )
    task_id = created.json()["id"]
    async with services.db.read_quick() as conn:
        assert isinstance(conn, QuickConnection) == services.db.is_sqlite
        first = await task_rows.get_task(conn, task_id)
    assert first is not None
    assert first.status.value == "pending"

    claimed = await services.runs.claim("quick-test")
    assert claimed is not None
    assert claimed.id == task_id
    # The write went through the async engine's connection; the quick read is another one.
    async with services.db.read_quick() as conn:
        after = await task_rows.get_task(conn, task_id)
    assert after is not None
    assert after.status.value == "processing"
    polled = await client.get(f"/v1/tasks/{task_id}")
    assert polled.json()["status"] == "processing"


async def test_the_poll_reports_the_queue_position_from_the_same_read(
    client: httpx.AsyncClient,
) -> None:
    ids = []
    for n in range(3):
        answer = await client.post(
            "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": f"tram {n}"}
        )
        ids.append(answer.json()["id"])
    positions = [(await client.get(f"/v1/tasks/{i}")).json()["queue_position"] for i in ids]
    assert positions == [1, 2, 3]


async def test_a_quick_read_builds_the_same_task_as_the_async_engine(
    client: httpx.AsyncClient, services: Services
) -> None:
    created = await client.post(
        "/v1/videos/generations",
        json={"model": "veo3.1-fast", "prompt": "a tram at night", "extra_field": {"a": [1]}},
    )
    task_id = created.json()["id"]
    claimed = await services.runs.claim("quick-test")
    assert claimed is not None
    async with services.db.write() as conn:
        assert await task_rows.request_cancel(
            conn, task_id, claimed.attempt, now=claimed.created_at + 1
        )
    # JSON columns, a boolean, floats, NULLs: each converted as SQLAlchemy converts them.
    async with services.db.read() as conn:
        expected = await task_rows.get_task(conn, task_id)
    async with services.db.read_quick() as conn:
        quick = await task_rows.get_task(conn, task_id)
        own = await task_rows.get_task(conn, task_id, account_id=claimed.account_id)
        other = await task_rows.get_task(conn, task_id, account_id="acct_someone_else")
    assert expected is not None
    assert expected.cancel_requested is True
    assert expected.extra
    assert quick == expected
    assert own == expected
    assert other is None


async def test_a_failing_quick_read_raises_what_the_async_engine_raises(
    services: Services,
) -> None:
    missing = table("no_such_table", column("x"))
    statement = Prepared(select(missing.c.x).where(missing.c.x == bindparam("x")))
    raised = []
    for read in (services.db.read, services.db.read_quick):
        with pytest.raises(Exception) as caught:
            async with read() as conn:
                await prepared.first(conn, statement, {"x": 1})
        raised.append(type(caught.value))
    assert raised[0] is raised[1]


async def test_quick_reads_held_at_once_each_get_their_own_connection(
    client: httpx.AsyncClient, services: Services
) -> None:
    created = await client.post(
        "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": "a tram at night"}
    )
    task_id = created.json()["id"]
    for _ in range(2):  # the second time round, the spare connection is back in use
        async with services.db.read_quick() as outer:
            async with services.db.read_quick() as inner:
                assert await task_rows.get_task(inner, task_id) is not None
            assert await task_rows.get_task(outer, task_id) is not None
