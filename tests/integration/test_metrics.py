"""/metrics: Prometheus text with tasks and callbacks by status and request timings."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support import Clock
from vidgate.metrics import SETTLE_SECONDS, Metrics
from vidgate.services import Services
from vidgate.store import task_queries

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_tasks_by_status_and_time_requests(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.post("/v1/videos/generations", json=SEED_REQUEST)
    first = (await client.get("/v1/tasks")).json()["data"][-1]["id"]
    await client.post(f"/v1/tasks/{first}/cancel")
    response = await client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    by_status = (("model", "veo3.1-fast"), ("status", "pending"))
    assert found[("vidgate_tasks", by_status)] == 2
    assert found[("vidgate_tasks", (("model", "veo3.1-fast"), ("status", "failed")))] == 1
    assert found[("vidgate_oldest_pending_task_age_seconds", ())] >= 0
    created = (
        "vidgate_http_request_duration_seconds_count",
        (("method", "POST"), ("route", "/v1/videos/generations"), ("status", "200")),
    )
    assert found[created] == 3


async def failed_count(client: httpx.AsyncClient) -> float:
    response = await client.get("/metrics", headers={"Authorization": ""})
    return samples(response.text)[
        ("vidgate_tasks", (("model", "veo3.1-fast"), ("status", "failed")))
    ]


async def test_finished_tasks_are_counted_once_each_as_they_settle(
    client: httpx.AsyncClient, services: Services
) -> None:
    clock = Clock(time.time())
    services.clock.source = services.metrics.clock = clock
    ids = []
    for _ in range(4):
        ids.append((await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()["id"])
    for task_id in ids[:2]:
        assert (await client.post(f"/v1/tasks/{task_id}/cancel")).status_code == 200
    assert await failed_count(client) == 2  # the first scrape counts every finished task

    clock.now += SETTLE_SECONDS + 60  # those two settle: kept, not read again
    await client.post(f"/v1/tasks/{ids[2]}/cancel")
    assert await failed_count(client) == 3
    assert services.metrics.finished.settled_until == clock.now - SETTLE_SECONDS
    assert sum(services.metrics.finished.settled.values()) == 2

    clock.now += SETTLE_SECONDS + 60
    await client.post(f"/v1/tasks/{ids[3]}/cancel")
    # Two scrapes at once must not add the same stretch of time twice.
    both = await asyncio.gather(failed_count(client), failed_count(client))
    assert both == [4, 4]
    assert sum(services.metrics.finished.settled.values()) == 3

    # A purge hides a task from its owner, but it still finished: the count stays.
    async with services.db.write() as conn:
        await task_queries.mark_purged(conn, ids[:2], now=clock.now)
    assert await failed_count(client) == 4
    # Another replica, starting now, reports the same from its first scrape.
    replica = Metrics(services.db, services.health, ["preview"], clock=clock)
    assert (
        samples((await replica.render()).decode())[
            ("vidgate_tasks", (("model", "veo3.1-fast"), ("status", "failed")))
        ]
        == 4
    )
