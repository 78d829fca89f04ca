"""The task engine under faults, in process: crashes, races, deadlines, idempotency, listing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from support import ADMIN_KEY, Clock
from vidgate.engines.base import GenerationContext, GenerationRequest
from vidgate.queue.worker import Worker
from vidgate.services import Services
from vidgate.store import ledger_rows
from vidgate.tasks.model import TaskStatus

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}


class CrashingEngine:
    name = "preview"

    def __init__(self) -> None:
        self.calls = 0

    async def generate(
        self, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None:
        self.calls += 1
        raise RuntimeError("the GPU fell over")


def worker_with(services: Services, engine: object) -> Worker:
    return Worker(
        services.runs,
        {"preview": engine},  # type: ignore[dict-item]
        name="test-worker",
        scratch=services.files.scratch_dir(),
    )


async def balance(services: Services) -> int:
    admin = await services.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    async with services.db.read() as conn:
        return await ledger_rows.balance_cents(conn, admin.account_id)


async def test_an_engine_that_always_crashes_fails_after_the_attempt_limit(
    client: httpx.AsyncClient, services: Services
) -> None:
    start = await balance(services)
    clock = Clock()
    services.clock.source = clock
    created = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
    engine = CrashingEngine()
    worker = worker_with(services, engine)
    for attempt in (1, 2, 3):
        task = await services.runs.claim("w")
        assert task is not None, f"attempt {attempt} found nothing to claim"
        assert task.attempt == attempt
        await worker.run_task(task)
        clock.now += 120  # past any backoff
    assert engine.calls == 3
    assert await services.runs.claim("w") is None
    failed = (await client.get(f"/v1/tasks/{created['id']}")).json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "service_error"
    assert "3 times" in failed["error"]["message"]
    assert await balance(services) == start


async def test_a_crash_waits_a_backoff_before_the_next_attempt(
    client: httpx.AsyncClient, services: Services
) -> None:
    clock = Clock()
    services.clock.source = clock
    await client.post("/v1/videos/generations", json=SEED_REQUEST)
    task = await services.runs.claim("w")
    assert task is not None
    await worker_with(services, CrashingEngine()).run_task(task)
    assert await services.runs.claim("w") is None
    clock.now += 1.5
    again = await services.runs.claim("w")
    assert again is not None
    assert again.attempt == 2
    assert again.retries == 1


async def test_cancel_racing_completion_settles_exactly_once(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await services.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    outcomes = set()
    for round_ in range(15):
        created = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
        task = await services.runs.claim("w")
        assert task is not None
        output = services.settings.data_dir / f"race-{round_}.mp4"
        output.write_bytes(b"not really a video")
        cancel = client.post(f"/v1/tasks/{task.id}/cancel")
        complete = services.runs.complete(task, output)
        responses = await asyncio.gather(cancel, complete, return_exceptions=True)
        assert not any(isinstance(r, BaseException) for r in responses), responses
        final = await services.tasks.get(admin, created["id"])
        assert final.status.is_terminal
        outcomes.add(final.status)
        async with services.db.read() as conn:
            settled = await ledger_rows.settlements(conn, created["id"])
        expected = ["capture"] if final.status is TaskStatus.COMPLETED else ["release"]
        assert settled == expected
    assert outcomes  # every round ended; which side won varies with scheduling


async def test_a_model_run_limit_fails_the_task_with_generation_timeout(
    client: httpx.AsyncClient, services: Services
) -> None:
    start = await balance(services)
    clock = Clock()
    services.clock.source = clock
    created = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
    task = await services.runs.claim("w")
    assert task is not None
    assert task.run_deadline_at == pytest.approx(clock.now + 900)  # the model's limit
    clock.now += 800
    await services.runs.heartbeat(task, 50)  # alive, but slow
    await services.reaper.reap()
    assert (await client.get(f"/v1/tasks/{created['id']}")).json()["status"] == "processing"
    clock.now += 101
    await services.runs.heartbeat(task, 60)
    await services.reaper.reap()
    failed = (await client.get(f"/v1/tasks/{created['id']}")).json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "generation_timeout"
    assert await balance(services) == start
    assert (await services.runs.heartbeat(task, 70)).held is False  # the worker learns it lost


async def test_cancel_after_cancels_an_unfinished_task(
    client: httpx.AsyncClient, services: Services
) -> None:
    clock = Clock()
    services.clock.source = clock
    created = await client.post(
        "/v1/videos/generations", json=SEED_REQUEST, headers={"Cancel-After": "30"}
    )
    assert created.status_code == 200
    task_id = created.json()["id"]
    clock.now += 29
    await services.reaper.reap()
    assert (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "pending"
    clock.now += 2
    await services.reaper.reap()
    body = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "request_cancelled"
    assert "Cancel-After" in body["error"]["message"]
    for bad in ("0", "-5", "soon", str(8 * 86400)):
        refused = await client.post(
            "/v1/videos/generations", json=SEED_REQUEST, headers={"Cancel-After": bad}
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "Cancel-After"


async def test_the_same_idempotency_key_returns_the_first_answer(
    client: httpx.AsyncClient, services: Services
) -> None:
    start = await balance(services)
    headers = {"Idempotency-Key": "order-42"}
    first = await client.post("/v1/videos/generations", json=SEED_REQUEST, headers=headers)
    second = await client.post("/v1/videos/generations", json=SEED_REQUEST, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await balance(services) == start - 2570  # charged once
    listed = (await client.get("/v1/tasks")).json()["data"]
    assert [task["id"] for task in listed] == [first.json()["id"]]

    other = await client.post(
        "/v1/videos/generations", json={**SEED_REQUEST, "prompt": "A dog"}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


async def test_a_key_still_in_progress_is_409_and_a_failed_create_frees_it(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await services.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    claim = await services.idempotency.begin(admin.account_id, "busy", dict(SEED_REQUEST))
    response = await client.post(
        "/v1/videos/generations", json=SEED_REQUEST, headers={"Idempotency-Key": "busy"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    await services.idempotency.abandon(claim)  # type: ignore[arg-type]

    refused = await client.post(
        "/v1/videos/generations",
        json={**SEED_REQUEST, "aspect_ratio": "1:1"},
        headers={"Idempotency-Key": "retry-me"},
    )
    assert refused.status_code == 400
    again = await client.post(
        "/v1/videos/generations",
        json={**SEED_REQUEST, "aspect_ratio": "1:1"},
        headers={"Idempotency-Key": "retry-me"},
    )
    assert again.status_code == 400  # run afresh, not replayed nor locked
    assert "Idempotent-Replayed" not in again.headers


async def test_tasks_list_newest_first_with_cursor_and_filters(
    client: httpx.AsyncClient, services: Services
) -> None:
    ids = []
    for _ in range(5):
        ids.append((await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()["id"])
    await client.post(f"/v1/tasks/{ids[0]}/cancel")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/tasks", params=params)).json()
        seen += [task["id"] for task in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == list(reversed(ids))
    failed = (await client.get("/v1/tasks", params={"status": "failed"})).json()["data"]
    assert [task["id"] for task in failed] == [ids[0]]
    pending = (await client.get("/v1/tasks", params={"status": "pending"})).json()["data"]
    assert len(pending) == 4
    aliased = (await client.get("/v1/tasks", params={"model": "veo3.1-fast-beta"})).json()
    assert len(aliased["data"]) == 5
    for params in ({"status": "done"}, {"cursor": "nope"}, {"limit": 0}):
        bad = await client.get("/v1/tasks", params=params)
        assert bad.status_code == 400, params
    other = await services.accounts.create_account("lister")
    theirs = await client.get("/v1/tasks", headers={"Authorization": f"Bearer {other.key}"})
    assert theirs.json()["data"] == []


async def test_pending_tasks_show_their_queue_position(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
    second = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
    assert first["queue_position"] == 1
    assert second["queue_position"] == 2
    await client.post(f"/v1/tasks/{first['id']}/cancel")
    moved = (await client.get(f"/v1/tasks/{second['id']}")).json()
    assert moved["queue_position"] == 1
    gone = (await client.get(f"/v1/tasks/{first['id']}")).json()
    assert "queue_position" not in gone


async def test_wait_returns_when_the_task_changes(
    client: httpx.AsyncClient, services: Services
) -> None:
    created = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
    loop = asyncio.get_running_loop()
    began = loop.time()
    waiting = asyncio.create_task(client.get(f"/v1/tasks/{created['id']}", params={"wait": 20}))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # held while nothing changes
    await services.runs.claim("w")
    answer = await asyncio.wait_for(waiting, 10)
    assert answer.json()["status"] == "processing"
    assert loop.time() - began < 20  # woken by the change, not by the time limit
    unchanged = await client.get(f"/v1/tasks/{created['id']}", params={"wait": 0.5})
    assert unchanged.json()["status"] == "processing"
    assert (await client.get(f"/v1/tasks/{created['id']}", params={"wait": 31})).status_code == 400


async def test_retention_purges_files_and_hides_old_tasks(
    client: httpx.AsyncClient, services: Services
) -> None:
    clock = Clock()
    services.clock.source = clock
    created = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
    task = await services.runs.claim("w")
    assert task is not None
    output = services.settings.data_dir / "old.mp4"
    output.write_bytes(b"an old video")
    done = await services.runs.complete(task, output)
    assert done is not None
    assert done.result_key is not None
    stored = services.files.path(done.result_key)
    assert stored is not None
    clock.now += 6 * 86400
    assert await services.reaper.purge_expired(7 * 86400) == 0
    assert (await client.get(f"/v1/tasks/{created['id']}")).status_code == 200
    clock.now += 2 * 86400
    assert await services.reaper.purge_expired(7 * 86400) == 1
    assert not stored.exists()
    gone = await client.get(f"/v1/tasks/{created['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "task_not_found"
    async with services.db.read() as conn:  # the ledger keeps its history
        assert await ledger_rows.settlements(conn, created["id"]) == ["capture"]
