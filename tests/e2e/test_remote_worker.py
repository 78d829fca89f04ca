"""A remote worker process (`vidgate worker --server --token`) runs tasks for a real server
that has no workers of its own, and outlives the server's restart."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import RemoteWorkerProcess, ServerProcess, wait_until
from vidgate.media.probe import probe

pytestmark = pytest.mark.slow

REQUEST = {"model": "veo3.1-fast", "prompt": "A lighthouse in a storm"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "api", {"VIDGATE_WORKERS": "0"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def cli(api: ServerProcess, *args: str) -> Any:
    """``vidgate <args> --json`` on the server's database; its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "vidgate", *args, "--json"],
        env=api.env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


@pytest.fixture
def remote(tmp_path: Path, api: ServerProcess) -> Iterator[RemoteWorkerProcess]:
    made = cli(api, "workers", "token", "create", "--name", "gpu-host")
    worker = RemoteWorkerProcess(tmp_path / "gpu", api.url, made["token"])
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def task_state(api: ServerProcess, task_id: str) -> dict[str, Any] | None:
    try:
        with api.client() as http:
            response = http.get(f"/v1/tasks/{task_id}")
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def finished(api: ServerProcess, task_id: str) -> dict[str, Any] | None:
    state = task_state(api, task_id)
    return state if state and state["status"] in ("completed", "failed") else None


def assert_decodes(api: ServerProcess, task: dict[str, Any], tmp_path: Path) -> None:
    assert task["status"] == "completed", task
    video = httpx.get(task["results"][0], timeout=30)
    assert video.status_code == 200
    (tmp_path / "result.mp4").write_bytes(video.content)
    info = probe(tmp_path / "result.mp4")
    assert (info.width, info.height) == (1280, 720)
    assert info.frame_count > 100


def settlements(data_dir: Path, task_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "vidgate.db", timeout=10) as db:
        rows = db.execute(
            "SELECT kind, phase FROM ledger_entries WHERE task_id = ? ORDER BY id", (task_id,)
        ).fetchall()
    return [(kind, phase) for kind, phase in rows]


def test_a_remote_worker_completes_a_task_made_through_the_api(
    api: ServerProcess, remote: RemoteWorkerProcess, tmp_path: Path
) -> None:
    with api.client() as http:
        task_id = http.post("/v1/videos/generations", json=REQUEST).json()["id"]
    task = wait_until(lambda: finished(api, task_id), "the task to finish", 90)
    assert_decodes(api, task, tmp_path)
    assert settlements(api.data_dir, task_id) == [("reserve", "reserve"), ("capture", "settle")]
    # The worker host never had a database: it ran the task over HTTP alone.
    assert not (remote.data_dir / "vidgate.db").exists()
    assert f"task {task_id} claimed from the server" in remote.log()
    # SIGTERM with nothing running: the open long poll is dropped and the worker exits at once.
    assert remote.stop(timeout=30) == 0


def test_the_task_completes_once_when_the_api_restarts_under_a_running_worker(
    api: ServerProcess, remote: RemoteWorkerProcess, tmp_path: Path
) -> None:
    with api.client() as http:
        task_id = http.post("/v1/videos/generations", json=REQUEST).json()["id"]
    wait_until(
        lambda: (task_state(api, task_id) or {}).get("status") == "processing",
        "the remote worker to claim the task",
    )
    api.stop()
    stopped_at = time.monotonic()
    # While the API is down the worker keeps rendering and retries its calls.
    wait_until(lambda: "will retry" in remote.log() or "again in" in remote.log(), "a retry", 90)
    api.start()
    task = wait_until(lambda: finished(api, task_id), "the task to finish after the restart", 90)
    assert time.monotonic() > stopped_at
    assert_decodes(api, task, tmp_path)
    # Exactly one settlement, one result file, whether the worker's own attempt finished it or
    # it was handed back and run again.
    assert settlements(api.data_dir, task_id) == [("reserve", "reserve"), ("capture", "settle")]
    results = list((api.data_dir / "files" / "results").glob(f"{task_id}-*.mp4"))
    assert len(results) == 1
    assert remote.running()


def test_worker_tokens_are_made_listed_and_revoked_with_the_cli(api: ServerProcess) -> None:
    made = cli(api, "workers", "token", "create", "--name", "gpu-7")
    assert made["token"].startswith("wk-")
    assert made["name"] == "gpu-7"
    claim = {"worker": "w", "models": ["veo3.1-fast"], "wait": 0}
    headers = {"Authorization": f"Bearer {made['token']}"}
    assert httpx.post(f"{api.url}/worker/v1/claim", json=claim, headers=headers).status_code == 204
    [listed] = cli(api, "workers", "token", "list")
    assert listed["id"] == made["id"]
    assert listed["prefix"] == made["token"][:11]
    assert "token" not in listed  # only shown once
    assert listed["last_used"] is not None
    assert cli(api, "workers", "token", "revoke", made["id"])["revoked"] is not None
    refused = httpx.post(f"{api.url}/worker/v1/claim", json=claim, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"


def test_a_remote_worker_host_sweeps_what_a_killed_worker_left_in_its_scratch(
    api: ServerProcess, tmp_path: Path
) -> None:
    made = cli(api, "workers", "token", "create", "--name", "gpu-host")
    # What a worker killed with -9 leaves: its folder (its lock no longer held) with a half
    # written render, and an old loose file of a version before the locked folders.
    tmp = tmp_path / "gpu" / "tmp"
    dead = tmp / "4242-0123456789ab"
    (dead / "work").mkdir(parents=True)
    (dead / ".lock").write_text("4242\n")
    (dead / "work" / "render.mp4.part").write_bytes(b"half a video")
    stale = tmp / "old-render.mp4"
    stale.write_bytes(b"old")
    seven_hours_ago = time.time() - 7 * 3600
    os.utime(stale, (seven_hours_ago, seven_hours_ago))
    worker = RemoteWorkerProcess(tmp_path / "gpu", api.url, made["token"])
    worker.start()
    try:
        wait_until(lambda: "swept 2 scratch" in worker.log(), "the sweep at start")
        assert not dead.exists()
        assert not stale.exists()
        with api.client() as http:
            task_id = http.post("/v1/videos/generations", json=REQUEST).json()["id"]
        assert_decodes(api, wait_until(lambda: finished(api, task_id), "the task", 90), tmp_path)
        [own] = [p for p in tmp.iterdir() if p.name.startswith(f"{worker.pid}-")]
        assert (own / ".lock").exists()
        assert worker.stop(timeout=30) == 0
        assert not own.exists()  # a clean stop removes its own folder
    finally:
        worker.stop()
