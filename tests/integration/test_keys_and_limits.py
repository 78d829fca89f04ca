"""Keys are checked on every request, accounts see only their own tasks, limits answer 429."""

from __future__ import annotations

import time

import httpx
import pytest

from vidgate.services import Services

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_revoked_key_is_refused_at_once(
    client: httpx.AsyncClient, services: Services
) -> None:
    created = await services.accounts.create_account("carol")
    assert (await client.get("/v1/credits", headers=bearer(created.key))).status_code == 200
    [record] = await services.accounts.list_keys("carol")
    await services.accounts.revoke_key(record.id)
    response = await client.get("/v1/credits", headers=bearer(created.key))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_an_expired_key_is_refused(client: httpx.AsyncClient, services: Services) -> None:
    await services.accounts.create_account("dave")
    key = await services.accounts.create_key("dave", name="short", expires_at=time.time() + 30)
    assert (await client.get("/v1/credits", headers=bearer(key.secret))).status_code == 200
    services.accounts.clock = lambda: time.time() + 31
    assert (await client.get("/v1/credits", headers=bearer(key.secret))).status_code == 401


async def test_last_use_is_recorded(client: httpx.AsyncClient, services: Services) -> None:
    created = await services.accounts.create_account("erin")
    [before] = await services.accounts.list_keys("erin")
    assert before.last_used_at is None
    await client.get("/v1/models", headers=bearer(created.key))
    [after] = await services.accounts.list_keys("erin")
    assert after.last_used_at is not None


async def test_one_account_cannot_touch_anothers_tasks(
    client: httpx.AsyncClient, services: Services
) -> None:
    task = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
    other = await services.accounts.create_account("mallory", credits=100)
    headers = bearer(other.key)
    for response in (
        await client.get(f"/v1/tasks/{task['id']}", headers=headers),
        await client.post(f"/v1/tasks/{task['id']}/cancel", headers=headers),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "task_not_found"
    ledger = (await client.get("/v1/ledger", headers=headers)).json()
    assert all(entry["task_id"] != task["id"] for entry in ledger["data"])
    assert (await client.get("/admin/accounts/admin/ledger", headers=headers)).status_code == 403
    # The owner still sees it, untouched.
    mine = (await client.get(f"/v1/tasks/{task['id']}")).json()
    assert mine["status"] == "pending"


async def test_cancelling_a_pending_task_releases_its_credits_once(
    client: httpx.AsyncClient,
) -> None:
    before = (await client.get("/v1/credits")).json()["data"]["user"]["remaining_credits"]
    task = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
    cancelled = await client.post(f"/v1/tasks/{task['id']}/cancel")
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "request_cancelled"
    assert body["task_info"]["can_cancel"] is False
    again = await client.post(f"/v1/tasks/{task['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "task_not_cancellable"
    after = (await client.get("/v1/credits")).json()["data"]["user"]
    assert after["remaining_credits"] == before
    assert after["used_credits"] == 0
    kinds = [
        e["kind"]
        for e in (await client.get("/v1/ledger")).json()["data"]
        if e["task_id"] == task["id"]
    ]
    assert kinds == ["release", "reserve"]


async def test_the_request_after_the_limit_is_429_with_retry_after(
    client: httpx.AsyncClient, services: Services
) -> None:
    await services.accounts.set_group_limits("tight", price_ratio="1", rate_limit_per_minute=5)
    created = await services.accounts.create_account("frank", group="tight")
    headers = bearer(created.key)
    for _ in range(5):
        assert (await client.get("/v1/models", headers=headers)).status_code == 200
    refused = await client.get("/v1/models", headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # The limit is per key: the admin's own key is unaffected.
    assert (await client.get("/v1/models")).status_code == 200


async def test_too_many_unfinished_tasks_is_429_and_creates_nothing(
    client: httpx.AsyncClient, services: Services
) -> None:
    await services.accounts.set_group_limits("small", price_ratio="1", max_active_tasks=2)
    created = await services.accounts.create_account("gina", credits=1000, group="small")
    headers = bearer(created.key)
    for _ in range(2):
        assert (
            await client.post("/v1/videos/generations", json=SEED_REQUEST, headers=headers)
        ).status_code == 200
    refused = await client.post("/v1/videos/generations", json=SEED_REQUEST, headers=headers)
    assert refused.status_code == 429
    assert "2 unfinished tasks" in refused.json()["error"]["message"]
    credits = (await client.get("/v1/credits", headers=headers)).json()["data"]["user"]
    assert credits["remaining_credits"] == pytest.approx(1000 - 2 * 25.7)
