"""The real server process: the seed's request to a decoded MP4, images honoured, restarts safe."""

from __future__ import annotations

import io
import sqlite3
import time
from pathlib import Path

import av
import httpx
import numpy as np
from PIL import Image

from support import E2E_KEY, ServerProcess, StaticServer, image_bytes, structured_image
from vidgate.media.frames import fit_image
from vidgate.media.probe import probe

# H.264 at crf 23 on these structured test images decodes within a few levels of the source
# (measured: ~1-3 mean absolute difference per channel); an unrelated image is ~40-90 away.
# 12 leaves room for encoder variation while still telling image 1 from image 2 apart.
CLOSE_ENOUGH = 12.0


def wait_for_terminal(client: httpx.Client, task_id: str, timeout: float = 120) -> list[dict]:
    """Poll the task until it finishes; every snapshot seen on the way, in order."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = client.get(f"/v1/tasks/{task_id}").json()
        seen.append(task)
        if task["status"] in ("completed", "failed"):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish: last seen {seen[-1] if seen else None}")


def download(client: httpx.Client, url: str, target: Path) -> Path:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    target.write_bytes(response.content)
    return target


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def mean_difference(frame: np.ndarray, image: Image.Image) -> float:
    return float(np.abs(frame.astype(np.int16) - np.asarray(image, dtype=np.int16)).mean())


def test_seed_request_goes_pending_processing_completed(
    server: ServerProcess, tmp_path: Path
) -> None:
    with server.client() as client:
        created = client.post(
            "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": "A cat playing piano"}
        )
        assert created.status_code == 200, created.text
        task = created.json()
        assert task["status"] == "pending"
        # The API answers while the video renders.
        assert client.get("/healthz").status_code == 200
        seen = wait_for_terminal(client, task["id"])
    statuses = [snapshot["status"] for snapshot in seen]
    assert statuses[-1] == "completed", seen[-1]
    assert "processing" in statuses
    progress = [snapshot["progress"] for snapshot in seen]
    assert progress == sorted(progress)
    assert any(0 < value < 100 for value in progress)
    assert seen[-1]["progress"] == 100
    video = download(client, seen[-1]["results"][0], tmp_path / "cat.mp4")
    info = probe(video)
    assert (info.codec, info.width, info.height, info.frame_count) == ("h264", 1280, 720, 192)
    assert info.pix_fmt == "yuv420p"
    assert abs(info.duration_seconds - 8.0) < 0.05


def test_two_images_give_first_and_last_frames(
    server: ServerProcess, image_host: StaticServer, tmp_path: Path
) -> None:
    first = structured_image(600, 900, seed=11)
    last = structured_image(900, 600, seed=12)
    urls = [
        image_host.add("/first.png", image_bytes(first), content_type="image/png"),
        image_host.add("/last.jpg", image_bytes(last, "JPEG"), content_type="image/jpeg"),
    ]
    with server.client() as client:
        created = client.post(
            "/v1/videos/generations",
            json={
                "model": "veo3.1-fast",
                "prompt": "From one to the other",
                "aspect_ratio": "9:16",
                "image_urls": urls,
            },
        )
        assert created.status_code == 200, created.text
        seen = wait_for_terminal(client, created.json()["id"])
    assert seen[-1]["status"] == "completed", seen[-1]
    video = download(client, seen[-1]["results"][0], tmp_path / "two.mp4")
    frames = decoded_frames(video)
    assert len(frames) == 192
    assert frames[0].shape == (1280, 720, 3)
    first_fit = fit_image(first, 720, 1280)
    last_fit = fit_image(jpeg_round_trip(last), 720, 1280)
    assert mean_difference(frames[0], first_fit) < CLOSE_ENOUGH
    assert mean_difference(frames[-1], last_fit) < CLOSE_ENOUGH
    assert mean_difference(frames[-1], first_fit) > 2 * CLOSE_ENOUGH


def jpeg_round_trip(image: Image.Image) -> Image.Image:
    """The image as the server fetched it: through the same JPEG encoding."""
    return Image.open(io.BytesIO(image_bytes(image, "JPEG"))).convert("RGB")


def test_one_image_starts_the_video(
    server: ServerProcess, image_host: StaticServer, tmp_path: Path
) -> None:
    picture = structured_image(1600, 1000, seed=21)
    url = image_host.add("/one.png", image_bytes(picture), content_type="image/png")
    with server.client() as client:
        created = client.post(
            "/v1/videos/generations",
            json={"model": "veo3.1-fast", "prompt": "Slowly closer", "image_urls": [url]},
        )
        assert created.status_code == 200, created.text
        seen = wait_for_terminal(client, created.json()["id"])
    assert seen[-1]["status"] == "completed", seen[-1]
    frames = decoded_frames(download(client, seen[-1]["results"][0], tmp_path / "one.mp4"))
    assert len(frames) == 192
    assert frames[0].shape == (720, 1280, 3)
    assert mean_difference(frames[0], fit_image(picture, 1280, 720)) < CLOSE_ENOUGH


def accounts_and_balances(server: ServerProcess) -> list[tuple[str, int]]:
    with sqlite3.connect(server.data_dir / "vidgate.db") as db:
        return db.execute("SELECT name, balance_cents FROM accounts").fetchall()


def test_restart_neither_adds_an_account_nor_credits(server: ServerProcess) -> None:
    with server.client() as client:
        assert client.get("/v1/models").status_code == 200
    server.stop()
    assert accounts_and_balances(server) == [("admin", 50000)]
    server.start()
    with server.client() as client:
        assert client.get("/v1/models").status_code == 200
    server.stop()
    assert accounts_and_balances(server) == [("admin", 50000)]
    log = server.log()
    assert log.count("vidgate created the admin account") == 1
    assert E2E_KEY not in log  # an operator's own key is never echoed back
