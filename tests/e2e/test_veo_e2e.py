"""veo3.1-fast on the veo engine through the real server, against a fake Gemini API on loopback."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx

from fake_gemini import API_KEY, FakeGemini
from support import ServerProcess, StaticServer, image_bytes, structured_image
from vidgate.media.probe import probe

MODELS = """
[engines.veo]
type = "veo"
api_key = "${GEMINI_API_KEY}"
base_url = "${GEMINI_BASE_URL}"
poll_interval = 0.05
typical_seconds = 1

[models."veo3.1-fast"]
engines = ["veo"]
price = "25.70"
aliases = ["veo3.1-fast-beta"]
"""


def wait_done(client: httpx.Client, task_id: str) -> dict:
    deadline = time.monotonic() + 120
    while (task := client.get(f"/v1/tasks/{task_id}").json())["status"] not in (
        "completed",
        "failed",
    ):
        assert time.monotonic() < deadline, task
        time.sleep(0.1)
    return task


def test_veo_renders_through_the_gemini_protocol(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(MODELS)
    with FakeGemini() as gemini:
        first_png = image_bytes(structured_image(800, 450, seed=5))
        server = ServerProcess(
            tmp_path / "data",
            {
                "VIDGATE_MODELS": str(models),
                "GEMINI_API_KEY": API_KEY,
                "GEMINI_BASE_URL": gemini.base_url,
            },
        )
        with StaticServer() as images:
            server.env["VIDGATE_EGRESS_ALLOW"] = f"127.0.0.1:{images.port}"
            url = images.add("/first.png", first_png, content_type="image/png")
            server.start()
            try:
                with server.client() as client:
                    [model] = client.get("/v1/models").json()["data"]
                    assert model["engine"] == "veo"
                    task = client.post(
                        "/v1/videos/generations",
                        json={"model": "veo3.1-fast", "prompt": "A cat", "image_urls": [url]},
                    ).json()
                    done = wait_done(client, task["id"])
                    assert done["status"] == "completed", done
                    video = tmp_path / "veo.mp4"
                    video.write_bytes(httpx.get(done["results"][0], timeout=30).content)
                    info = probe(video)
                    assert (info.codec, info.width, info.height) == ("h264", 1280, 720)
                    assert info.frame_count == 192

                    gemini.scenario.filtered = True
                    refused = client.post(
                        "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": "x"}
                    ).json()
                    failed = wait_done(client, refused["id"])
                    assert failed["status"] == "failed"
                    assert failed["error"]["code"] == "content_policy_violation"
            finally:
                server.stop()
        [start, *_] = gemini.requests_to(":predictLongRunning")
        assert start.headers["x-goog-api-key"] == API_KEY
        instance = start.body["instances"][0]
        assert instance["prompt"] == "A cat"
        assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == first_png
        assert start.body["parameters"]["aspectRatio"] == "16:9"
        assert API_KEY not in server.log()
