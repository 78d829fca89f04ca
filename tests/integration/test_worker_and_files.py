"""The worker runs tasks to a result; failures refund; stale attempts and bad links are refused."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from support import ADMIN_KEY
from vidgate.engines.base import EngineFailure, GenerationContext, GenerationRequest
from vidgate.media.probe import probe
from vidgate.queue.worker import Worker
from vidgate.services import Services
from vidgate.store.ledger_rows import balance_cents

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}


def make_worker(services: Services, engines: dict | None = None) -> Worker:
    return Worker(
        services.runs,
        engines or services.engines,
        name="test-worker",
        scratch=services.files.scratch_dir(),
    )


async def admin_balance(services: Services) -> int:
    admin = await services.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    async with services.db.read() as conn:
        return await balance_cents(conn, admin.account_id)


async def test_a_claimed_task_renders_completes_and_downloads(
    client: httpx.AsyncClient, services: Services
) -> None:
    start = await admin_balance(services)
    created = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
    task = await services.runs.claim("test-worker")
    assert task is not None
    assert task.id == created["id"]
    assert task.attempt == 1
    processing = (await client.get(f"/v1/tasks/{task.id}")).json()
    assert processing["status"] == "processing"
    assert processing["task_info"]["can_cancel"] is True

    await make_worker(services).run_task(task)

    done = (await client.get(f"/v1/tasks/{task.id}")).json()
    assert done["status"] == "completed"
    assert done["progress"] == 100
    assert done["task_info"]["can_cancel"] is False
    [url] = done["results"]
    assert url.startswith("http://testserver/files/results/")
    assert await admin_balance(services) == start - 2570  # captured, not refunded

    download = await client.get(url, headers={"Authorization": ""})
    assert download.status_code == 200
    assert download.headers["content-type"] == "video/mp4"
    assert int(download.headers["content-length"]) == len(download.content)
    saved = services.settings.data_dir / "check.mp4"
    saved.write_bytes(download.content)
    info = probe(saved)
    assert (info.codec, info.width, info.height, info.frame_count) == ("h264", 1280, 720, 192)

    ranged = await client.get(url, headers={"Range": "bytes=100-199", "Authorization": ""})
    assert ranged.status_code == 206
    assert ranged.content == download.content[100:200]
    assert ranged.headers["content-range"] == f"bytes 100-199/{len(download.content)}"


class FailingEngine:
    name = "preview"

    async def generate(
        self, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None:
        context.progress(0.3)
        raise EngineFailure("generation_failed_no_content", "The engine made nothing.")


async def test_an_engine_failure_fails_the_task_and_releases_credits(
    client: httpx.AsyncClient, services: Services
) -> None:
    start = await admin_balance(services)
    created = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
    assert await admin_balance(services) == start - 2570
    task = await services.runs.claim("test-worker")
    assert task is not None
    await make_worker(services, {"preview": FailingEngine()}).run_task(task)
    failed = (await client.get(f"/v1/tasks/{created['id']}")).json()
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "generation_failed_no_content",
        "message": "The engine made nothing.",
        "type": "task_error",
    }
    assert "results" not in failed
    assert await admin_balance(services) == start


async def test_a_stale_attempt_cannot_finish_a_task(
    client: httpx.AsyncClient, services: Services
) -> None:
    await client.post("/v1/videos/generations", json=SEED_REQUEST)
    first = await services.runs.claim("w1")
    assert first is not None
    services.clock.source = lambda: time.time() + 3600  # the lease has long expired
    assert await services.reaper.reap() == [first.id]
    assert await services.runs.claim("w2") is None  # a short backoff before it runs again
    services.clock.source = lambda: time.time() + 3700
    second = await services.runs.claim("w2")
    assert second is not None
    assert second.attempt == first.attempt + 1
    assert await services.runs.fail(first, "service_error", "late") is None
    assert (await services.runs.heartbeat(first, 50)).held is False
    assert await services.runs.fail(second, "service_error", "on time") is not None


async def test_tampered_and_expired_links_are_403(
    client: httpx.AsyncClient, services: Services
) -> None:
    services.files.put_bytes("results/task-unified-1-abcdefgh.mp4", b"0" * 1000)
    good = services.signer.sign(
        "results/task-unified-1-abcdefgh.mp4", expires=int(time.time()) + 60
    )
    assert (await client.get(good)).status_code == 200
    query = parse_qs(urlsplit(good).query)
    signature = query["signature"][0]
    tampered = good.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    other = good.replace("abcdefgh", "abcdefgi")
    expired = services.signer.sign(
        "results/task-unified-1-abcdefgh.mp4", expires=int(time.time()) - 1
    )
    unsigned = good.split("?")[0]
    for url in (tampered, other, expired, unsigned):
        response = await client.get(url)
        assert response.status_code == 403, url
        assert response.json()["error"]["code"] == "forbidden"


async def test_head_on_a_signed_link_answers_like_get_without_the_body(
    client: httpx.AsyncClient, services: Services
) -> None:
    key = "results/task-unified-1-headhead.mp4"
    services.files.put_bytes(key, bytes(range(256)) * 4)
    link = services.signer.sign(key, expires=int(time.time()) + 60)
    for asked in ({}, {"Range": "bytes=100-199"}, {"Range": "bytes=-10"}, {"Range": "bytes=5000-"}):
        headers = {**asked, "Authorization": ""}
        got = await client.get(link, headers=headers)
        head = await client.head(link, headers=headers)
        assert head.status_code == got.status_code, asked
        assert head.content == b"", asked
        for name in ("content-length", "content-range", "content-type", "etag", "accept-ranges"):
            assert head.headers.get(name) == got.headers.get(name), (asked, name)
    whole = await client.head(link, headers={"Authorization": ""})
    assert whole.status_code == 200
    assert whole.headers["content-length"] == "1024"
    # If-Range with another version's ETag: the whole file, as GET would send.
    stale = await client.head(
        link, headers={"Range": "bytes=0-9", "If-Range": '"other"', "Authorization": ""}
    )
    assert stale.status_code == 200
    assert stale.headers["content-length"] == "1024"

    signature = parse_qs(urlsplit(link).query)["signature"][0]
    tampered = link.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    assert (await client.head(tampered, headers={"Authorization": ""})).status_code == 403
    gone = services.signer.sign(
        "results/task-unified-1-nothere0.mp4", expires=int(time.time()) + 60
    )
    assert (await client.head(gone, headers={"Authorization": ""})).status_code == 404
