"""The preview engine: a real 8 s H.264 video rendered on the CPU from the prompt and images."""

from __future__ import annotations

import asyncio
import colorsys
import logging
import math
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol, get_args

import numpy as np
from PIL import Image

from vidgate.engines.base import (
    EngineFailure,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
    load_image,
    prompt_seed,
    run_in_thread,
)
from vidgate.engines.config import ConfigError
from vidgate.engines.fonts import FontChain
from vidgate.engines.preview_process import RenderProcesses
from vidgate.engines.prompt_overlay import PromptOverlay, Wide
from vidgate.media.frames import Yuv420, fit_image, frame_size, rgb_to_yuv420, yuv420_planes
from vidgate.media.video import FRAME_COUNT, VideoWriter
from vidgate.media.zoom import ZoomableFrame

logger = logging.getLogger(__name__)


class Scene(Protocol):
    """Makes the frames of one video; each call returns a new packed I420 array."""

    def frame(self, index: int) -> Yuv420: ...


def _ease(t: float) -> float:
    """Sine ease-in-out on [0, 1]: motion starts and stops without a jolt."""
    return 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, t)))


def _even(value: float) -> int:
    return 2 * round(value / 2)


class TitleScene:
    """A drifting colour field seeded by the prompt, with the prompt written over it."""

    def __init__(
        self,
        prompt: str,
        width: int,
        height: int,
        *,
        frame_count: int = FRAME_COUNT,
        fonts: FontChain | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.width = width
        self.height = height
        self.frame_count = frame_count
        rng = np.random.default_rng(prompt_seed(prompt))
        # The backdrop is a canvas larger than the frame; each frame is a crop of it, which moves
        # the picture for the price of a memory copy. Offsets stay even so chroma lines up.
        self._margin = (_even(width * 0.15), _even(height * 0.15))
        canvas = _colour_field(rng, width + 2 * self._margin[0], height + 2 * self._margin[1])
        self._canvas = yuv420_planes(rgb_to_yuv420(canvas))
        self._cycles = rng.uniform(0.35, 0.8, size=2)
        self._phase = rng.uniform(0, 2 * math.pi, size=2)
        self._overlay = PromptOverlay(prompt, width, height, fonts=fonts, cancelled=cancelled)

    def _offset(self, index: int) -> tuple[int, int]:
        t = index / max(1, self.frame_count - 1)
        x, y = (
            margin * (1 + 0.95 * math.sin(2 * math.pi * cycles * t + phase))
            for margin, cycles, phase in zip(self._margin, self._cycles, self._phase, strict=True)
        )
        return _even(x), _even(y)

    def frame(self, index: int) -> Yuv420:
        out = np.empty((self.height * 3 // 2, self.width), np.uint8)
        x, y = self._offset(index)
        for plane, source, scale in zip(yuv420_planes(out), self._canvas, (1, 2, 2), strict=True):
            rows, cols = plane.shape
            plane[:] = source[y // scale : y // scale + rows, x // scale : x // scale + cols]
        self._overlay.apply(out)
        return out


def _colour_field(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Soft blobs of a seeded palette, blended like a mesh gradient, drawn small then enlarged."""
    small_w, small_h = max(4, width // 16), max(4, height // 16)
    y, x = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    x, y = x / small_w, y / small_h * (small_h / small_w)
    hue = rng.uniform()
    palette = [
        colorsys.hsv_to_rgb((hue + shift) % 1.0, rng.uniform(0.45, 0.8), rng.uniform(0.45, 0.85))
        for shift in (0.0, *rng.uniform(0.08, 0.45, size=3))
    ]
    total = np.full(x.shape, 0.05, np.float32)
    colour = total[..., None] * (np.array(palette[0], np.float32) * 0.4)
    for _ in range(7):
        cx, cy = rng.uniform(0, 1), rng.uniform(0, small_h / small_w)
        weight = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / rng.uniform(0.01, 0.06))
        total += weight
        colour += weight[..., None] * np.array(palette[rng.integers(len(palette))], np.float32)
    pixels = np.clip(colour / total[..., None] * 255, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").resize((width, height), Image.Resampling.BICUBIC)


def _centred_box(
    width: int, height: int, zoom: float, shift_x: float, shift_y: float
) -> tuple[float, float, float, float]:
    """The box that shows 1/zoom of the frame, its centre shifted from the frame's centre."""
    centre_x, centre_y = width / 2 + shift_x, height / 2 + shift_y
    half_w, half_h = width / zoom / 2, height / zoom / 2
    return (centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h)


class KenBurnsScene:
    """One image: the fitted image first, then a slow zoom that pans in a seeded direction."""

    def __init__(
        self,
        image: Image.Image,
        width: int,
        height: int,
        *,
        seed: int,
        frame_count: int = FRAME_COUNT,
        zoom: float = 1.12,
    ) -> None:
        self.width = width
        self.height = height
        self.frame_count = frame_count
        self.zoom = zoom
        self._first = rgb_to_yuv420(fit_image(image, width, height))
        self._source = ZoomableFrame(self._first)
        angle = np.random.default_rng(seed).uniform(0, 2 * math.pi)
        self._direction = (math.cos(angle), math.sin(angle))

    def frame(self, index: int) -> Yuv420:
        if index == 0:
            return self._first.copy()
        # Ease out only: starting at full speed skips the zooms barely above 1, which swscale
        # cannot hit exactly and ZoomableFrame would hand to the slow exact path.
        progress = 1 - (1 - index / max(1, self.frame_count - 1)) ** 2
        zoom = 1 + (self.zoom - 1) * progress
        # How far the centre may move with the crop still inside the frame, and where it is on a
        # path that starts slightly opposite to the direction of travel.
        slack_x, slack_y = self.width * (1 - 1 / zoom) / 2, self.height * (1 - 1 / zoom) / 2
        travel = -0.3 + 1.3 * progress
        shift = (slack_x * travel * self._direction[0], slack_y * travel * self._direction[1])
        return self._source.render(_centred_box(self.width, self.height, zoom, *shift))


class CrossfadeScene:
    """Two images: a push in on the first, an eased dissolve, a pull back out from the last.

    The zoom is 1 at both ends, so the first and last frames are exactly the fitted images; it
    holds still during the dissolve, so that only mixes two frames rendered once.
    """

    def __init__(
        self,
        first: Image.Image,
        last: Image.Image,
        width: int,
        height: int,
        *,
        frame_count: int = FRAME_COUNT,
        zoom: float = 1.08,
        push: float = 0.3,
    ) -> None:
        self.width = width
        self.height = height
        self.frame_count = frame_count
        self.zoom = zoom
        self.push = push
        self._first = rgb_to_yuv420(fit_image(first, width, height))
        self._last = rgb_to_yuv420(fit_image(last, width, height))
        self._sources = (ZoomableFrame(self._first), ZoomableFrame(self._last))
        held = _centred_box(width, height, zoom, 0, 0)
        self._held = (self._sources[0].render(held), self._sources[1].render(held))
        shape = self._first.shape
        self._scratch = (np.empty(shape, np.uint16), np.empty(shape, np.uint16))

    def frame(self, index: int) -> Yuv420:
        if index <= 0:
            return self._first.copy()
        if index >= self.frame_count - 1:
            return self._last.copy()
        t = index / (self.frame_count - 1)
        if t < self.push or t > 1 - self.push:
            # Ease out of zoom 1 and back into it: leaving 1 briskly skips the zooms barely above
            # it, which ZoomableFrame renders more slowly.
            source, distance = (0, t) if t < self.push else (1, 1 - t)
            zoom = 1 + (self.zoom - 1) * (1 - (1 - distance / self.push) ** 2)
            box = _centred_box(self.width, self.height, zoom, 0, 0)
            return self._sources[source].render(box)
        weight = _ease((t - self.push) / (1 - 2 * self.push))
        return _mix(*self._held, weight, *self._scratch)


def _mix(first: Yuv420, last: Yuv420, weight: float, scratch: Wide, other: Wide) -> Yuv420:
    """first * (1 - weight) + last * weight, in 1/256 steps."""
    level = round(min(1.0, max(0.0, weight)) * 256)
    # Integer maths into preallocated memory: fresh temporaries would cost more than the maths.
    np.multiply(first, 256 - level, out=scratch, dtype=np.uint16)
    np.multiply(last, level, out=other, dtype=np.uint16)
    np.add(scratch, other, out=scratch)
    np.add(scratch, 128, out=scratch)
    np.right_shift(scratch, 8, out=scratch)
    return scratch.astype(np.uint8)


def build_scene(
    request: GenerationRequest,
    width: int,
    height: int,
    cancelled: Callable[[], bool] | None = None,
) -> Scene:
    if len(request.images) > 2:
        raise EngineFailure("invalid_parameters", "the preview engine takes at most two images")
    images = [load_image(path) for path in request.images]
    if len(images) == 2:
        return CrossfadeScene(images[0], images[1], width, height)
    if images:
        return KenBurnsScene(images[0], width, height, seed=prompt_seed(request.prompt))
    return TitleScene(request.prompt, width, height, cancelled=cancelled)


class StopFlag(Protocol):
    """A ``threading.Event`` or, in the render process, a ``multiprocessing`` one."""

    def is_set(self) -> bool: ...


def render_preview(
    request: GenerationRequest,
    output: Path,
    context: GenerationContext,
    stop: StopFlag | None = None,
) -> None:
    """The blocking work: lay out, render every frame and encode it, checking for cancellation
    during the layout and between frames. The engine runs it in a child process; the bench and
    the tests may call it here."""

    def cancelled() -> bool:
        return context.cancelled.is_set() or (stop is not None and stop.is_set())

    started = time.perf_counter()
    width, height = frame_size(request.aspect_ratio)
    try:
        scene = build_scene(request, width, height, cancelled)
    except GenerationCancelled:
        logger.info("task %s: preview cancelled while laying out", request.task_id)
        raise
    output.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(output, width, height) as writer:
        for index in range(FRAME_COUNT):
            if cancelled():
                logger.info("task %s: preview cancelled at frame %d", request.task_id, index)
                raise GenerationCancelled
            writer.write_yuv420(scene.frame(index))
            # The last few percent are the encoder's flush and the rename.
            context.progress(0.97 * (index + 1) / FRAME_COUNT)
    context.progress(1.0)
    elapsed = time.perf_counter() - started
    logger.info("task %s: preview rendered in %.2f s", request.task_id, elapsed)


RenderIn = Literal["process", "thread"]


class PreviewEngine:
    """Needs no GPU and no network: what a deployment serves before a real model is wired in.

    ``render_in="process"`` (the default) renders in child processes kept loaded between tasks
    (``preview_process``), so a render never holds the server's GIL; ``"thread"`` renders in a
    thread of this process, as before (the render-load benchmark's baseline).
    """

    name = "preview"

    def __init__(self, *, render_in: str = "process") -> None:
        if render_in not in get_args(RenderIn):
            raise ConfigError(f"preview: `render_in` must be one of {get_args(RenderIn)}")
        self.render_in = render_in
        self._processes = RenderProcesses() if render_in == "process" else None
        if self._processes is not None:
            # An engine dropped without aclose (a test, a one-off worker) takes its render
            # processes with it, rather than leaving them loaded until the interpreter exits.
            weakref.finalize(self, self._processes.close)

    @property
    def child_pids(self) -> list[int]:
        """The render processes' ids (none before the first task, or in thread mode)."""
        return self._processes.pids if self._processes is not None else []

    async def generate(
        self, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None:
        if self._processes is None:
            await run_in_thread(render_preview, request, output, context)
        else:
            await run_in_thread(self._processes.render, request, output, context)

    async def aclose(self) -> None:
        """Stop the render processes (at shutdown)."""
        if self._processes is not None:
            await asyncio.to_thread(self._processes.close)
