"""The diffusers engine: LTX-Video or Wan in a long-lived child process, encoded to SPEC format."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, get_args

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from vidgate.engines.base import (
    EngineFailure,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
    load_image,
    prompt_seed,
    run_in_thread,
)
from vidgate.engines.child_process import ChildProcess
from vidgate.engines.config import ConfigError
from vidgate.engines.diffusers_child import ChildConfig, Job, PipelineKind, serve
from vidgate.media.frames import Yuv420, frame_size, rgb_to_yuv420
from vidgate.media.video import FRAME_COUNT, VideoWriter

logger = logging.getLogger(__name__)

# Denoising is most of the work; the VAE decode and the H.264 encode share the rest.
DENOISE_SHARE: Final = 0.9
_POLL_SECONDS: Final = 0.05


@dataclass(frozen=True)
class _Defaults:
    width: int  # of a 16:9 video; 9:16 swaps width and height
    height: int
    num_frames: int
    size_multiple: int  # the VAE's spatial compression times the transformer's patch
    frame_step: int  # frames must be frame_step * k + 1 (the VAE's temporal compression)


_DEFAULTS: Final[dict[str, _Defaults]] = {
    "ltx": _Defaults(width=768, height=512, num_frames=121, size_multiple=32, frame_step=8),
    "wan": _Defaults(width=832, height=480, num_frames=81, size_multiple=16, frame_step=4),
}


@dataclass(frozen=True)
class DiffusersOptions:
    """The engine's options from the model registry; ``parse`` checks them at start-up."""

    pipeline: PipelineKind
    model_path: str
    width: int
    height: int
    num_frames: int
    num_inference_steps: int = 30
    guidance_scale: float | None = None  # None: the pipeline's own default
    device: str | None = None
    dtype: str | None = None
    stop_timeout: float = 10.0  # seconds a stop may take before the child is killed

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> DiffusersOptions:
        known = {field.name for field in fields(cls)}
        if unknown := sorted(set(options) - known):
            raise ConfigError(f"diffusers: unknown options {unknown}; known: {sorted(known)}")
        pipeline: PipelineKind = options.get("pipeline", "")
        if pipeline not in get_args(PipelineKind):
            raise ConfigError(f"diffusers: `pipeline` must be one of {get_args(PipelineKind)}")
        model_path = options.get("model_path")
        if not isinstance(model_path, str) or not model_path:
            raise ConfigError("diffusers: `model_path` (a directory or a cached repo id) is needed")
        defaults = _DEFAULTS[pipeline]
        try:
            parsed = cls(
                pipeline=pipeline,
                model_path=model_path,
                width=int(options.get("width", defaults.width)),
                height=int(options.get("height", defaults.height)),
                num_frames=int(options.get("num_frames", defaults.num_frames)),
                num_inference_steps=int(options.get("num_inference_steps", 30)),
                guidance_scale=_optional(float, options.get("guidance_scale")),
                device=_optional(str, options.get("device")),
                dtype=_optional(str, options.get("dtype")),
                stop_timeout=float(options.get("stop_timeout", 10.0)),
            )
        except (TypeError, ValueError) as error:
            raise ConfigError(f"diffusers: {error}") from None
        multiple, step = defaults.size_multiple, defaults.frame_step
        if (
            parsed.width % multiple
            or parsed.height % multiple
            or min(parsed.width, parsed.height) < 1
        ):
            raise ConfigError(
                f"diffusers: {pipeline} needs width and height multiples of {multiple}"
            )
        if parsed.num_frames < step + 1 or (parsed.num_frames - 1) % step:
            raise ConfigError(f"diffusers: {pipeline} needs num_frames = {step}k + 1")
        if parsed.num_inference_steps < 1 or parsed.stop_timeout <= 0:
            raise ConfigError("diffusers: num_inference_steps and stop_timeout must be positive")
        return parsed

    def generation_size(self, aspect_ratio: str) -> tuple[int, int]:
        """The (width, height) the model renders at: the configured size, upright for 9:16."""
        long, short = max(self.width, self.height), min(self.width, self.height)
        return (short, long) if aspect_ratio == "9:16" else (long, short)


def _optional(kind: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else kind(value)


class _Child(ChildProcess):
    """One model process; ``ready`` once its pipeline has loaded."""

    def __init__(self, config: ChildConfig) -> None:
        super().__init__(
            serve,
            (config,),
            name="vidgate-diffusers",
            label="the model process",
            poll_seconds=_POLL_SECONDS,
        )
        self.ready = False


class DiffusersEngine:
    """Open-weight text/image-to-video on a local GPU (or, slowly, a CPU), one task at a time.

    The pipeline loads once, in a child process started at the first task, and stays loaded. A
    cancel stops the current run between denoising steps; a child that does not stop within
    ``stop_timeout`` is killed. A crash or out-of-memory ends the child, never the server: the
    task fails with ``service_error`` or ``resource_exhausted`` and the next task starts a fresh
    child. The generated clip is stretched over the SPEC's 8 s (see ``write_video``).
    """

    name = "diffusers"

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = DiffusersOptions.parse(options)
        self._config = ChildConfig(
            self.options.pipeline, self.options.model_path, self.options.device, self.options.dtype
        )
        self._child: _Child | None = None
        self._lock = threading.Lock()  # the child runs one job at a time

    @property
    def child_pid(self) -> int | None:
        return self._child.process.pid if self._child is not None else None

    def close(self) -> None:
        """Stop the child process (call at shutdown)."""
        with self._lock:
            if self._child is not None:
                self._child.close()
                self._child = None

    async def aclose(self) -> None:
        """``close`` off the event loop: the child may take seconds to exit."""
        await asyncio.to_thread(self.close)

    async def generate(
        self, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None:
        # On cancellation the thread stops the child's run and cleans up first.
        await run_in_thread(self._generate, request, output, context)

    def _generate(
        self,
        request: GenerationRequest,
        output: Path,
        context: GenerationContext,
        stop: threading.Event,
    ) -> None:
        def cancelled() -> bool:
            return context.cancelled.is_set() or stop.is_set()

        started = time.perf_counter()
        width, height = self.options.generation_size(request.aspect_ratio)
        if len(request.images) > 2:
            raise EngineFailure(
                "invalid_parameters", "the diffusers engine takes at most two images"
            )
        images = [
            np.asarray(ImageOps.fit(load_image(path), (width, height), Image.Resampling.LANCZOS))
            for path in request.images
        ]
        output.parent.mkdir(parents=True, exist_ok=True)
        frames_path = output.with_name(f".{output.name}.frames.npy")
        job = Job(
            prompt=request.prompt,
            width=width,
            height=height,
            num_frames=self.options.num_frames,
            num_inference_steps=self.options.num_inference_steps,
            guidance_scale=self.options.guidance_scale,
            seed=prompt_seed(request.prompt) % 2**63,
            frames_path=str(frames_path),
            images=images,
        )
        while not self._lock.acquire(timeout=_POLL_SECONDS):
            if cancelled():
                raise GenerationCancelled
        try:
            self._run(request.task_id, job, context, cancelled)
        finally:
            self._lock.release()
        try:
            frames: NDArray[np.uint8] = np.load(frames_path)
        finally:
            frames_path.unlink(missing_ok=True)
        context.progress(DENOISE_SHARE + 0.02)
        write_video(frames, request.aspect_ratio, output, context, cancelled)
        context.progress(1.0)
        elapsed = time.perf_counter() - started
        logger.info("task %s: %s video made in %.1f s", request.task_id, self.name, elapsed)

    def _ready_child(self, cancelled: Callable[[], bool]) -> _Child:
        """The loaded child, started (and waited for) if need be."""
        if self._child is None:
            self._child = _Child(self._config)
        child = self._child
        while not child.ready:
            if cancelled():  # it goes on loading, ready for the next task
                raise GenerationCancelled
            message = self._receive(child)
            if message is not None and message[0] == "ready":
                child.ready = True
            elif message is not None and message[0] == "failed":
                self._forget(child)
                raise EngineFailure(
                    "service_error", "the model could not be loaded", detail=message[2]
                )
        return child

    def _run(
        self, task_id: str, job: Job, context: GenerationContext, cancelled: Callable[[], bool]
    ) -> None:
        child = self._ready_child(cancelled)
        child.stop.clear()
        child.connection.send(("generate", job))
        deadline: float | None = None
        while True:
            if deadline is None and cancelled():
                child.stop.set()
                deadline = time.monotonic() + self.options.stop_timeout
            elif deadline is not None and time.monotonic() > deadline:
                logger.warning("task %s: the model process did not stop; killing it", task_id)
                self._forget(child, kill=True)
                raise GenerationCancelled
            message = self._receive(child)
            if message is None:
                continue
            if message[0] == "progress":
                context.progress(DENOISE_SHARE * message[1] / message[2])
            elif message[0] == "done":
                return
            elif message[0] == "cancelled":
                logger.info("task %s: generation stopped", task_id)
                raise GenerationCancelled
            elif message[0] == "failed":
                _, code, text = message
                if code == "resource_exhausted":
                    self._forget(child)  # it exits to free its memory
                    raise EngineFailure(code, "the model ran out of memory", detail=text)
                raise EngineFailure(code, "the model failed to generate the video", detail=text)

    def _receive(self, child: _Child) -> tuple[Any, ...] | None:
        try:
            return child.receive()
        except (EOFError, OSError):
            failure = child.failure()
            logger.error("the diffusers model process died: %s", failure.detail or failure)
            self._forget(child)
            raise failure from None

    def _forget(self, child: _Child, *, kill: bool = False) -> None:
        if kill:
            child.kill()
        else:
            child.close()
        if self._child is child:
            self._child = None


def write_video(
    frames: NDArray[np.uint8],
    aspect_ratio: str,
    output: Path,
    context: GenerationContext,
    cancelled: Callable[[], bool],
) -> None:
    """Encode generated frames as the SPEC's video: 24 fps, 8 s, at ``frame_size``.

    Each frame is cropped to fill the SPEC frame (the model's size is close to 16:9, and a crop
    beats black bars). The clip is stretched in time over all 192 frames, each output frame a
    linear blend of its two nearest generated frames: so the first and last generated frames,
    the keyframes of a first-and-last task, are exactly the video's first and last frames.
    """
    width, height = frame_size(aspect_ratio)
    fitted = [
        rgb_to_yuv420(ImageOps.fit(Image.fromarray(frame, "RGB"), (width, height)))
        for frame in frames
    ]
    last = len(fitted) - 1
    with VideoWriter(output, width, height) as writer:
        for index in range(FRAME_COUNT):
            if cancelled():
                raise GenerationCancelled
            position = index * last / (FRAME_COUNT - 1)
            low = min(math.floor(position), last)
            writer.write_yuv420(_blend(fitted[low], fitted[min(low + 1, last)], position - low))
            share = DENOISE_SHARE + 0.02
            context.progress(share + (0.99 - share) * (index + 1) / FRAME_COUNT)


def _blend(first: Yuv420, second: Yuv420, weight: float) -> Yuv420:
    if weight < 1 / 512:
        return first
    level = round(weight * 256)
    mixed = first.astype(np.uint16) * (256 - level) + second.astype(np.uint16) * level + 128
    return (mixed >> 8).astype(np.uint8)
