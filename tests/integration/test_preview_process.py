"""The preview engine's render processes, for real: a child kept between tasks, progress and
cancels across the pipe, and a child killed mid-render failing its task, never the next."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_preview_engine import Recorder, check_progress, check_video

from support import wait_until
from vidgate.engines.base import EngineFailure, GenerationCancelled, GenerationRequest
from vidgate.engines.config import ConfigError, EngineConfig
from vidgate.engines.factory import build_engine
from vidgate.engines.preview import PreviewEngine

PROMPT = "A paper boat drifting down a rainy street, neon reflections"
LONG_CJK = "".join(chr(0x4E00 + i * 7) for i in range(1000))


@pytest.fixture
async def engine() -> AsyncIterator[PreviewEngine]:
    engine = PreviewEngine()
    yield engine
    await engine.aclose()


async def render(
    engine: PreviewEngine, directory: Path, recorder: Recorder, prompt: str = PROMPT
) -> Path:
    output = directory / "out" / "video.mp4"
    await engine.generate(GenerationRequest("task-1", prompt, "16:9"), output, recorder.context)
    return output


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in (directory / "out").iterdir())


async def started(recorder: Recorder) -> None:
    assert await asyncio.to_thread(recorder.started.wait, 60), "the render never reported"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_renders_in_a_child_process_kept_for_the_next_task(
    engine: PreviewEngine, tmp_path: Path
) -> None:
    first = Recorder()
    output = await render(engine, tmp_path, first)
    check_video(output, 1280, 720)
    check_progress(first.values)
    [pid] = engine.child_pids
    assert pid != os.getpid()
    second = Recorder()
    await render(engine, tmp_path / "again", second)
    check_progress(second.values)
    assert engine.child_pids == [pid]
    await engine.aclose()
    assert engine.child_pids == []
    assert gone(pid)


async def test_a_cancel_stops_the_childs_render_within_a_few_frames(
    engine: PreviewEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    recorder = Recorder(cancel_after=40)
    with pytest.raises(GenerationCancelled):
        await render(engine, tmp_path, recorder)
    assert len(recorder.values) == 40  # nothing reported after the cancel
    assert leftovers(tmp_path) == []
    stopped = [re.search(r"cancelled at frame (\d+)", r.getMessage()) for r in caplog.records]
    [frame] = [int(match.group(1)) for match in stopped if match]
    # The child had sent 40 frames when the cancel went up; it stops at its next frame check,
    # which the pipe's latency may put a frame or two later (bounded loosely: a busy machine).
    assert 40 <= frame <= 40 + 24, frame
    await render(engine, tmp_path, Recorder())  # the same child renders the next task
    assert len(engine.child_pids) == 1


async def test_a_cancel_during_the_layout_reaches_the_child(
    engine: PreviewEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    recorder = Recorder()
    task = asyncio.create_task(render(engine, tmp_path, recorder, prompt=LONG_CJK))
    # The child is starting (loading its fonts) when the cancel goes up: its render stops in
    # the layout, before the first frame.
    await asyncio.to_thread(wait_until, lambda: engine.child_pids, "the render process")
    recorder.context.cancelled.set()
    with pytest.raises(GenerationCancelled):
        await task
    assert recorder.values == []
    assert any("cancelled while laying out" in r.getMessage() for r in caplog.records)
    await render(engine, tmp_path, Recorder())


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGKILL, "resource_exhausted"), (signal.SIGUSR1, "service_error")],
)
async def test_a_child_killed_mid_render_fails_the_task_and_the_next_task_works(
    engine: PreviewEngine, tmp_path: Path, signum: int, code: str
) -> None:
    recorder = Recorder()
    task = asyncio.create_task(render(engine, tmp_path, recorder))
    await started(recorder)
    [pid] = engine.child_pids
    os.kill(pid, signum)
    with pytest.raises(EngineFailure) as failure:
        await task
    assert failure.value.code == code
    assert leftovers(tmp_path) == []  # the partial file is removed
    assert gone(pid)
    after = Recorder()
    output = await render(engine, tmp_path, after)
    check_video(output, 1280, 720)
    check_progress(after.values)
    assert engine.child_pids not in ([], [pid])


async def test_a_sigterm_to_a_busy_child_lets_its_render_finish(
    engine: PreviewEngine, tmp_path: Path
) -> None:
    # What a terminal or systemd sends the whole process group: the server's shutdown decides
    # about the task in hand, so the child finishes it and only then leaves.
    recorder = Recorder()
    task = asyncio.create_task(render(engine, tmp_path, recorder))
    await started(recorder)
    [pid] = engine.child_pids
    os.kill(pid, signal.SIGTERM)
    output = await task
    check_video(output, 1280, 720)
    check_progress(recorder.values)
    assert gone(pid)  # and it has left
    await render(engine, tmp_path, Recorder())
    assert engine.child_pids not in ([], [pid])


async def test_render_in_thread_renders_in_this_process_and_other_values_are_refused(
    tmp_path: Path,
) -> None:
    engine = build_engine(EngineConfig("p", "preview", {"render_in": "thread"}))
    assert isinstance(engine, PreviewEngine)
    recorder = Recorder()
    check_video(await render(engine, tmp_path, recorder), 1280, 720)
    check_progress(recorder.values)
    assert engine.child_pids == []
    with pytest.raises(ConfigError, match="render_in"):
        build_engine(EngineConfig("p", "preview", {"render_in": "gpu"}))


async def test_an_engine_dropped_without_aclose_takes_its_render_process_with_it(
    tmp_path: Path,
) -> None:
    engine = PreviewEngine()
    await render(engine, tmp_path, Recorder())
    [pid] = engine.child_pids
    del engine
    gc.collect()
    assert gone(pid)
