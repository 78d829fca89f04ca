"""The relay engine for real (vidgate -> vidgate on loopback) and its retries (MockTransport)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from support import E2E_KEY, ServerProcess, StaticServer, image_bytes, structured_image
from vidgate.engines.base import (
    EngineFailure,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
)
from vidgate.engines.relay import MAX_VIDEO_BYTES, RelayEngine
from vidgate.media.frames import fit_image
from vidgate.media.probe import decode_frames, probe

# Mean absolute RGB difference of a decoded first frame from its picture (see
# test_preview_engine.py: about 1 for the right picture, tens for a wrong one).
CLOSE = 4.0
WRONG_KEY = "sk-wrong-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"


@pytest.fixture(scope="module")
def image_host() -> Iterator[StaticServer]:
    with StaticServer() as server:
        yield server


def _start(root: Path, image_host: StaticServer, workers: int) -> ServerProcess:
    process = ServerProcess(
        root / "data",
        {
            "VIDGATE_WORKERS": str(workers),
            "VIDGATE_EGRESS_ALLOW": f"127.0.0.1:{image_host.port}",
            "VIDGATE_BOOTSTRAP_CREDITS": "10000",
        },
    )
    process.start()
    return process


@pytest.fixture(scope="module")
def upstream(
    tmp_path_factory: pytest.TempPathFactory, image_host: StaticServer
) -> Iterator[ServerProcess]:
    """A vidgate that makes videos (one worker, the preview engine)."""
    process = _start(tmp_path_factory.mktemp("upstream"), image_host, workers=1)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def idle_upstream(
    tmp_path_factory: pytest.TempPathFactory, image_host: StaticServer
) -> Iterator[ServerProcess]:
    """A vidgate with no worker: its tasks stay pending until someone cancels them."""
    process = _start(tmp_path_factory.mktemp("idle"), image_host, workers=0)
    try:
        yield process
    finally:
        process.stop()


class Recorder:
    def __init__(self) -> None:
        self.values: list[float] = []
        self.context = GenerationContext(progress=self.values.append)


def request(
    prompt: str = "a lighthouse at dusk", images: tuple[Path, ...] = ()
) -> GenerationRequest:
    task_id = f"task-unified-{int(time.time())}-{uuid.uuid4().hex[:8]}"
    return GenerationRequest(task_id=task_id, prompt=prompt, aspect_ratio="16:9", images=images)


def relay(server: ServerProcess, key: str = E2E_KEY, **options: Any) -> RelayEngine:
    settings: dict[str, Any] = {"poll_wait": 5, "poll_interval": 0.2, "backoff": 0.01, **options}
    return RelayEngine(server.url, key, **settings)


def upstream_tasks(server: ServerProcess, key: str = E2E_KEY) -> list[dict[str, Any]]:
    with server.client() as client:
        client.headers["Authorization"] = f"Bearer {key}"
        response = client.get("/v1/tasks", params={"limit": 100})
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data


async def wait_for(condition: Callable[[], Any]) -> Any:
    """The first truthy answer of ``condition`` (run in a thread), within 30 s."""
    async with asyncio.timeout(30):
        while True:
            if found := await asyncio.to_thread(condition):
                return found
            await asyncio.sleep(0.1)


def new_task(server: ServerProcess, seen: set[str]) -> Callable[[], dict[str, Any] | None]:
    def find() -> dict[str, Any] | None:
        return next((t for t in upstream_tasks(server) if t["id"] not in seen), None)

    return find


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def assert_decodes_as_the_spec_video(path: Path) -> None:
    info = probe(path)
    assert (info.codec, info.frame_count, info.width, info.height) == ("h264", 192, 1280, 720)


async def test_a_text_task_completes_and_its_video_is_stored_here(
    upstream: ServerProcess, tmp_path: Path
) -> None:
    recorder, output = Recorder(), tmp_path / "result.mp4"
    engine = relay(upstream)
    try:
        await asyncio.wait_for(engine.generate(request(), output, recorder.context), 120)
    finally:
        await engine.aclose()
    assert_decodes_as_the_spec_video(output)
    assert names(tmp_path) == ["result.mp4"]  # no partial file left
    values = recorder.values
    assert values == sorted(values)
    assert values[-1] == 1.0
    assert all(value < 0.95 for value in values[:-1])


async def test_an_image_reaches_the_upstream_and_starts_the_video(
    upstream: ServerProcess, image_host: StaticServer, tmp_path: Path
) -> None:
    picture = structured_image(640, 360, seed=7)
    image_host.add("/inputs/first.png", image_bytes(picture), content_type="image/png")
    stored = tmp_path / "first.png"
    stored.write_bytes(image_bytes(picture))
    output = tmp_path / "result.mp4"
    engine = relay(upstream, image_url=lambda path: f"{image_host.base_url}/inputs/{path.name}")
    try:
        await asyncio.wait_for(
            engine.generate(request(images=(stored,)), output, Recorder().context), 120
        )
    finally:
        await engine.aclose()
    assert ("GET", "/inputs/first.png") in [(m, p) for m, p, _ in image_host.requests]
    assert_decodes_as_the_spec_video(output)
    first = decode_frames(output, [0])[0].astype(np.float64)
    expected = np.asarray(fit_image(picture, 1280, 720), np.float64)
    assert np.abs(first - expected).mean() < CLOSE


async def test_images_without_a_url_maker_fail_before_anything_is_sent(
    idle_upstream: ServerProcess, tmp_path: Path
) -> None:
    before = len(upstream_tasks(idle_upstream))
    stored = tmp_path / "first.png"
    stored.write_bytes(image_bytes(structured_image(64, 64, seed=1)))
    engine = relay(idle_upstream)
    try:
        with pytest.raises(EngineFailure) as failure:
            await engine.generate(
                request(images=(stored,)), tmp_path / "out.mp4", Recorder().context
            )
    finally:
        await engine.aclose()
    assert failure.value.code == "invalid_parameters"
    assert "VIDGATE_PUBLIC_URL" in failure.value.message
    assert len(upstream_tasks(idle_upstream)) == before


async def test_an_upstream_task_cancelled_there_fails_here_with_its_code(
    idle_upstream: ServerProcess, tmp_path: Path
) -> None:
    seen = {t["id"] for t in upstream_tasks(idle_upstream)}
    engine = relay(idle_upstream)
    running = asyncio.create_task(
        engine.generate(request(), tmp_path / "out.mp4", Recorder().context)
    )
    try:
        task = await wait_for(new_task(idle_upstream, seen))
        with idle_upstream.client() as client:
            assert client.post(f"/v1/tasks/{task['id']}/cancel").status_code == 200
        with pytest.raises(EngineFailure) as failure:
            await asyncio.wait_for(running, 30)
    finally:
        running.cancel()
        await engine.aclose()
    assert failure.value.code == "request_cancelled"
    assert failure.value.message
    assert not (tmp_path / "out.mp4").exists()


async def test_an_upstream_account_without_credits_is_resource_exhausted(
    idle_upstream: ServerProcess, tmp_path: Path
) -> None:
    with idle_upstream.client() as client:
        created = client.post("/admin/accounts", json={"name": "broke", "credits": "0"})
        assert created.status_code == 200, created.text
    broke_key = created.json()["key"]
    engine = relay(idle_upstream, key=broke_key)
    try:
        with pytest.raises(EngineFailure) as failure:
            await engine.generate(request(), tmp_path / "out.mp4", Recorder().context)
    finally:
        await engine.aclose()
    assert failure.value.code == "resource_exhausted"
    assert "credits" in failure.value.message
    assert upstream_tasks(idle_upstream, broke_key) == []


async def test_cancelling_here_cancels_the_upstream_task(
    idle_upstream: ServerProcess, tmp_path: Path
) -> None:
    seen = {t["id"] for t in upstream_tasks(idle_upstream)}
    recorder, engine = Recorder(), relay(idle_upstream, poll_wait=20)
    running = asyncio.create_task(
        engine.generate(request(), tmp_path / "out.mp4", recorder.context)
    )
    try:
        task = await wait_for(new_task(idle_upstream, seen))
        # The relay is now inside a 20 s long-poll: the cancel must cut it short.
        recorder.context.cancelled.set()
        started = time.monotonic()
        with pytest.raises(GenerationCancelled):
            await asyncio.wait_for(running, 10)
        assert time.monotonic() - started < 5
    finally:
        running.cancel()
        await engine.aclose()

    def cancelled_upstream() -> dict[str, Any] | None:
        with idle_upstream.client() as client:
            body: dict[str, Any] = client.get(f"/v1/tasks/{task['id']}").json()
        return body if body["status"] == "failed" else None

    body = await wait_for(cancelled_upstream)
    assert body["error"]["code"] == "request_cancelled"


async def test_a_retried_create_reuses_the_upstream_task(
    upstream: ServerProcess, tmp_path: Path
) -> None:
    before = len(upstream_tasks(upstream))
    task = request("the same task, twice")
    engine = relay(upstream)
    try:
        for name in ("first.mp4", "second.mp4"):
            await asyncio.wait_for(engine.generate(task, tmp_path / name, Recorder().context), 120)
    finally:
        await engine.aclose()
    assert len(upstream_tasks(upstream)) == before + 1
    assert (tmp_path / "first.mp4").read_bytes() == (tmp_path / "second.mp4").read_bytes()
    assert_decodes_as_the_spec_video(tmp_path / "second.mp4")


async def test_a_refused_key_is_a_service_error_that_never_shows_the_key(
    upstream: ServerProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    engine = relay(upstream, key=WRONG_KEY)
    try:
        with pytest.raises(EngineFailure) as failure:
            await engine.generate(request(), tmp_path / "out.mp4", Recorder().context)
    finally:
        await engine.aclose()
    assert failure.value.code == "service_error"
    for text in (
        str(failure.value),
        failure.value.message,
        failure.value.detail or "",
        caplog.text,
    ):
        assert WRONG_KEY not in text


# --- retries and failures over httpx.MockTransport ---------------------------------------------

UPSTREAM = "http://upstream.test"
RESULT = f"{UPSTREAM}/files/result.mp4"


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("video") / "tiny.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for shade in (0, 80, 160):
            pixels = np.full((64, 64, 3), shade, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path.read_bytes()


async def streamed(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 4096):
        yield data[start : start + 4096]


def task_json(status: str, **extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"id": "task-unified-1-upstream", "status": status, **extra})


def done_task() -> httpx.Response:
    return task_json("completed", progress=100, results=[RESULT])


class Upstream:
    """A scripted upstream: answers for create in order (the last repeats), then polls."""

    def __init__(
        self, creates: list[httpx.Response | Exception], polls: list[httpx.Response], video: bytes
    ) -> None:
        self.creates = creates
        self.polls = polls
        self.video = video
        self.result_headers = {"Content-Length": str(len(video))}
        self.seen: list[httpx.Request] = []
        self.slept: list[float] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.path == "/v1/videos/generations":
            answer = self.creates[min(len(self.created) - 1, len(self.creates) - 1)]
            if isinstance(answer, Exception):
                raise answer
            return answer
        if request.url.path.startswith("/v1/tasks/"):
            return self.polls[min(len(self.polled) - 1, len(self.polls) - 1)]
        if str(request.url) == RESULT:
            # Streamed, as a server sends it: MockTransport reads a bytes body at once.
            return httpx.Response(200, headers=self.result_headers, content=streamed(self.video))
        return httpx.Response(404)

    @property
    def created(self) -> list[httpx.Request]:
        return [r for r in self.seen if r.url.path == "/v1/videos/generations"]

    @property
    def polled(self) -> list[httpx.Request]:
        return [r for r in self.seen if r.url.path.startswith("/v1/tasks/")]

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def engine(self, **options: Any) -> RelayEngine:
        return RelayEngine(
            UPSTREAM,
            "sk-mock",
            transport=httpx.MockTransport(self.handle),
            sleep=self.sleep,
            poll_interval=0,
            backoff=0.01,
            **options,
        )


async def run(upstream: Upstream, tmp_path: Path, **options: Any) -> Recorder:
    recorder, engine = Recorder(), upstream.engine(**options)
    try:
        await engine.generate(request(), tmp_path / "out.mp4", recorder.context)
    finally:
        await engine.aclose()
    return recorder


async def test_a_429_is_retried_after_its_retry_after_with_the_same_idempotency_key(
    tmp_path: Path, tiny_video: bytes
) -> None:
    limited = httpx.Response(429, headers={"Retry-After": "3"}, json={"error": {"message": "slow"}})
    upstream = Upstream(
        [limited, task_json("pending")],
        [
            task_json("processing", progress=50),
            task_json("completed", progress=100, results=[RESULT]),
        ],
        tiny_video,
    )
    recorder = await run(upstream, tmp_path)
    assert upstream.slept == [3.0]
    keys = {r.headers["Idempotency-Key"] for r in upstream.created}
    assert len(upstream.created) == 2
    assert keys == {upstream.created[0].headers["Idempotency-Key"]}
    assert all(r.url.params["wait"] == "20" for r in upstream.polled)
    assert json.loads(upstream.created[0].content) == {
        "model": "veo3.1-fast",
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "16:9",
    }
    assert recorder.values[0] == pytest.approx(0.5)
    assert recorder.values[-1] == 1.0
    assert (tmp_path / "out.mp4").read_bytes() == tiny_video


async def test_503s_and_refused_connections_until_the_retries_run_out_are_service_unavailable(
    tmp_path: Path, tiny_video: bytes
) -> None:
    upstream = Upstream(
        [httpx.ConnectError("refused"), httpx.Response(503)], [task_json("pending")], tiny_video
    )
    with pytest.raises(EngineFailure) as failure:
        await run(upstream, tmp_path, max_retries=3, rand=lambda: 1.0)
    assert failure.value.code == "service_unavailable"
    assert failure.value.detail == "upstream create: HTTP 503 after 4 attempts"
    assert len(upstream.created) == 4
    assert upstream.slept == [0.01, 0.02, 0.04]  # the backoff doubles (the jitter at its top)


async def test_a_long_retry_after_is_waited_only_up_to_max_backoff(
    tmp_path: Path, tiny_video: bytes
) -> None:
    limited = httpx.Response(503, headers={"Retry-After": "3600"})
    upstream = Upstream([limited, task_json("pending")], [done_task()], tiny_video)
    await run(upstream, tmp_path, max_backoff=5.0)
    assert upstream.slept == [5.0]


async def test_a_video_announced_past_the_size_limit_is_never_written(
    tmp_path: Path, tiny_video: bytes
) -> None:
    upstream = Upstream([task_json("pending")], [done_task()], tiny_video)
    upstream.result_headers = {"Content-Length": str(MAX_VIDEO_BYTES + 1)}
    with pytest.raises(EngineFailure) as failure:
        await run(upstream, tmp_path)
    assert failure.value.code == "generation_failed_no_content"
    assert "too large" in failure.value.message
    assert names(tmp_path) == []


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "invalid_parameters"),
        (401, "service_error"),
        (402, "resource_exhausted"),
        (422, "service_error"),  # a vidgate upstream: the idempotency key came with another body
    ],
)
async def test_a_refused_create_maps_to_a_task_error(
    tmp_path: Path, tiny_video: bytes, status: int, code: str
) -> None:
    refused = httpx.Response(status, json={"error": {"message": "no", "code": "x"}})
    upstream = Upstream([refused], [task_json("pending")], tiny_video)
    with pytest.raises(EngineFailure) as failure:
        await run(upstream, tmp_path)
    assert failure.value.code == code
    assert len(upstream.created) == 1
    assert not upstream.polled


@pytest.mark.parametrize(
    ("upstream_code", "code"),
    [("content_policy_violation", "content_policy_violation"), ("made_up", "unknown_error")],
)
async def test_an_upstream_failure_code_passes_through_when_it_is_a_spec_code(
    tmp_path: Path, tiny_video: bytes, upstream_code: str, code: str
) -> None:
    failed = task_json("failed", error={"code": upstream_code, "message": "upstream says no"})
    upstream = Upstream([task_json("pending")], [failed], tiny_video)
    with pytest.raises(EngineFailure) as failure:
        await run(upstream, tmp_path)
    assert (failure.value.code, failure.value.message) == (code, "upstream says no")


async def test_a_result_that_is_not_a_video_is_generation_failed_no_content(tmp_path: Path) -> None:
    done = task_json("completed", progress=100, results=[RESULT])
    upstream = Upstream([task_json("pending")], [done], b"<html>not a video</html>")
    with pytest.raises(EngineFailure) as failure:
        await run(upstream, tmp_path)
    assert failure.value.code == "generation_failed_no_content"
    assert names(tmp_path) == []


async def test_a_cancel_during_the_create_still_cancels_the_task_it_made(
    tmp_path: Path, tiny_video: bytes
) -> None:
    upstream = Upstream([task_json("pending")], [task_json("pending")], tiny_video)
    recorder = Recorder()

    def create_then_cancel(sent: httpx.Request) -> httpx.Response:
        answer = upstream.handle(sent)
        if sent.url.path == "/v1/videos/generations":
            recorder.context.cancelled.set()
        return answer

    engine = RelayEngine(
        UPSTREAM, "sk-mock", transport=httpx.MockTransport(create_then_cancel), sleep=upstream.sleep
    )
    try:
        with pytest.raises(GenerationCancelled):
            await engine.generate(request(), tmp_path / "out.mp4", recorder.context)
    finally:
        await engine.aclose()
    paths = [(r.method, r.url.path) for r in upstream.seen]
    assert paths == [
        ("POST", "/v1/videos/generations"),
        ("POST", "/v1/tasks/task-unified-1-upstream/cancel"),
    ]
