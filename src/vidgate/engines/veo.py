"""The veo engine: Google Veo 3.1 Fast through the Gemini API, stored in the SPEC's format."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final

import av
import httpx
import numpy as np

from vidgate.engines.base import (
    EngineFailure,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
    RisingProgress,
)
from vidgate.engines.cancellation import sleep_unless_cancelled
from vidgate.engines.gemini import (
    GeminiClient,
    InlineImage,
    Instance,
    Operation,
    Parameters,
    PredictRequest,
    operation_failure,
)
from vidgate.errors import FetchFailed
from vidgate.media.frames import frame_size, rgb_to_yuv420
from vidgate.media.images import validate_image
from vidgate.media.probe import VideoInfo, probe
from vidgate.media.video import DURATION_SECONDS, FRAME_COUNT, VideoWriter

__all__ = ["DEFAULT_MODEL", "VeoEngine", "conform_video"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "veo-3.1-fast-generate-preview"
# Progress while Veo works is a guess from the clock: it follows the typical duration up to
# _POLLING_SHARE, then creeps toward _POLLING_CAP, which it never reaches; the download and the
# re-encode take it on to 1.
_POLLING_SHARE: Final = 0.85
_POLLING_CAP: Final = 0.94
_DOWNLOADED: Final = 0.95
_DURATION_TOLERANCE: Final = 0.1


def estimated_progress(elapsed: float, typical: float) -> float:
    """The estimated share done after ``elapsed`` seconds of a job that takes ``typical``."""
    ratio = max(0.0, elapsed) / max(typical, 1e-9)
    if ratio <= 1:
        return _POLLING_SHARE * ratio
    return _POLLING_SHARE + (_POLLING_CAP - _POLLING_SHARE) * (1 - math.exp(1 - ratio))


class VeoEngine:
    """Starts a Veo operation, polls it, downloads the video and makes it meet the SPEC format.

    Cancelling stops the polling only: the Gemini API documents no cancel method for
    ``predictLongRunning`` operations (only ``get`` and ``list``), so the job runs to its end on
    Google's side and is billed there.
    """

    name = "veo"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://generativelanguage.googleapis.com",
        model: str = DEFAULT_MODEL,
        poll_interval: float = 5.0,
        typical_seconds: float = 60.0,
        max_retries: int = 5,
        timeout: float = 60.0,
        backoff: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("the veo engine needs an API key")
        self.model, self.poll_interval, self.typical_seconds = model, poll_interval, typical_seconds
        self._client = GeminiClient(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def generate(
        self, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None:
        task_id, cancelled = request.task_id, context.cancelled
        progress = RisingProgress(context.progress)
        context.check_cancelled()
        payload = await _payload(request)
        started = time.monotonic()
        operation = await self._client.start(
            self.model, payload, task_id=task_id, cancelled=cancelled
        )
        logger.info("task %s: Veo operation %s started", task_id, operation.name)
        try:
            operation = await self._wait(operation, started, task_id, cancelled, progress)
        except GenerationCancelled:
            # Nothing to tell Google: the operation cannot be cancelled (see the class docstring).
            logger.info(
                "task %s: cancelled; Veo operation %s is left to finish", task_id, operation.name
            )
            raise
        uri = _video_uri(operation, task_id)
        logger.info(
            "task %s: Veo operation %s done in %.1f s",
            task_id,
            operation.name,
            time.monotonic() - started,
        )

        output.parent.mkdir(parents=True, exist_ok=True)
        download = output.with_name(f".{output.name}.{uuid.uuid4().hex}.download")
        try:
            await self._client.download(uri, download, task_id=task_id, cancelled=cancelled)
            progress(_DOWNLOADED)
            reencoded = await _conform_in_thread(download, output, request.aspect_ratio, cancelled)
        finally:
            download.unlink(missing_ok=True)
        progress(1.0)
        logger.info(
            "task %s: Veo video stored%s",
            task_id,
            " (re-encoded to the SPEC format)" if reencoded else "",
        )

    async def _wait(
        self,
        operation: Operation,
        started: float,
        task_id: str,
        cancelled: threading.Event,
        progress: RisingProgress,
    ) -> Operation:
        """Poll until the operation is done, reporting progress estimated from the clock."""
        while not operation.done:
            progress(estimated_progress(time.monotonic() - started, self.typical_seconds))
            await sleep_unless_cancelled(self.poll_interval, cancelled)
            operation = await self._client.poll(
                operation.name, task_id=task_id, cancelled=cancelled
            )
        return operation


async def _conform_in_thread(
    source: Path, output: Path, aspect_ratio: str, cancelled: threading.Event
) -> bool:
    stop = threading.Event()
    work = asyncio.ensure_future(
        asyncio.to_thread(
            conform_video, source, output, aspect_ratio, lambda: cancelled.is_set() or stop.is_set()
        )
    )
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        # A thread cannot be killed: tell it to stop and wait, so that no file appears at
        # ``output`` after the caller gave up on it.
        stop.set()
        await asyncio.wait({work})
        if not work.cancelled():
            work.exception()
        raise


async def _payload(request: GenerationRequest) -> PredictRequest:
    if len(request.images) > 2:
        raise EngineFailure(
            "invalid_parameters", f"Veo takes at most 2 images, not {len(request.images)}"
        )
    images = [await asyncio.to_thread(_inline_image, path) for path in request.images]
    instance = Instance(
        prompt=request.prompt,
        image=images[0] if images else None,
        last_frame=images[1] if len(images) > 1 else None,
    )
    width, height = frame_size(request.aspect_ratio)
    return PredictRequest(
        instances=[instance],
        parameters=Parameters(
            aspect_ratio=request.aspect_ratio, resolution=f"{min(width, height)}p"
        ),
    )


def _inline_image(path: Path) -> InlineImage:
    try:
        data = path.read_bytes()
        info = validate_image(data)
    except (OSError, FetchFailed) as exc:
        raise EngineFailure(
            "image_processing_error", "an input image could not be read", detail=str(exc)
        ) from None
    return InlineImage(
        bytes_base64_encoded=base64.b64encode(data).decode("ascii"), mime_type=info.mime_type
    )


def _video_uri(operation: Operation, task_id: str) -> str:
    if operation.error is not None:
        failure = operation_failure(operation.error)
        logger.warning(
            "task %s: Veo operation %s failed: %s", task_id, operation.name, failure.detail
        )
        raise failure
    result = operation.response.generate_video_response if operation.response else None
    samples = result.generated_samples if result else []
    uris = [s.video.uri for s in samples if s.video is not None and s.video.uri]
    if uris:
        return uris[0]
    if result is not None and result.rai_media_filtered_count > 0:
        reasons = "; ".join(result.rai_media_filtered_reasons) or "no reason given"
        logger.info("task %s: Veo filtered the video: %s", task_id, reasons)
        raise EngineFailure(
            "content_policy_violation",
            "the video was blocked by the provider's safety filters",
            detail=f"raiMediaFilteredCount {result.rai_media_filtered_count}: {reasons}",
        )
    raise EngineFailure(
        "generation_failed_no_content",
        "Veo finished without a video",
        detail=operation.model_dump_json(by_alias=True)[:1000],
    )


def conform_video(
    source: Path, output: Path, aspect_ratio: str, stop: Callable[[], bool] | None = None
) -> bool:
    """Put ``source`` at ``output`` in the SPEC format; True if it had to be re-encoded.

    A file already in the format (H.264, yuv420p, 24 fps, 8 s, the aspect's size) is moved as is.
    Anything else is scaled to fit (aspect kept, black bars) and retimed by frame index to 192
    frames, which stretches or squeezes its whole length into 8 s rather than cutting or freezing
    part of it. ``stop`` is asked between frames; when it says so, GenerationCancelled is raised
    and nothing is left at ``output``. Blocking: call it in a thread.
    """
    width, height = frame_size(aspect_ratio)
    try:
        info = probe(source)
    except (av.FFmpegError, IndexError, OSError) as exc:
        raise _no_content(exc) from None
    if info.frame_count == 0:
        raise _no_content("no decodable frames")
    if stop is not None and stop():
        raise GenerationCancelled
    if _meets_spec(info, width, height):
        source.replace(output)
        return False
    try:
        _reencode(source, output, info, width, height, stop or (lambda: False))
    except av.FFmpegError as exc:
        raise _no_content(exc) from None
    return True


def _meets_spec(info: VideoInfo, width: int, height: int) -> bool:
    return (
        info.codec == "h264"
        and info.pix_fmt == "yuv420p"
        and (info.width, info.height) == (width, height)
        and info.frame_count == FRAME_COUNT
        and abs(info.duration_seconds - DURATION_SECONDS) <= _DURATION_TOLERANCE
    )


def _reencode(
    source: Path, output: Path, info: VideoInfo, width: int, height: int, stop: Callable[[], bool]
) -> None:
    scale = min(width / info.width, height / info.height)
    # Even sizes and offsets, so the picture sits on whole chroma samples.
    fitted_w = min(width, 2 * max(1, round(info.width * scale / 2)))
    fitted_h = min(height, 2 * max(1, round(info.height * scale / 2)))
    left, top = (width - fitted_w) // 2 // 2 * 2, (height - fitted_h) // 2 // 2 * 2
    canvas = np.zeros((height, width, 3), np.uint8)
    picture = rgb_to_yuv420(canvas)
    written = 0
    with av.open(str(source)) as container, VideoWriter(output, width, height) as writer:
        for index, frame in enumerate(container.decode(video=0)):
            # Output frame i shows source frame floor(i * n / 192): each source frame is shown
            # for the output frames that map to it.
            end = min(FRAME_COUNT, -(-(index + 1) * FRAME_COUNT // info.frame_count))
            if end <= written:
                continue
            if stop():
                raise GenerationCancelled
            scaled = frame.reformat(width=fitted_w, height=fitted_h, format="rgb24")
            canvas[top : top + fitted_h, left : left + fitted_w] = scaled.to_ndarray()
            # Converted once, written as often as it is shown: repeats cost only a copy.
            picture = rgb_to_yuv420(canvas)
            while written < end:
                writer.write_yuv420(picture)
                written += 1
        while written < FRAME_COUNT:  # fewer frames decoded than probed: hold the last one
            writer.write_yuv420(picture)
            written += 1


def _no_content(cause: object) -> EngineFailure:
    return EngineFailure(
        "generation_failed_no_content",
        "Veo returned a file that is not a playable video",
        detail=str(cause),
    )
