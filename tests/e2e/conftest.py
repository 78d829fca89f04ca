"""The real ``vidgate serve`` process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import StaticServer, free_port

E2E_KEY = "sk-e2e-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"


class ServerProcess:
    """``python -m vidgate serve`` with its own data dir; its output goes to a log file."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "VIDGATE_DATA_DIR": str(data_dir),
            "VIDGATE_BOOTSTRAP_KEY": E2E_KEY,
            "VIDGATE_BOOTSTRAP_CREDITS": "500",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vidgate", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vidgate serve exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"vidgate serve did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {E2E_KEY}"}, timeout=30
        )


@pytest.fixture
def image_host() -> Iterator[StaticServer]:
    with StaticServer() as server:
        yield server


@pytest.fixture
def server(tmp_path: Path, image_host: StaticServer) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path / "data", {"VIDGATE_EGRESS_ALLOW": f"127.0.0.1:{image_host.port}"}
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
