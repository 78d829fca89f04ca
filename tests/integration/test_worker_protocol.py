"""The remote-worker protocol over ASGI: tokens, claims, fencing by attempt, results, failures."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from support import (
    ADMIN_KEY,
    Clock,
    StaticServer,
    admin_services,
    asgi_client,
    assert_error,
    image_bytes,
    structured_image,
)
from vidgate.engines.preview import PreviewEngine
from vidgate.engines.registry import ModelRegistry, ModelSpec
from vidgate.media.probe import probe
from vidgate.queue.remote import RemoteRuns
from vidgate.queue.worker import Worker
from vidgate.services import Services
from vidgate.settings import Settings
from vidgate.store.ledger_rows import balance_cents

CLAIM = "/worker/v1/claim"


def tiny_mp4(path: Path, frames: int = 6) -> Path:
    """A real, short H.264 MP4 (64x64) to upload as a result."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.time_base = Fraction(1, 24)
        for index in range(frames):
            pixels = np.full((64, 64, 3), index * 40 % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
async def two_models(settings: Settings) -> AsyncIterator[Services]:
    """Services whose registry has two models on the preview engine, each with two attempts."""
    registry = ModelRegistry.of(
        ModelSpec(name=name, engine="preview", price=Decimal("1.00"), max_attempts=2)
        for name in ("alpha", "beta")
    )
    engines = {"preview": PreviewEngine()}
    async with admin_services(settings, registry=registry, engines=engines) as opened:
        yield opened


@pytest.fixture
async def api(two_models: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(two_models) as http:
        yield http


async def new_token(api: httpx.AsyncClient, name: str = "gpu-1") -> tuple[str, str]:
    made = await api.post("/admin/worker-tokens", json={"name": name})
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["token"].startswith("wk-")
    assert len(body["token"]) >= 43
    return body["id"], body["token"]


def as_worker(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create(api: httpx.AsyncClient, model: str = "alpha", **extra: object) -> str:
    made = await api.post("/v1/videos/generations", json={"model": model, "prompt": "x", **extra})
    assert made.status_code == 200, made.text
    return str(made.json()["id"])


async def claim(api: httpx.AsyncClient, token: str, models: list[str]) -> httpx.Response:
    return await api.post(
        CLAIM, json={"worker": "w0", "models": models, "wait": 0}, headers=as_worker(token)
    )


async def test_a_claimed_task_heartbeats_uploads_and_completes(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    _, token = await new_token(api)
    task_id = await create(api)
    claimed = await claim(api, token, ["alpha"])
    assert claimed.status_code == 200, claimed.text
    body = claimed.json()
    assert body["task"]["id"] == task_id
    assert body["task"]["attempt"] == 1
    assert body["task"]["prompt"] == "x"
    assert body["lease_expires_at"] > time.time()

    beat = await api.post(
        f"/worker/v1/tasks/{task_id}/heartbeat",
        json={"attempt": 1, "progress": 40},
        headers=as_worker(token),
    )
    assert beat.status_code == 200, beat.text
    assert beat.json()["cancelled"] is False
    assert (await api.get(f"/v1/tasks/{task_id}")).json()["progress"] == 40

    video = tiny_mp4(tmp_path / "out.mp4")
    uploaded = await api.put(
        f"/worker/v1/tasks/{task_id}/result",
        params={"attempt": 1},
        content=video.read_bytes(),
        headers={**as_worker(token), "Content-Type": "video/mp4"},
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["status"] == "completed"

    done = (await api.get(f"/v1/tasks/{task_id}")).json()
    assert done["status"] == "completed"
    result = await api.get(done["results"][0], headers={"Authorization": ""})
    assert result.status_code == 200
    (tmp_path / "back.mp4").write_bytes(result.content)
    info = probe(tmp_path / "back.mp4")
    assert (info.width, info.height, info.frame_count) == (64, 64, 6)
    # The token's last use is recorded for the operator.
    [listed] = (await api.get("/admin/worker-tokens")).json()["data"]
    assert listed["last_used"] is not None


async def test_a_stale_attempt_is_refused_everywhere(
    api: httpx.AsyncClient, two_models: Services, tmp_path: Path
) -> None:
    clock = Clock()
    two_models.clock.source = clock
    _, token = await new_token(api)
    task_id = await create(api)
    assert (await claim(api, token, ["alpha"])).json()["task"]["attempt"] == 1
    # The worker goes quiet past its lease: the reaper hands the task to a second attempt.
    clock.now += two_models.transitions.lease_seconds + 120
    assert await two_models.reaper.reap() == [task_id]
    clock.now += 5  # past the short backoff
    assert (await claim(api, token, ["alpha"])).json()["task"]["attempt"] == 2

    headers = as_worker(token)
    calls = [
        api.post(f"/worker/v1/tasks/{task_id}/heartbeat", json={"attempt": 1}, headers=headers),
        api.get(f"/worker/v1/tasks/{task_id}/inputs/0?attempt=1", headers=headers),
        api.put(
            f"/worker/v1/tasks/{task_id}/result?attempt=1",
            content=tiny_mp4(tmp_path / "late.mp4").read_bytes(),
            headers=headers,
        ),
        api.post(
            f"/worker/v1/tasks/{task_id}/fail",
            json={"attempt": 1, "code": "service_error", "message": "late"},
            headers=headers,
        ),
        api.post(f"/worker/v1/tasks/{task_id}/hand-back", json={"attempt": 1}, headers=headers),
    ]
    for call in calls:
        assert_error(await call, 409, "stale_attempt")
    task = (await api.get(f"/v1/tasks/{task_id}")).json()
    assert task["status"] == "processing"  # attempt 2 still holds it, untouched


async def test_a_revoked_worker_token_is_refused(api: httpx.AsyncClient) -> None:
    token_id, token = await new_token(api)
    assert (await claim(api, token, ["alpha"])).status_code == 204
    revoked = await api.delete(f"/admin/worker-tokens/{token_id}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] is not None
    assert_error(await claim(api, token, ["alpha"]), 401, "unauthorized")


async def test_worker_tokens_and_api_keys_each_open_only_their_own_api(
    api: httpx.AsyncClient,
) -> None:
    _, token = await new_token(api)
    task_id = await create(api)
    for path in ("/v1/tasks", f"/v1/tasks/{task_id}", "/v1/credits", "/admin/worker-tokens"):
        assert_error(await api.get(path, headers=as_worker(token)), 401, "unauthorized")
    made = await api.post(
        "/v1/videos/generations",
        json={"model": "alpha", "prompt": "x"},
        headers=as_worker(token),
    )
    assert_error(made, 401, "unauthorized")
    # The admin's API key is no worker token.
    assert_error(await claim(api, ADMIN_KEY, ["alpha"]), 401, "unauthorized")
    assert_error(
        await api.post(CLAIM, json={"worker": "w", "models": ["alpha"]}), 401, "unauthorized"
    )
    assert_error(
        await api.post(f"/worker/v1/tasks/{task_id}/heartbeat", json={"attempt": 1}),
        401,
        "unauthorized",
    )


async def test_claims_are_filtered_by_the_workers_models(api: httpx.AsyncClient) -> None:
    _, token = await new_token(api)
    alpha = await create(api, "alpha")
    assert (await claim(api, token, ["beta"])).status_code == 204
    assert_error(await claim(api, token, ["gamma"]), 400, "invalid_request", "models")
    beta = await create(api, "beta")
    got = await claim(api, token, ["beta", "gamma"])
    assert got.json()["task"]["id"] == beta
    assert (await claim(api, token, ["alpha"])).json()["task"]["id"] == alpha


async def test_a_long_poll_claim_is_woken_by_a_new_task(
    api: httpx.AsyncClient, two_models: Services
) -> None:
    import asyncio

    _, token = await new_token(api)
    waiting = asyncio.create_task(
        api.post(
            CLAIM, json={"worker": "w", "models": ["alpha"], "wait": 20}, headers=as_worker(token)
        )
    )
    await asyncio.sleep(0.2)  # let the claim start waiting; it must not end before the create
    assert not waiting.done()
    task_id = await create(api)
    got = await asyncio.wait_for(waiting, 15)
    assert got.status_code == 200
    assert got.json()["task"]["id"] == task_id


async def test_failures_retry_until_the_attempt_limit_then_fail_and_refund(
    api: httpx.AsyncClient, two_models: Services
) -> None:
    clock = Clock()
    two_models.clock.source = clock
    admin = await two_models.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    async with two_models.db.read() as conn:
        start = await balance_cents(conn, admin.account_id)
    _, token = await new_token(api)
    task_id = await create(api)
    for attempt in (1, 2):
        claimed = await claim(api, token, ["alpha"])
        assert claimed.json()["task"]["attempt"] == attempt
        failed = await api.post(
            f"/worker/v1/tasks/{task_id}/fail",
            json={
                "attempt": attempt,
                "code": "service_error",
                "message": "the GPU fell over",
                "retryable": True,
            },
            headers=as_worker(token),
        )
        assert failed.status_code == 200, failed.text
        assert failed.json()["status"] == ("pending" if attempt == 1 else "failed")
        clock.now += 120  # past the backoff
    task = (await api.get(f"/v1/tasks/{task_id}")).json()
    assert task["status"] == "failed"
    assert task["error"]["code"] == "service_error"
    assert "2 times" in task["error"]["message"]
    async with two_models.db.read() as conn:
        assert await balance_cents(conn, admin.account_id) == start

    # A failure that is not retryable ends the task at once, with the worker's code.
    other = await create(api)
    claimed = await claim(api, token, ["alpha"])
    assert claimed.json()["task"]["id"] == other
    failed = await api.post(
        f"/worker/v1/tasks/{other}/fail",
        json={"attempt": 1, "code": "content_policy_violation", "message": "refused"},
        headers=as_worker(token),
    )
    assert failed.json() == {
        "id": other,
        "status": "failed",
        "error_code": "content_policy_violation",
    }
    error = (await api.get(f"/v1/tasks/{other}")).json()["error"]
    assert error["code"] == "content_policy_violation"


async def test_a_cancel_is_seen_by_the_next_heartbeat(api: httpx.AsyncClient) -> None:
    _, token = await new_token(api)
    task_id = await create(api)
    await claim(api, token, ["alpha"])
    assert (await api.post(f"/v1/tasks/{task_id}/cancel")).status_code == 200
    beat = await api.post(
        f"/worker/v1/tasks/{task_id}/heartbeat", json={"attempt": 1}, headers=as_worker(token)
    )
    assert beat.json()["cancelled"] is True
    stopped = await api.post(
        f"/worker/v1/tasks/{task_id}/fail",
        json={"attempt": 1, "code": "request_cancelled", "message": "The task was cancelled."},
        headers=as_worker(token),
    )
    assert stopped.json()["status"] == "failed"
    assert (await api.get(f"/v1/tasks/{task_id}")).json()["error"]["code"] == "request_cancelled"


async def test_inputs_download_and_bad_uploads_are_refused(
    api: httpx.AsyncClient, static_server: StaticServer, two_models: Services, tmp_path: Path
) -> None:
    png = image_bytes(structured_image(320, 180, seed=3))
    url = static_server.add("/in.png", png, content_type="image/png")
    _, token = await new_token(api)
    task_id = await create(api, image_urls=[url])
    [item] = (await claim(api, token, ["alpha"])).json()["task"]["inputs"]
    got = await api.get(item["url"], headers=as_worker(token))
    assert got.status_code == 200
    assert got.content == png
    assert got.headers["content-type"] == "image/png"
    missing = await api.get(
        f"/worker/v1/tasks/{task_id}/inputs/5?attempt=1", headers=as_worker(token)
    )
    assert_error(missing, 400, "invalid_request")

    result = f"/worker/v1/tasks/{task_id}/result?attempt=1"
    garbage = await api.put(result, content=b"not a video" * 100, headers=as_worker(token))
    assert_error(garbage, 400, "invalid_request")
    two_models.gateway.max_result_bytes = 1000
    video = tiny_mp4(tmp_path / "big.mp4", frames=48).read_bytes()
    assert len(video) > 1000
    assert_error(
        await api.put(result, content=video, headers=as_worker(token)), 413, "request_too_large"
    )
    # Neither left a file behind, and the attempt still holds the task.
    assert list(two_models.files.scratch_dir().iterdir()) == []
    assert (await api.get(f"/v1/tasks/{task_id}")).json()["status"] == "processing"


async def test_the_worker_loop_runs_a_task_through_the_http_protocol(
    api: httpx.AsyncClient, two_models: Services, static_server: StaticServer, tmp_path: Path
) -> None:
    """The same Worker loop as on the database, with RemoteRuns as its source."""
    _, token = await new_token(api)
    png = image_bytes(structured_image(320, 180, seed=4))
    url = static_server.add("/first.png", png, content_type="image/png")
    task_id = await create(api, image_urls=[url])
    transport = api._transport  # the app itself, over ASGI
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=as_worker(token)
    ) as http:
        runs = RemoteRuns(http, two_models.registry, ["alpha", "beta"], claim_wait=0)
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        worker = Worker(runs, {"preview": PreviewEngine()}, name="remote-0", scratch=scratch)
        task = await runs.claim(worker.name, ["preview"])
        assert task is not None
        assert task.id == task_id
        await worker.run_task(task)
    done = (await api.get(f"/v1/tasks/{task_id}")).json()
    assert done["status"] == "completed", done
    result = await api.get(done["results"][0], headers={"Authorization": ""})
    (tmp_path / "result.mp4").write_bytes(result.content)
    assert probe(tmp_path / "result.mp4").frame_count > 0
    assert list(scratch.iterdir()) == []  # the work dir is gone
