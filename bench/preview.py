"""Benchmark: the preview engine (render + encode) against encoding the same frames alone; with
``--prompts``, the render of the worst legal prompts against a short one."""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from figures import machine, markdown_table
from vidgate.engines.base import AspectRatio, GenerationContext, GenerationRequest
from vidgate.engines.fonts import default_chain
from vidgate.engines.preview import build_scene, render_preview
from vidgate.engines.text_layout import lay_out
from vidgate.media.frames import Yuv420, frame_size
from vidgate.media.probe import probe
from vidgate.media.video import FRAME_COUNT, VideoWriter

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
    """The engine's whole render, in this process: the work its render process does per task
    (the process itself, started once, and the pipe are left out)."""
    render_preview(request, output, GenerationContext(progress=lambda fraction: None))


SHORT_PROMPT = "A cat playing piano"  # the README's example: the base of the ratios
# Any 1000 code points are a legal prompt: the ones that made the old layout quadratic (a word
# with no spaces, in letters, emoji or CJK), marks stacked on letters, and right-to-left text.
WORST_PROMPTS = {
    "1000 x a (no spaces)": "a" * 1000,
    "1000 emoji": "".join(chr(0x1F600 + i % 80) for i in range(1000)),
    "1000 CJK": "".join(chr(0x4E00 + i * 7) for i in range(1000)),
    "combining marks (250 x e + 3)": ("e" + "\u0301\u0308\u0323") * 250,
    "one letter + 999 marks": "a" + "\u0301" * 999,
    "Arabic, no spaces (RTL)": ("مرحبابالعالم" * 84)[:1000],
    "Hebrew words and digits (RTL)": ("שלום עולם 123 " * 72)[:1000],
    "four scripts in turn": "a日ب😀" * 250,
}


def measure_prompts(workdir: Path, repeats: int) -> list[tuple[str, int, int, int, int, float]]:
    """Median render + encode seconds per prompt, the prompts interleaved in each repeat."""
    prompts = {"short prompt": SHORT_PROMPT, "the bench's prompt": PROMPT, **WORST_PROMPTS}
    requests = {name: GenerationRequest("bench", text, "16:9") for name, text in prompts.items()}
    output = workdir / "prompt.mp4"
    for request in requests.values():  # warm-up: imports, the font chain, each font's faces
        run_engine(request, output)
    times: dict[str, list[float]] = {name: [] for name in prompts}
    for _ in range(repeats):
        for name, request in requests.items():
            started = time.perf_counter()
            run_engine(request, output)
            times[name].append(time.perf_counter() - started)
    rows = []
    for name, text in prompts.items():
        layout = lay_out(text, default_chain(), 1280 * 0.8, 720 * 0.6, 720)
        rows.append(
            (name, len(text), layout.size, len(layout.lines), layout.measurements,
             statistics.median(times[name]))
        )  # fmt: skip
    return rows


def print_prompts(rows: list[tuple[str, int, int, int, int, float]], repeats: int) -> None:
    print("Preview engine: render + encode of one 8 s 1280x720 video per prompt, in-process,")
    print(f"median of {repeats} runs (prompts interleaved)\n")
    print(f"Machine: {machine(f'PyAV {av.__version__}')}  ")
    print(f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC\n")
    short = rows[0][5]
    table = [
        [
            name,
            str(points),
            str(size),
            str(lines),
            str(count),
            f"{seconds:.2f}",
            f"{seconds / short:.2f}",
        ]
        for name, points, size, lines, count, seconds in rows
    ]
    headers = ["Prompt", "Code points", "Font size", "Lines", "Layout measurements"]
    print(markdown_table([*headers, "Render + encode (s)", "Ratio to the short prompt"], table))


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
    parser.add_argument(
        "--prompts", action="store_true", help="the worst prompts against a short one"
    )
    args = parser.parse_args()
    if args.prompts:
        with tempfile.TemporaryDirectory(prefix="vidgate-bench-") as temp:
            print_prompts(measure_prompts(Path(temp), args.repeats), args.repeats)
        return
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
