"""The diffusers engine end to end on tiny random-weight LTX and Wan pipelines, on the CPU."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "torch", reason="the diffusers engine tests need torch (pip install torch==2.13.0)"
)
pytest.importorskip("diffusers", reason="the diffusers engine tests need vidgate[diffusers]")

import numpy as np
from PIL import Image

from tiny_video_models import build_tiny_ltx, build_tiny_wan
from vidgate.engines.base import (
    AspectRatio,
    EngineFailure,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
)
from vidgate.engines.diffusers_engine import DENOISE_SHARE, DiffusersEngine
from vidgate.media.frames import frame_size
from vidgate.media.probe import probe
from vidgate.media.video import FRAME_COUNT

pytestmark = pytest.mark.slow

_RUNS = itertools.count()
TINY = {"width": 32, "height": 32, "num_frames": 9, "device": "cpu"}


class Recorder:
    """A GenerationContext that keeps its progress calls and may act on the n-th one."""

    def __init__(self, on: int | None = None, action: Callable[[Recorder], None] = lambda r: None):
        self.values: list[float] = []
        self.context = GenerationContext(progress=self.progress)
        self._on, self._action = on, action

    def progress(self, fraction: float) -> None:
        self.values.append(fraction)
        if len(self.values) == self._on:
            self._action(self)


def cancel(recorder: Recorder) -> None:
    recorder.context.cancelled.set()


def write_images(directory: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        rng = np.random.default_rng(index)
        pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        path = directory / f"image{index}.png"
        Image.fromarray(pixels, "RGB").save(path)
        paths.append(path)
    return paths


async def make(
    engine: DiffusersEngine,
    directory: Path,
    recorder: Recorder,
    *,
    images: int = 0,
    aspect_ratio: AspectRatio = "16:9",
) -> Path:
    request = GenerationRequest(
        task_id="task-unified-test",
        prompt="w1 w2 w3",
        aspect_ratio=aspect_ratio,
        images=write_images(directory, images),
    )
    output = directory / f"out{next(_RUNS)}" / "result.mp4"
    await engine.generate(request, output, recorder.context)
    return output


async def loaded(engine: DiffusersEngine, tmp_path: Path) -> None:
    """Make sure the child is up, so that what the test does lands in a generation."""
    if engine.child_pid is None:
        await make(engine, tmp_path, Recorder())


def videos(directory: Path) -> list[Path]:
    return list(directory.glob("out*/result.mp4"))


def assert_spec_video(path: Path, aspect_ratio: AspectRatio) -> None:
    info = probe(path)
    assert (info.codec, info.frame_count) == ("h264", FRAME_COUNT)
    assert (info.width, info.height) == frame_size(aspect_ratio)


def engine_for(model: Path, **options: Any) -> Iterator[DiffusersEngine]:
    engine = DiffusersEngine({"model_path": str(model), **TINY, **options})
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="module")
def ltx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_ltx(tmp_path_factory.mktemp("ltx"))


@pytest.fixture(scope="module")
def ltx(ltx_model: Path) -> Iterator[DiffusersEngine]:
    yield from engine_for(ltx_model, pipeline="ltx", num_inference_steps=2)


@pytest.fixture(scope="module")
def ltx_long(ltx_model: Path) -> Iterator[DiffusersEngine]:
    """Enough steps that a cancel or a kill lands mid-run."""
    yield from engine_for(ltx_model, pipeline="ltx", num_inference_steps=20)


@pytest.mark.parametrize(
    ("images", "aspect_ratio"),
    [(0, "16:9"), (1, "9:16"), (2, "16:9")],
    ids=["text", "first", "first-last"],
)
async def test_ltx_makes_a_spec_video(
    ltx: DiffusersEngine, tmp_path: Path, images: int, aspect_ratio: AspectRatio
) -> None:
    recorder = Recorder()
    output = await make(ltx, tmp_path, recorder, images=images, aspect_ratio=aspect_ratio)
    assert_spec_video(output, aspect_ratio)
    # One report per denoising step, then the decode and the encode, never going down.
    assert recorder.values[:2] == [DENOISE_SHARE / 2, DENOISE_SHARE]
    assert recorder.values == sorted(recorder.values)
    assert recorder.values[-1] == 1.0
    assert not list(output.parent.glob(".*"))  # no frames file left behind


async def test_the_child_stays_loaded_between_tasks(ltx: DiffusersEngine, tmp_path: Path) -> None:
    await make(ltx, tmp_path, Recorder())
    pid = ltx.child_pid
    await make(ltx, tmp_path, Recorder())
    assert ltx.child_pid == pid is not None


async def test_cancel_stops_the_run_and_keeps_the_child(
    ltx_long: DiffusersEngine, tmp_path: Path
) -> None:
    await loaded(ltx_long, tmp_path)
    before = len(videos(tmp_path))
    pid = ltx_long.child_pid
    recorder = Recorder(on=2, action=cancel)
    with pytest.raises(GenerationCancelled):
        await make(ltx_long, tmp_path, recorder)
    assert len(recorder.values) < 20  # stopped well before the last step
    assert len(videos(tmp_path)) == before
    output = await make(ltx_long, tmp_path, Recorder())
    assert_spec_video(output, "16:9")
    assert ltx_long.child_pid == pid


async def test_cancelling_the_coroutine_stops_the_child_run(
    ltx_long: DiffusersEngine, tmp_path: Path
) -> None:
    await loaded(ltx_long, tmp_path)
    pid = ltx_long.child_pid
    started = threading.Event()
    recorder = Recorder(on=1, action=lambda r: started.set())
    task = asyncio.create_task(make(ltx_long, tmp_path, recorder))
    await asyncio.to_thread(started.wait, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(recorder.values) < 20
    await make(ltx_long, tmp_path, Recorder())
    assert ltx_long.child_pid == pid


async def test_a_killed_child_fails_the_task_and_the_next_task_gets_a_new_one(
    ltx_long: DiffusersEngine, tmp_path: Path
) -> None:
    await loaded(ltx_long, tmp_path)
    pid = ltx_long.child_pid
    assert pid is not None

    def kill(recorder: Recorder) -> None:
        os.kill(pid, signal.SIGKILL)  # what the kernel's out-of-memory killer does

    with pytest.raises(EngineFailure) as failure:
        await make(ltx_long, tmp_path, Recorder(on=1, action=kill))
    assert failure.value.code == "resource_exhausted"
    output = await make(ltx_long, tmp_path, Recorder())
    assert_spec_video(output, "16:9")
    assert ltx_long.child_pid not in (None, pid)


async def test_a_crashing_child_fails_with_service_error(
    ltx_long: DiffusersEngine, tmp_path: Path
) -> None:
    await loaded(ltx_long, tmp_path)
    pid = ltx_long.child_pid
    assert pid is not None

    def crash(recorder: Recorder) -> None:
        os.kill(pid, signal.SIGSEGV)

    with pytest.raises(EngineFailure) as failure:
        await make(ltx_long, tmp_path, Recorder(on=1, action=crash))
    assert failure.value.code == "service_error"
    await make(ltx_long, tmp_path, Recorder())
    assert ltx_long.child_pid not in (None, pid)


async def test_a_model_that_cannot_load_fails_with_service_error(tmp_path: Path) -> None:
    garbage = tmp_path / "model"
    garbage.mkdir()
    (garbage / "model_index.json").write_text("{ not json")
    for engine in engine_for(garbage, pipeline="ltx"):
        with pytest.raises(EngineFailure) as failure:
            await make(engine, tmp_path, Recorder())
        assert failure.value.code == "service_error"
        assert engine.child_pid is None
        await engine.aclose()


async def test_too_many_images_are_invalid_parameters(ltx: DiffusersEngine, tmp_path: Path) -> None:
    with pytest.raises(EngineFailure) as failure:
        await make(ltx, tmp_path, Recorder(), images=3)
    assert failure.value.code == "invalid_parameters"


@pytest.fixture(scope="module")
def wan_text(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiffusersEngine]:
    model = build_tiny_wan(tmp_path_factory.mktemp("wan"), image_to_video=False)
    yield from engine_for(model, pipeline="wan", num_inference_steps=2)


@pytest.fixture(scope="module")
def wan_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiffusersEngine]:
    model = build_tiny_wan(tmp_path_factory.mktemp("wan-i2v"), image_to_video=True)
    yield from engine_for(model, pipeline="wan", num_inference_steps=2)


async def test_wan_text_to_video(wan_text: DiffusersEngine, tmp_path: Path) -> None:
    recorder = Recorder()
    assert_spec_video(await make(wan_text, tmp_path, recorder, aspect_ratio="9:16"), "9:16")
    assert recorder.values[:2] == [DENOISE_SHARE / 2, DENOISE_SHARE]


async def test_wan_first_and_last_frame(wan_images: DiffusersEngine, tmp_path: Path) -> None:
    assert_spec_video(await make(wan_images, tmp_path, Recorder(), images=2), "16:9")


async def test_wan_text_model_refuses_images(wan_text: DiffusersEngine, tmp_path: Path) -> None:
    with pytest.raises(EngineFailure) as failure:
        await make(wan_text, tmp_path, Recorder(), images=1)
    assert failure.value.code == "invalid_parameters"
