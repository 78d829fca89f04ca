"""The poll's point lookups: on SQLite through the plain driver on the loop's thread, on
PostgreSQL through the async engine; either way they see what committed before them."""

from __future__ import annotations

import httpx

from vidgate.services import Services
from vidgate.store import task_rows
from vidgate.store.database import QuickConnection


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
