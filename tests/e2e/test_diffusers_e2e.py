"""An open-weight model (a tiny random-weight LTX-Video) served through the real server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from support import ServerProcess
from tiny_video_models import build_tiny_ltx
from vidgate.media.probe import probe

pytest.importorskip("torch", reason="the diffusers engine needs vidgate[diffusers] (make install)")
pytestmark = pytest.mark.slow

MODELS = """
[engines.ltx]
type = "diffusers"
pipeline = "ltx"
model_path = "{path}"
width = 32
height = 32
num_frames = 9
num_inference_steps = 2
device = "cpu"

[models."ltx-video"]
engines = ["ltx"]
price = "5.00"
"""


def test_a_tiny_ltx_model_makes_a_spec_video_through_the_server(tmp_path: Path) -> None:
    weights = build_tiny_ltx(tmp_path / "ltx")
    models = tmp_path / "models.toml"
    models.write_text(MODELS.replace("{path}", str(weights)))
    server = ServerProcess(
        tmp_path / "data", {"VIDGATE_MODELS": str(models), "HF_HUB_OFFLINE": "1"}
    )
    server.start()
    try:
        with server.client() as client:
            [model] = client.get("/v1/models").json()["data"]
            assert (model["id"], model["engine"]) == ("ltx-video", "ltx")
            task = client.post(
                "/v1/videos/generations",
                json={"model": "ltx-video", "prompt": "a tiny test", "aspect_ratio": "9:16"},
            ).json()
            deadline = time.monotonic() + 180
            while (done := client.get(f"/v1/tasks/{task['id']}").json())["status"] not in (
                "completed",
                "failed",
            ):
                assert time.monotonic() < deadline, done
                time.sleep(0.2)
        assert done["status"] == "completed", done
        video = tmp_path / "ltx.mp4"
        video.write_bytes(httpx.get(done["results"][0], timeout=30).content)
        info = probe(video)
        assert (info.codec, info.width, info.height, info.frame_count) == ("h264", 720, 1280, 192)
    finally:
        server.stop()
