"""Fixtures for every suite: settings on a fresh data dir, services, the app over ASGI, keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import trustme

from support import ADMIN_KEY, StaticServer
from vidgate.app import create_app
from vidgate.services import Services, open_services
from vidgate.settings import Settings


@pytest.fixture
def static_server() -> Iterator[StaticServer]:
    with StaticServer() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, static_server: StaticServer) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        workers=0,
        egress_allow=frozenset({("127.0.0.1", static_server.port)}),
        public_url="http://testserver",
        bootstrap_key=ADMIN_KEY,
        bootstrap_credits=1000,
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    opened = await open_services(settings)
    await opened.accounts.bootstrap(key=ADMIN_KEY, credits=Decimal(1000))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services, workers=0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as http:
        yield http


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A test certificate authority; servers get certificates from it with ``issue_cert``."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    """The CA as a PEM file, for VIDGATE_EGRESS_CA_BUNDLE."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path
