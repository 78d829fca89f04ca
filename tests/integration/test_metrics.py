"""/metrics: Prometheus text with tasks and callbacks by status and request timings."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

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
