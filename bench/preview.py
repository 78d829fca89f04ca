"""Benchmark: the preview engine (render + encode) against encoding the same frames alone."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from figures import machine
from vidgate.engines.base import AspectRatio, GenerationContext, GenerationRequest
from vidgate.engines.preview import PreviewEngine, build_scene
from vidgate.media.video import FRAME_COUNT, VideoWriter, Yuv420, frame_size, probe

PROMPT = (
    "A red fox trots through a snowy birch forest at dawn, breath steaming, soft golden light "
    "through the trees, slow tracking shot, shallow depth of field, cinematic colour grade"
)


def sample_image(seed: int, width: int = 1600, height: int = 1200) -> Image.Image:
    """A photo-like test input: gradients, a little noise and some shapes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    ramp = (x / width)[..., None] * rng.uniform(-90, 90, 3) + (y / height)[..., None] * 60
    noise = rng.normal(0, 6, (height, width, 3))
    pixels = np.clip(base + ramp + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x0, y0 = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
        size = rng.uniform(0.08, 0.3) * height
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + size, y0 + size), fill=colour)
    return image


def timed(action: Callable[[], None]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads: libx264's count) of one call."""
    started, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - started, time.process_time() - cpu


def run_engine(request: GenerationRequest, output: Path) -> None:
    context = GenerationContext(progress=lambda fraction: None)
    asyncio.run(PreviewEngine().generate(request, output, context))


def encode_only(frames: Sequence[Yuv420], output: Path, width: int, height: int) -> None:
    with VideoWriter(output, width, height) as writer:
        for frame in frames:
            writer.write_yuv420(frame)


def measure(
    name: str, request: GenerationRequest, workdir: Path, repeats: int
) -> tuple[str, float, float, float]:
    width, height = frame_size(request.aspect_ratio)
    # The baseline gets exactly the engine's frames, rendered into memory beforehand.
    scene = build_scene(request, width, height)
    frames = [scene.frame(index) for index in range(FRAME_COUNT)]
    engine_out, baseline_out = workdir / f"{name}-engine.mp4", workdir / f"{name}-baseline.mp4"
    engine, baseline = [], []
    run_engine(request, engine_out)  # warm-up: imports, font loading, allocator
    for _ in range(repeats):  # interleaved, so drift in machine load hits both alike
        engine.append(timed(lambda: run_engine(request, engine_out)))
        baseline.append(timed(lambda: encode_only(frames, baseline_out, width, height)))
    assert probe(engine_out).frame_count == FRAME_COUNT
    cpu_ratio = statistics.median(e[1] for e in engine) / statistics.median(b[1] for b in baseline)
    return (
        name,
        statistics.median(e[0] for e in engine),
        statistics.median(b[0] for b in baseline),
        cpu_ratio,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidgate-bench-") as temp:
        workdir = Path(temp)
        first, second = workdir / "first.png", workdir / "second.jpg"
        sample_image(1).save(first)
        sample_image(2).save(second, quality=90)
        aspect: AspectRatio = "16:9"
        modes = [
            ("text", GenerationRequest("bench", PROMPT, aspect)),
            ("one image", GenerationRequest("bench", PROMPT, aspect, images=[first])),
            ("two images", GenerationRequest("bench", PROMPT, aspect, images=[first, second])),
        ]
        rows = [measure(name, request, workdir, args.repeats) for name, request in modes]
    width, height = frame_size(aspect)
    print(f"Preview engine, {FRAME_COUNT} frames of {width}x{height} (8 s at 24 fps), ", end="")
    print(f"libx264 veryfast crf 23, median of {args.repeats} runs\n")
    print(f"Machine: {machine(f'PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})')}  ")
    print(f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC\n")
    print("| Mode | Engine: render + encode (s) | Baseline: encode only (s) | Ratio | CPU ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, engine, baseline, cpu_ratio in rows:
        ratio = engine / baseline
        print(f"| {name} | {engine:.2f} | {baseline:.2f} | {ratio:.2f} | {cpu_ratio:.2f} |")


if __name__ == "__main__":
    main()
