"""The benchmark-only ``instant`` engine: it answers every job at once with a copy of one
ready-made MP4, and ``processes.py vidgate ARGS`` runs the ``vidgate`` command with it as its
only engine (it is never offered to users)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def one_engine_registry(engine: str, options: str, *, typical_seconds: float) -> str:
    """A model registry that serves the public model on ``engine`` alone (its TOML
    ``options`` lines under ``[engines.<engine>]``), with the packaged model's limits."""
    return f"""
[engines.{engine}]
{options}

[models."veo3.1-fast"]
engines = ["{engine}"]
price = "25.70"
max_prompt_chars = 1000
aspect_ratios = ["16:9", "9:16"]
max_images = 2
qualities = ["720p"]
video_duration = 8
typical_seconds = {typical_seconds:g}
max_run_seconds = 900
max_attempts = 3
"""


# The public model on the instant engine alone.
INSTANT_MODELS = one_engine_registry(
    "instant",
    'type = "instant"   # bench only: answers a ready-made file at once',
    typical_seconds=1,
)


class InstantEngine:
    """Answers every job at once with a copy of one ready-made MP4: the dispatch path alone."""

    name = "instant"

    def __init__(self, ready: Path) -> None:
        self.ready = ready

    async def generate(self, request: Any, output: Path, context: Any) -> None:
        shutil.copyfile(self.ready, output)


def ready_made_video(path: Path) -> Path:
    """A tiny valid MP4 (16x16, 2 frames), made once."""
    if not path.exists():
        import av
        import numpy as np

        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
            for _ in range(2):
                frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), "rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def run_vidgate(argv: list[str]) -> None:
    """Run the ``vidgate`` command with the instant engine as its only engine.

    The engine factory is replaced, in this process only, by one that answers the instant
    engine for every configured engine: wherever the command builds its engines (``serve``,
    local or remote workers, management commands), it gets this one. Nothing in vidgate
    changes, and the factory still refuses ``type = "instant"`` everywhere else.
    """
    import vidgate.cli as cli
    from vidgate.engines import factory

    data_dir = Path(os.environ.get("VIDGATE_DATA_DIR", "./data"))
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = InstantEngine(ready_made_video(data_dir / "instant.mp4"))
    real = factory.build_engines

    def instant_engines(configs: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        return dict.fromkeys(configs, engine)

    # The factory itself, for modules imported later, and every module that already holds it.
    factory.build_engines = instant_engines
    for module in list(sys.modules.values()):
        if getattr(module, "build_engines", None) is real:
            module.build_engines = instant_engines  # type: ignore[attr-defined]
    sys.argv = ["vidgate", *argv]
    cli.main()
