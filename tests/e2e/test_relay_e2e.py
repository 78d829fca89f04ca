"""vidgate relays to another vidgate: two real server processes on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from support import E2E_KEY, ServerProcess
from vidgate.media.probe import probe

RELAY_MODELS = """
[engines.upstream]
type = "relay"
base_url = "${UPSTREAM_URL}"
api_key = "${UPSTREAM_KEY}"
upstream_model = "veo3.1-fast"
poll_wait = 5

[models."relayed-fast"]
engines = ["upstream"]
price = "30.00"
aliases = ["veo3.1-fast"]
"""


def test_a_relayed_task_completes_here_with_the_upstreams_video(tmp_path: Path) -> None:
    upstream = ServerProcess(tmp_path / "up", {"VIDGATE_WORKERS": "1"})
    upstream.start()
    models = tmp_path / "models.toml"
    models.write_text(RELAY_MODELS)
    downstream = ServerProcess(
        tmp_path / "down",
        {
            "VIDGATE_MODELS": str(models),
            "UPSTREAM_URL": upstream.url,
            "UPSTREAM_KEY": E2E_KEY,
            "VIDGATE_WORKERS": "1",
        },
    )
    try:
        downstream.start()
        with downstream.client() as client:
            [model] = client.get("/v1/models").json()["data"]
            assert (model["id"], model["engine"], model["price"]) == (
                "relayed-fast",
                "upstream",
                30.0,
            )
            task = client.post(
                "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": "Relayed cat"}
            ).json()
            assert task["usage"]["credits_reserved"] == 30.0
            deadline = time.monotonic() + 120
            while (current := client.get(f"/v1/tasks/{task['id']}").json())["status"] not in (
                "completed",
                "failed",
            ):
                assert time.monotonic() < deadline, current
                time.sleep(0.2)
        assert current["status"] == "completed", current
        url = current["results"][0]
        assert url.startswith(downstream.url)  # stored here: it outlives the upstream's link
        video = tmp_path / "relayed.mp4"
        video.write_bytes(httpx.get(url, timeout=30).content)
        info = probe(video)
        assert (info.codec, info.width, info.height, info.frame_count) == ("h264", 1280, 720, 192)
        with upstream.client() as up:
            [upstream_task] = up.get("/v1/tasks").json()["data"]
        assert upstream_task["status"] == "completed"
        assert upstream_task["usage"]["credits_reserved"] == 25.7
    finally:
        downstream.stop()
        upstream.stop()
