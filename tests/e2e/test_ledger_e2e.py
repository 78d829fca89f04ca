"""Credits under real concurrency, cancels through the real worker, limits shared through Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from support import E2E_KEY, ServerProcess

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}
REDIS_URL = os.environ.get("VIDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def admin_creates_account(server: ServerProcess, name: str, credits: str) -> str:
    with server.client() as admin:
        response = admin.post("/admin/accounts", json={"name": name, "credits": credits})
        assert response.status_code == 200, response.text
        key: str = response.json()["key"]
        return key


def credits_of(server: ServerProcess, key: str) -> dict:
    response = httpx.get(
        f"{server.url}/v1/credits", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert response.status_code == 200
    user: dict = response.json()["data"]["user"]
    return user


def test_100_creates_at_once_on_credits_for_20(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", {"VIDGATE_WORKERS": "0"})
    server.start()
    try:
        key = admin_creates_account(server, "burst", "514.00")  # 20 x 25.70

        async def burst() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=100)
            async with httpx.AsyncClient(
                base_url=server.url,
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
                limits=limits,
            ) as client:
                return await asyncio.gather(
                    *(client.post("/v1/videos/generations", json=SEED_REQUEST) for _ in range(100))
                )

        responses = asyncio.run(burst())
        statuses = [response.status_code for response in responses]
        assert statuses.count(200) == 20, statuses
        assert statuses.count(402) == 80, statuses
        assert {r.json()["error"]["code"] for r in responses if r.status_code == 402} == {
            "insufficient_quota"
        }
        held = credits_of(server, key)
        assert held["remaining_credits"] == 0
        assert held["reserved_credits"] == pytest.approx(514.0)

        ids = [r.json()["id"] for r in responses if r.status_code == 200]
        assert len(set(ids)) == 20
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as client:
            for task_id in ids:
                assert client.post(f"/v1/tasks/{task_id}/cancel").status_code == 200
        back = credits_of(server, key)
        assert back["remaining_credits"] == pytest.approx(514.0)
        assert back["reserved_credits"] == 0
        assert back["used_credits"] == 0
    finally:
        server.stop()


def test_cancelling_a_rendering_task_stops_it_and_refunds(server: ServerProcess) -> None:
    with server.client() as client:
        before = client.get("/v1/credits").json()["data"]["user"]["remaining_credits"]
        task = client.post("/v1/videos/generations", json=SEED_REQUEST).json()
        deadline = time.monotonic() + 30
        while client.get(f"/v1/tasks/{task['id']}").json()["status"] == "pending":
            assert time.monotonic() < deadline, "the worker never took the task"
            time.sleep(0.02)
        cancelled = client.post(f"/v1/tasks/{task['id']}/cancel").json()
        if cancelled["status"] == "completed":
            pytest.fail("the render finished before the cancel reached it; nothing was tested")
        assert cancelled["task_info"]["can_cancel"] is False
        while (current := client.get(f"/v1/tasks/{task['id']}").json())["status"] == "processing":
            assert time.monotonic() < deadline, "the cancel never reached the worker"
            time.sleep(0.1)
        assert current["status"] == "failed"
        assert current["error"]["code"] == "request_cancelled"
        assert "results" not in current
        after = client.get("/v1/credits").json()["data"]["user"]
        assert after["remaining_credits"] == before
        kinds = [
            e["kind"] for e in client.get("/v1/ledger").json()["data"] if e["task_id"] == task["id"]
        ]
        assert kinds == ["release", "reserve"]


def redis_reachable() -> bool:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not redis_reachable(), reason=f"no Redis at {REDIS_URL}")
def test_two_servers_share_one_rate_limit_through_redis(tmp_path: Path) -> None:
    env = {
        "VIDGATE_WORKERS": "0",
        "VIDGATE_REDIS_URL": REDIS_URL,
        "VIDGATE_RATE_LIMIT_PER_MINUTE": "6",
    }
    first = ServerProcess(tmp_path / "data", env)
    second = ServerProcess(tmp_path / "data", env)  # the same database: two replicas
    first.start()
    second.start()
    try:
        # A fresh key, so no earlier run's counts in Redis apply to it.
        with first.client() as admin:
            created = admin.post(
                "/admin/accounts", json={"name": f"shared-{uuid.uuid4().hex[:8]}"}
            ).json()
        headers = {"Authorization": f"Bearer {created['key']}"}
        answers = []
        for index in range(8):
            target = first if index % 2 else second
            answers.append(httpx.get(f"{target.url}/v1/models", headers=headers, timeout=10))
        codes = [answer.status_code for answer in answers]
        assert codes[:6] == [200] * 6, codes
        assert codes[6:] == [429, 429], codes
        assert all(int(a.headers["Retry-After"]) >= 1 for a in answers[6:])
        # Without Redis each replica would have let 4 of these 8 through on its own count.
        assert E2E_KEY not in first.log()
    finally:
        first.stop()
        second.stop()
