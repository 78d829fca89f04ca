"""Starting the real server: a busy port, owner-only files, scratch left by killed processes,
and log lines that never carry a URL's query."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import (
    ServerProcess,
    StaticServer,
    WorkerProcess,
    image_bytes,
    loopback_receiver,
    structured_image,
    wait_until,
)

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask (files 0644, folders 0755) for the processes a test starts."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> tuple[dict[Path, int], dict[Path, int]]:
    """The modes of the files, and of the folders, in ``root`` (itself included); what
    vanishes meanwhile is skipped."""
    files: dict[Path, int] = {}
    folders: dict[Path, int] = {}
    for path in [root, *root.rglob("*")]:
        try:
            status = path.lstat()
        except FileNotFoundError:
            continue
        kind = folders if stat.S_ISDIR(status.st_mode) else files
        kind[path] = stat.S_IMODE(status.st_mode)
    return files, folders


# --- the port ------------------------------------------------------------------------------


def test_a_second_server_on_a_busy_port_says_so_in_one_line_and_exits_2(
    server: ServerProcess, tmp_path: Path
) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "vidgate", "serve", "--port", str(server.port)],
        env={**server.env, "VIDGATE_DATA_DIR": str(tmp_path / "second")},
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = (second.stdout + second.stderr).decode()
    assert second.returncode == 2, output
    assert f"error: 127.0.0.1:{server.port} is already in use" in output
    assert "listening" not in output
    assert "Traceback" not in output
    assert len(second.stderr.decode().strip().splitlines()) == 1, output
    assert not (tmp_path / "second").exists()  # it stopped at the port, before the data dir
    # The first one is untouched, and said it listens only once it did.
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert f"vidgate listening on http://127.0.0.1:{server.port}" in server.log()


# --- file modes ----------------------------------------------------------------------------


def test_after_a_start_the_data_dir_is_0700_and_its_files_0600_a_looser_one_is_tightened(
    tmp_path: Path, image_host: StaticServer, umask_022: None
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # as an older vidgate left it
    image = image_host.add("/first.png", image_bytes(structured_image(320, 180, 1)))
    with (
        ServerProcess(
            data, {"VIDGATE_EGRESS_ALLOW": f"127.0.0.1:{image_host.port}", "VIDGATE_WORKERS": "1"}
        ) as server,
        server.client() as client,
    ):
        uploaded = client.post(
            "/v1/files",
            files={"file": ("a.png", image_bytes(structured_image(64, 64, 2)), "image/png")},
        )
        assert uploaded.status_code == 200, uploaded.text
        created = client.post(
            "/v1/videos/generations", json={**SEED_REQUEST, "image_urls": [image]}
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        wait_until(
            lambda: client.get(f"/v1/tasks/{task_id}").json()["status"] == "completed",
            "the task to complete",
            timeout=120,
        )
        # While it runs: the database's -wal and -shm files exist now.
        assert {p.name for p in data.iterdir()} >= {"vidgate.db-wal", "vidgate.db-shm"}
        files, folders = modes(data)
        log = server.log()

    assert "now owner-only (0700)" in log
    assert any(p.name.endswith(".mp4") for p in files), files  # a stored result was looked at
    assert any("uploads" in p.parts for p in files), files
    assert {p: m for p, m in files.items() if m != 0o600} == {}
    assert {p: m for p, m in folders.items() if m != 0o700} == {}


# --- scratch left by a killed process ------------------------------------------------------


def scratch_folders(data: Path, pid: int) -> list[Path]:
    return [p for p in (data / "files" / "tmp").glob(f"{pid}-*") if p.is_dir()]


def test_a_start_sweeps_a_killed_servers_scratch_and_never_a_live_workers(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = {"VIDGATE_WORKERS": "1"}
    killed = ServerProcess(data, env)
    with killed:
        assert killed.process is not None
        [dead] = wait_until(lambda: scratch_folders(data, killed.process.pid), "its folder")
        (dead / "work" / "render.mp4.part").write_bytes(b"half a video")
        worker = WorkerProcess(data, env)
        worker.start()
        try:
            [live] = wait_until(lambda: scratch_folders(data, worker.pid), "the worker's folder")
            (live / "work" / "upload.mp4.part").write_bytes(b"a live upload")
            killed.process.send_signal(signal.SIGKILL)
            killed.process.wait(timeout=10)
            assert dead.exists()  # kill -9 ran no clean-up

            tmp = data / "files" / "tmp"
            stale = tmp / "old-work.mp4"  # a loose file, as older versions left them
            stale.write_bytes(b"old")
            six_hours_and_more = time.time() - 7 * 3600
            os.utime(stale, (six_hours_and_more, six_hours_and_more))
            fresh = tmp / "fresh-work.mp4"
            fresh.write_bytes(b"perhaps someone's")

            with ServerProcess(data, env) as restarted:
                assert "swept" in restarted.log()
                assert not dead.exists()
                assert not stale.exists()
                assert (live / "work" / "upload.mp4.part").read_bytes() == b"a live upload"
                assert fresh.exists()
                assert worker.running()
        finally:
            worker.stop()


# --- URLs in logs --------------------------------------------------------------------------


def test_no_log_line_carries_a_callback_token_or_an_image_signature(
    tmp_path: Path, image_host: StaticServer
) -> None:
    image = image_host.add(
        "/first.png?X-Amz-Signature=SIGSECRET123&X-Amz-Credential=CREDSECRET",
        image_bytes(structured_image(320, 180, 3)),
    )
    with loopback_receiver(tmp_path) as (hooks, bundle):
        callback_url = f"https://127.0.0.1:{hooks.port}/hook?token=HOOKSECRET456"
        with (
            ServerProcess(
                tmp_path / "data",
                {
                    "VIDGATE_EGRESS_ALLOW": f"127.0.0.1:{image_host.port},127.0.0.1:{hooks.port}",
                    "VIDGATE_EGRESS_CA_BUNDLE": str(bundle),
                    "VIDGATE_WORKERS": "1",
                    "VIDGATE_LOG_LEVEL": "DEBUG",
                },
            ) as server,
            server.client() as client,
        ):
            created = client.post(
                "/v1/videos/generations",
                json={**SEED_REQUEST, "image_urls": [image], "callback_url": callback_url},
            )
            assert created.status_code == 200, created.text
            wait_until(lambda: hooks.hooks, "the callback", timeout=120)
            log = server.log()
    # Both requests were logged (httpx's own "HTTP Request: ..." lines), without their query.
    assert f"https://127.0.0.1:{hooks.port}/hook" in log
    assert "/first.png" in log
    for secret in ("HOOKSECRET456", "SIGSECRET123", "CREDSECRET", "X-Amz-Signature"):
        assert secret not in log
