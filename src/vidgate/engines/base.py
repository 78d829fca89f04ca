"""The Engine protocol: what every engine gets, reports and returns, and the reading of inputs
every local engine shares (an image upright, a seed from the prompt). No HTTP, no SQL here."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from PIL import Image, ImageOps

AspectRatio = Literal["16:9", "9:16"]

# The SPEC.md §3 task error codes an engine may fail with.
TaskErrorCode = Literal[
    "content_policy_violation",
    "invalid_parameters",
    "image_processing_error",
    "request_cancelled",
    "generation_failed_no_content",
    "service_error",
    "generation_timeout",
    "resource_exhausted",
    "service_unavailable",
    "unknown_error",
]


@dataclass(frozen=True)
class GenerationRequest:
    """One video to make: the task's inputs, with its images already fetched and stored."""

    task_id: str
    prompt: str
    aspect_ratio: AspectRatio
    images: Sequence[Path] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


class GenerationCancelled(Exception):
    """The engine stopped because the task was cancelled."""


class EngineFailure(Exception):
    """A typed failure: the task fails with ``code``; ``detail`` is kept for the operator."""

    def __init__(self, code: TaskErrorCode, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.code: TaskErrorCode = code
        self.message = message
        self.detail = detail


class EngineRefused(EngineFailure):
    """The engine did not take the job: nothing started upstream, nothing was paid there.

    Only this failure lets a task move on to the model's next engine; once an engine has
    accepted a job, its failure is the task's.
    """


@dataclass
class GenerationContext:
    """What an engine may call while it works.

    ``progress`` takes a fraction in [0, 1]; it is cheap and thread-safe, so an engine may call it
    every frame (the worker throttles what reaches the database). ``cancelled`` is set when the
    task is cancelled or lost; an engine checks it between units of work and then raises
    ``GenerationCancelled``.
    """

    progress: Callable[[float], None]
    cancelled: threading.Event = field(default_factory=threading.Event)

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise GenerationCancelled


class Engine(Protocol):
    """Makes one video file at ``output`` (an .mp4 path) or raises ``EngineFailure``."""

    name: str

    async def generate(
        self, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None: ...


BlockingGeneration = Callable[[GenerationRequest, Path, GenerationContext, threading.Event], None]


async def run_in_thread(
    generate: BlockingGeneration,
    request: GenerationRequest,
    output: Path,
    context: GenerationContext,
) -> None:
    """Run a blocking engine off the event loop. A thread cannot be killed: when the awaiting
    task is cancelled, tell it to stop (the last argument) and wait, so it removes its partial
    file and frees the CPU before the cancellation goes on."""
    stop = threading.Event()
    work = asyncio.ensure_future(asyncio.to_thread(generate, request, output, context, stop))
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.wait({work})
        if not work.cancelled():
            work.exception()
        raise


class RisingProgress:
    """Forwards an engine's progress to ``report`` only when it rises (clamped to 0..1): a poll
    that reports the same share, or a lower one, changes nothing."""

    def __init__(self, report: Callable[[float], None]) -> None:
        self._report = report
        self.value = 0.0

    def __call__(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if fraction > self.value:
            self.value = fraction
            self._report(fraction)


def prompt_seed(prompt: str) -> int:
    """A stable seed from the prompt: the same prompt always gives the same video."""
    # surrogatepass: a lone surrogate (which the API refuses) must not crash a render either.
    return int.from_bytes(
        hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest()[:8], "big"
    )


def load_image(path: Path) -> Image.Image:
    """Open an input image upright, as RGB, with any transparency laid on black."""
    try:
        with Image.open(path, formats=["JPEG", "PNG", "WEBP"]) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                base = Image.new("RGBA", image.size, (0, 0, 0, 255))
                base.alpha_composite(image.convert("RGBA"))
                image = base
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise EngineFailure(
            "image_processing_error", "an input image could not be read", detail=str(exc)
        ) from exc
