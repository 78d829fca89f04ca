"""The preview engine for real: H.264 files on disk, decoded back, progress and cancellation."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vidgate.engines.base import (
    AspectRatio,
    EngineFailure,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
    load_image,
)
from vidgate.engines.preview import PreviewEngine
from vidgate.media.frames import fit_image
from vidgate.media.probe import decode_frames, probe, top_level_boxes

# Mean absolute RGB difference between a decoded frame and the picture it should show. Measured
# with these test images: 0.8-1.5 for the first and last frames (libx264 crf 23 on gradients and
# shapes, plus 4:2:0 chroma); the other picture gives about 70, the one image after its zoom 16.
# 4 leaves room for other builds of FFmpeg without letting a wrong or misplaced frame through.
CLOSE = 4.0


def structured_image(width: int, height: int, seed: int) -> Image.Image:
    """Gradients and shapes in seeded colours: never a flat picture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    ramp = (x / width)[..., None] * rng.uniform(-80, 80, 3) + (y / height)[..., None] * 50
    image = Image.fromarray(np.clip(base + ramp, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(7):
        x0, y0 = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
        size = rng.uniform(0.1, 0.3) * min(width, height)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + size, y0 + size), fill=colour)
    return image


class Recorder:
    """A GenerationContext whose progress calls are kept, and which can cancel itself."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.values: list[float] = []
        self.cancel_after = cancel_after
        self.context = GenerationContext(progress=self.progress)
        self.started = threading.Event()

    def progress(self, fraction: float) -> None:
        self.values.append(fraction)
        self.started.set()
        if self.cancel_after is not None and len(self.values) >= self.cancel_after:
            self.context.cancelled.set()


def mean_difference(frame: np.ndarray, picture: Image.Image) -> float:
    return float(np.abs(frame.astype(int) - np.asarray(picture).astype(int)).mean())


def check_video(path: Path, width: int, height: int) -> None:
    info = probe(path)
    assert (info.codec, info.pix_fmt, info.frame_count) == ("h264", "yuv420p", 192)
    assert (info.width, info.height) == (width, height)
    assert info.duration_seconds == pytest.approx(8.0, abs=0.01)
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # faststart: playable while loading


def check_progress(values: list[float]) -> None:
    assert len(values) >= 100
    assert values == sorted(values)
    assert values[-1] == 1.0


def only_file(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def generate(
    tmp_path: Path,
    aspect_ratio: AspectRatio,
    images: list[Path],
    recorder: Recorder,
    prompt: str = "A paper boat drifting down a rainy street, neon reflections",
) -> Path:
    output = tmp_path / "out" / "video.mp4"
    request = GenerationRequest("task-1", prompt, aspect_ratio, images=images)
    await PreviewEngine().generate(request, output, recorder.context)
    return output


async def test_text_only_makes_an_eight_second_720p_h264_file(tmp_path: Path) -> None:
    recorder = Recorder()
    output = await generate(tmp_path, "16:9", [], recorder)
    check_video(output, 1280, 720)
    check_progress(recorder.values)
    assert only_file(output.parent) == ["video.mp4"]


async def test_one_image_is_the_first_frame_then_the_camera_moves(tmp_path: Path) -> None:
    picture = structured_image(1600, 1200, seed=1)
    source = tmp_path / "picture.png"
    picture.save(source)
    recorder = Recorder()
    output = await generate(tmp_path, "9:16", [source], recorder)
    check_video(output, 720, 1280)
    check_progress(recorder.values)
    frames = decode_frames(output, [0, 191])
    fitted = fit_image(picture, 720, 1280)
    assert mean_difference(frames[0], fitted) < CLOSE
    assert mean_difference(frames[191], fitted) > 2 * CLOSE, "the last frame should have moved"


async def test_two_images_are_the_first_and_the_last_frames(tmp_path: Path) -> None:
    first, last = structured_image(1200, 1600, seed=2), structured_image(1600, 1000, seed=3)
    first_path, last_path = tmp_path / "first.png", tmp_path / "last.webp"
    first.save(first_path)
    last.save(last_path, lossless=True)
    output = await generate(tmp_path, "16:9", [first_path, last_path], Recorder())
    check_video(output, 1280, 720)
    frames = decode_frames(output, [0, 96, 191])
    first_fit, last_fit = fit_image(first, 1280, 720), fit_image(last, 1280, 720)
    assert mean_difference(frames[0], first_fit) < CLOSE
    assert mean_difference(frames[191], last_fit) < CLOSE
    assert mean_difference(frames[191], first_fit) > 5 * CLOSE
    assert mean_difference(frames[96], first_fit) > 2 * CLOSE
    assert mean_difference(frames[96], last_fit) > 2 * CLOSE


async def test_cancelling_stops_and_leaves_no_file(tmp_path: Path) -> None:
    recorder = Recorder(cancel_after=5)
    with pytest.raises(GenerationCancelled):
        await generate(tmp_path, "9:16", [], recorder)
    assert len(recorder.values) == 5
    assert only_file(tmp_path / "out") == []


async def test_a_cancelled_task_stops_the_render_thread_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    task = asyncio.create_task(generate(tmp_path, "16:9", [], recorder))
    assert await asyncio.to_thread(recorder.started.wait, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert only_file(tmp_path / "out") == []
    assert recorder.values[-1] < 1.0


async def test_an_unreadable_image_is_an_image_processing_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(EngineFailure) as failure:
        await generate(tmp_path, "16:9", [broken], Recorder())
    assert failure.value.code == "image_processing_error"
    assert not (tmp_path / "out" / "video.mp4").exists()


def test_images_are_turned_upright_and_flattened(tmp_path: Path) -> None:
    upright = structured_image(300, 200, seed=4)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; viewers rotate 90° clockwise
    rotated = tmp_path / "rotated.jpg"
    upright.save(rotated, exif=exif)
    assert load_image(rotated).size == (200, 300)

    transparent = tmp_path / "transparent.png"
    Image.new("RGBA", (40, 30), (255, 255, 255, 0)).save(transparent)
    flattened = load_image(transparent)
    assert flattened.mode == "RGB"
    assert flattened.getpixel((0, 0)) == (0, 0, 0)
