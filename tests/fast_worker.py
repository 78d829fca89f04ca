"""A remote worker with a fast engine for scale tests: `python tests/fast_worker.py --server URL`.

It runs the real remote-worker loop (``vidgate.queue.remote``) and serves every model of the
default registry with ``FastEngine``, which stands in for a GPU: it takes a short while, checks
for cancels, and writes a small real MP4, so hundreds of tasks fit in a test on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import tempfile
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidgate.engines.base import GenerationCancelled, GenerationContext, GenerationRequest
from vidgate.engines.config import load_model_config
from vidgate.engines.registry import ModelRegistry
from vidgate.queue.remote_host import RemoteSetup, run_remote_workers
from vidgate.settings import Settings


def small_mp4(path: Path, frames: int = 12) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.time_base = Fraction(1, 24)
        for index in range(frames):
            pixels = np.full((64, 64, 3), index * 20 % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class FastEngine:
    name = "fast"

    def __init__(self, video: Path, seconds: float) -> None:
        self.video = video
        self.seconds = seconds

    async def generate(
        self, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None:
        started = time.monotonic()
        while (done := (time.monotonic() - started) / self.seconds) < 1:
            if context.cancelled.is_set():
                raise GenerationCancelled
            context.progress(done)
            await asyncio.sleep(0.05)
        await asyncio.to_thread(shutil.copyfile, self.video, output)


async def main(server: str, count: int, seconds: float) -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    assert settings.worker_token, "VIDGATE_WORKER_TOKEN is not set"
    packaged = load_model_config(None).registry
    registry = ModelRegistry.of(
        replace(spec, engine="fast", engines=("fast",)) for spec in packaged
    )
    with tempfile.TemporaryDirectory() as workdir:
        engine = FastEngine(small_mp4(Path(workdir) / "fast.mp4"), seconds)
        setup = RemoteSetup(registry, {"fast": engine}, sorted(registry.models))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_remote_workers(
            settings,
            server=server,
            token=settings.worker_token,
            setup=setup,
            count=count,
            stop=stop,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.3)
    args = parser.parse_args()
    asyncio.run(main(args.server, args.count, args.seconds))
