"""The real ``vidgate serve`` process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import ServerProcess, StaticServer


@pytest.fixture
def image_host() -> Iterator[StaticServer]:
    with StaticServer() as server:
        yield server


@pytest.fixture
def server(tmp_path: Path, image_host: StaticServer) -> Iterator[ServerProcess]:
    with ServerProcess(
        tmp_path / "data", {"VIDGATE_EGRESS_ALLOW": f"127.0.0.1:{image_host.port}"}
    ) as process:
        yield process
