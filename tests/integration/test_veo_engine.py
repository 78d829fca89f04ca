"""The veo engine against a fake Gemini server on loopback: protocol, faults, format, cancel."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fake_gemini import API_KEY, MODEL, FakeGemini, Reply, small_clip, spec_clip
from support import free_port, image_bytes, structured_image
from vidgate.engines.base import (
    AspectRatio,
    EngineFailure,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
)
from vidgate.engines.veo import VeoEngine, conform_video
from vidgate.media.probe import decode_frames, probe
from vidgate.media.video import FRAME_COUNT

PROMPT = "A lighthouse in a storm, waves crashing"


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


def make_engine(base_url: str, *, max_retries: int = 5, backoff: float = 0.01) -> VeoEngine:
    return VeoEngine(
        API_KEY,
        base_url=base_url,
        poll_interval=0.02,
        typical_seconds=0.3,
        max_retries=max_retries,
        backoff=backoff,
    )


@pytest.fixture
async def engine(gemini: FakeGemini) -> AsyncIterator[VeoEngine]:
    engine = make_engine(gemini.base_url)
    yield engine
    await engine.aclose()


class Run:
    def __init__(self, tmp_path: Path) -> None:
        self.output = tmp_path / "out" / "video.mp4"
        self.progress: list[float] = []
        self.context = GenerationContext(progress=self.progress.append)

    async def __call__(
        self,
        engine: VeoEngine,
        *,
        images: tuple[Path, ...] = (),
        aspect_ratio: AspectRatio = "16:9",
    ) -> Path:
        request = GenerationRequest("task-unified-veo-1", PROMPT, aspect_ratio, images)
        await engine.generate(request, self.output, self.context)
        return self.output


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def assert_spec_video(path: Path, width: int = 1280, height: int = 720) -> None:
    info = probe(path)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height) == (width, height)
    assert info.frame_count == FRAME_COUNT
    assert info.duration_seconds == pytest.approx(8.0, abs=0.1)


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def write_image(folder: Path, name: str, fmt: str, seed: int) -> tuple[Path, bytes]:
    data = image_bytes(structured_image(320, 180, seed), fmt)
    path = folder / name
    path.write_bytes(data)
    return path, data


async def test_text_only_video_is_reencoded_to_the_spec_format(
    gemini: FakeGemini, engine: VeoEngine, run: Run
) -> None:
    gemini.scenario.polls = 3
    output = await run(engine)

    assert_spec_video(output)
    [start] = gemini.requests_to(":predictLongRunning")
    assert start.method == "POST"
    assert start.path == f"/v1beta/models/{MODEL}:predictLongRunning"
    assert start.headers["x-goog-api-key"] == API_KEY
    assert start.body == {
        "instances": [{"prompt": PROMPT}],
        "parameters": {"aspectRatio": "16:9", "resolution": "720p", "durationSeconds": 8},
    }
    polls = gemini.requests_to("/operations/")
    assert len(polls) == 4
    assert all(p.method == "GET" and p.headers["x-goog-api-key"] == API_KEY for p in polls)
    [download] = gemini.requests_to(":download")
    assert download.headers["x-goog-api-key"] == API_KEY
    assert leftovers(output.parent) == [output]


async def test_reencoded_frames_show_the_provider_video(
    engine: VeoEngine, run: Run, tmp_path: Path
) -> None:
    output = await run(engine)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(small_clip())
    # 60 source frames spread over 192: output frame 96 shows source frame 30.
    ours = decode_frames(output, [0, 96])
    theirs = decode_frames(clip, [0, 30])
    for mine, source in ((ours[0], theirs[0]), (ours[96], theirs[30])):
        enlarged = np.asarray(
            Image.fromarray(source).resize((1280, 720), Image.Resampling.BILINEAR)
        )
        assert np.abs(mine.astype(int) - enlarged.astype(int)).mean() < 8


async def test_a_vertical_video_is_letterboxed_to_720x1280(engine: VeoEngine, run: Run) -> None:
    output = await run(engine, aspect_ratio="9:16")

    assert_spec_video(output, 720, 1280)
    frame = decode_frames(output, [0])[0]
    assert frame[:200].mean() < 20  # the bars above the 16:9 picture are black
    assert frame[600:700].mean() > 40


async def test_a_video_already_in_the_spec_format_is_stored_unchanged(
    gemini: FakeGemini, engine: VeoEngine, run: Run
) -> None:
    gemini.scenario.video = spec_clip()
    output = await run(engine)

    assert output.read_bytes() == spec_clip()


async def test_one_image_is_sent_as_the_first_frame(
    gemini: FakeGemini, engine: VeoEngine, run: Run, tmp_path: Path
) -> None:
    path, data = write_image(tmp_path, "first.png", "PNG", seed=1)
    assert_spec_video(await run(engine, images=(path,), aspect_ratio="9:16"), 720, 1280)

    [start] = gemini.requests_to(":predictLongRunning")
    instance = start.body["instances"][0]
    assert set(instance) == {"prompt", "image"}
    assert instance["image"]["mimeType"] == "image/png"
    assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == data
    assert start.body["parameters"]["aspectRatio"] == "9:16"


async def test_two_images_are_sent_as_first_and_last_frames(
    gemini: FakeGemini, engine: VeoEngine, run: Run, tmp_path: Path
) -> None:
    gemini.scenario.video = spec_clip()  # stored as is: no re-encode to wait for
    first, first_data = write_image(tmp_path, "a", "JPEG", seed=2)
    last, last_data = write_image(tmp_path, "b", "WEBP", seed=3)
    await run(engine, images=(first, last))

    instance = gemini.requests_to(":predictLongRunning")[0].body["instances"][0]
    assert instance["image"]["mimeType"] == "image/jpeg"
    assert instance["lastFrame"]["mimeType"] == "image/webp"
    assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == first_data
    decoded = Image.open(io.BytesIO(base64.b64decode(instance["lastFrame"]["bytesBase64Encoded"])))
    assert decoded.format == "WEBP"
    assert base64.b64decode(instance["lastFrame"]["bytesBase64Encoded"]) == last_data


async def test_an_unreadable_image_is_an_image_processing_error(
    gemini: FakeGemini, engine: VeoEngine, run: Run, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(EngineFailure) as caught:
        await run(engine, images=(broken,))
    assert caught.value.code == "image_processing_error"
    assert gemini.requests == []


async def test_a_filtered_video_is_a_content_policy_violation(
    gemini: FakeGemini, engine: VeoEngine, run: Run
) -> None:
    gemini.scenario.filtered = True
    with pytest.raises(EngineFailure) as caught:
        await run(engine)
    assert caught.value.code == "content_policy_violation"
    assert caught.value.detail is not None
    assert "may violate our policies" in caught.value.detail
    assert leftovers(run.output.parent) == []


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (8, "RESOURCE_EXHAUSTED", "resource_exhausted"),
        (3, "INVALID_ARGUMENT", "invalid_parameters"),
        (4, "DEADLINE_EXCEEDED", "generation_timeout"),
        (13, "INTERNAL", "service_error"),
        (14, "UNAVAILABLE", "service_unavailable"),
        (10, "ABORTED", "unknown_error"),
    ],
)
async def test_an_operation_error_maps_by_its_code(
    gemini: FakeGemini, engine: VeoEngine, run: Run, code: int, status: str, expected: str
) -> None:
    gemini.scenario.error = (code, status, "scripted operation failure")
    with pytest.raises(EngineFailure) as caught:
        await run(engine)
    assert caught.value.code == expected
    assert caught.value.detail is not None
    assert "scripted operation failure" in caught.value.detail
    assert gemini.requests_to(":download") == []


async def test_429_with_retry_after_is_retried_then_succeeds(
    gemini: FakeGemini, engine: VeoEngine, run: Run
) -> None:
    gemini.scenario.video = spec_clip()  # stored as is: no re-encode to wait for
    gemini.scenario.start_failures = [
        Reply(429, {"Retry-After": "0"}),
        Reply(429, {"Retry-After": "0.05"}),
    ]
    assert_spec_video(await run(engine))
    assert len(gemini.requests_to(":predictLongRunning")) == 3


async def test_5xx_on_polls_and_downloads_are_retried_then_succeed(
    gemini: FakeGemini, engine: VeoEngine, run: Run
) -> None:
    gemini.scenario.video = spec_clip()  # stored as is: no re-encode to wait for
    gemini.scenario.polls = 1
    gemini.scenario.start_failures = [Reply(500)]
    gemini.scenario.poll_failures = [Reply(500), Reply(503)]
    gemini.scenario.download_failures = [Reply(502)]
    assert_spec_video(await run(engine))
    assert len(gemini.requests_to(":predictLongRunning")) == 2
    assert len(gemini.requests_to("/operations/")) == 4
    assert len(gemini.requests_to(":download")) == 2


async def test_429_past_the_retry_budget_is_resource_exhausted(
    gemini: FakeGemini, run: Run
) -> None:
    engine = make_engine(gemini.base_url, max_retries=2)
    gemini.scenario.start_failures = [Reply(429)] * 5
    try:
        with pytest.raises(EngineFailure) as caught:
            await run(engine)
    finally:
        await engine.aclose()
    assert caught.value.code == "resource_exhausted"
    assert len(gemini.requests_to(":predictLongRunning")) == 3


async def test_an_unreachable_api_is_service_unavailable(run: Run) -> None:
    engine = make_engine(f"http://127.0.0.1:{free_port()}", max_retries=1)
    try:
        with pytest.raises(EngineFailure) as caught:
            await run(engine)
    finally:
        await engine.aclose()
    assert caught.value.code == "service_unavailable"


@pytest.mark.parametrize("wrong_key", [False, True])
async def test_a_refused_key_is_a_service_error_that_does_not_show_the_key(
    gemini: FakeGemini, run: Run, wrong_key: bool
) -> None:
    if wrong_key:
        gemini.api_key = "another-key"
    else:
        gemini.scenario.refuse_key = True
    engine = make_engine(gemini.base_url)
    try:
        with pytest.raises(EngineFailure) as caught:
            await run(engine)
    finally:
        await engine.aclose()
    assert caught.value.code == "service_error"
    assert "API key" in caught.value.message
    assert API_KEY not in f"{caught.value.message} {caught.value.detail}"
    assert len(gemini.requests) == 1  # not retried


async def test_a_relative_uri_and_a_redirected_download_work(
    gemini: FakeGemini, engine: VeoEngine, run: Run
) -> None:
    gemini.scenario.video = spec_clip()  # stored as is: no re-encode to wait for
    gemini.scenario.relative_uri = True
    gemini.scenario.redirect_download = True
    assert_spec_video(await run(engine))
    [stored] = gemini.requests_to("/storage/")
    assert stored.headers["x-goog-api-key"] == API_KEY  # same origin: the key may follow


async def test_the_key_does_not_follow_a_redirect_to_another_host(
    gemini: FakeGemini, engine: VeoEngine, run: Run
) -> None:
    gemini.scenario.video = spec_clip()  # stored as is: no re-encode to wait for
    gemini.scenario.redirect_download = True
    gemini.scenario.redirect_origin = gemini.base_url.replace("127.0.0.1", "localhost")
    assert_spec_video(await run(engine))
    [stored] = gemini.requests_to("/storage/")
    assert stored.headers["host"].startswith("localhost:")
    assert "x-goog-api-key" not in stored.headers


async def test_a_download_that_is_not_a_video_is_no_content(
    gemini: FakeGemini, engine: VeoEngine, run: Run
) -> None:
    gemini.scenario.video = b"<html>not a video</html>"
    with pytest.raises(EngineFailure) as caught:
        await run(engine)
    assert caught.value.code == "generation_failed_no_content"
    assert leftovers(run.output.parent) == []


async def test_progress_never_decreases_and_reaches_1_only_when_done(
    gemini: FakeGemini, engine: VeoEngine, run: Run
) -> None:
    gemini.scenario.video = spec_clip()  # stored as is: no re-encode to wait for
    gemini.scenario.polls = 25  # past typical_seconds, so the estimate creeps toward its cap
    await run(engine)

    assert run.progress == sorted(run.progress)
    assert run.progress[-1] == 1.0
    assert all(0 < p < 0.95 for p in run.progress[:-2])
    assert len(run.progress) > 10


async def test_cancel_during_polling_stops_without_a_file(
    gemini: FakeGemini, engine: VeoEngine, run: Run
) -> None:
    gemini.scenario.polls = 10**6
    work = asyncio.ensure_future(run(engine))
    while len(gemini.requests_to("/operations/")) < 3:
        assert not work.done()
        await asyncio.sleep(0.01)
    run.context.cancelled.set()
    with pytest.raises(GenerationCancelled):
        await asyncio.wait_for(work, timeout=10)
    assert not run.output.exists()
    assert leftovers(run.output.parent) == []


async def test_cancel_during_a_retry_backoff_stops_at_once(gemini: FakeGemini, run: Run) -> None:
    engine = make_engine(gemini.base_url, backoff=60.0)
    gemini.scenario.start_failures = [Reply(503)]
    cancel = threading.Timer(0.2, run.context.cancelled.set)
    cancel.start()
    try:
        with pytest.raises(GenerationCancelled):
            await asyncio.wait_for(run(engine), timeout=20)
    finally:
        cancel.cancel()
        await engine.aclose()
    assert len(gemini.requests_to(":predictLongRunning")) == 1


def test_a_stopped_re_encode_leaves_no_file(tmp_path: Path) -> None:
    source, output = tmp_path / "source.mp4", tmp_path / "out.mp4"
    source.write_bytes(small_clip())
    answers = iter([False] * 10 + [True] * 1000)
    with pytest.raises(GenerationCancelled):
        conform_video(source, output, "16:9", lambda: next(answers))
    assert leftovers(tmp_path) == [source]
