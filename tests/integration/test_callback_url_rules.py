"""callback_url is checked at creation: https only, at most 2048 characters, public addresses only.

A refused URL is a 400 naming ``callback_url`` before the task exists: no task, no reservation.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from support import admin_services, asgi_client
from vidgate.media.addresses import IPAddress
from vidgate.services import Services
from vidgate.settings import Settings
from vidgate.store.tables import tasks

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}
PUBLIC_HOST = "hooks.example"  # the resolver gives it a public address
INTERNAL_HOST = "intranet.example"  # the resolver gives it a private one
MAX_CHARS = 2048

DNS = {PUBLIC_HOST: "93.184.216.34", INTERNAL_HOST: "10.1.2.3"}


async def resolver(host: str, port: int) -> list[IPAddress]:
    if host not in DNS:
        raise OSError(f"{host}: name not known")
    return [ip_address(DNS[host])]


@pytest.fixture
async def rules_services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(data_dir=tmp_path / "data", workers=0, public_url="http://testserver")
    async with admin_services(settings, resolver=resolver) as services:
        yield services


@pytest.fixture
async def api(rules_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(rules_services) as client:
        yield client


def url_of_length(length: int) -> str:
    prefix = f"https://{PUBLIC_HOST}/hook/"
    return prefix + "a" * (length - len(prefix))


async def task_count(services: Services) -> int:
    async with services.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(tasks))).scalar() or 0)


async def balance(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/v1/credits")
    assert response.status_code == 200
    user: dict[str, Any] = response.json()["data"]["user"]
    return user


async def ledger_kinds(api: httpx.AsyncClient) -> list[str]:
    response = await api.get("/v1/ledger", params={"limit": 100})
    assert response.status_code == 200
    return [entry["kind"] for entry in response.json()["data"]]


@pytest.mark.parametrize(
    ("callback_url", "reason"),
    [
        pytest.param("http://hooks.example/hook", r"http scheme; only https", id="http"),
        pytest.param(url_of_length(MAX_CHARS + 1), r"2049 characters; at most 2048", id="2049"),
        pytest.param("https://127.0.0.1/", r"127\.0\.0\.1, a loopback address", id="loopback"),
        pytest.param("https://10.0.0.1/", r"10\.0\.0\.1, a private address", id="10/8"),
        pytest.param("https://172.16.0.1/", r"172\.16\.0\.1, a private address", id="172.16/12"),
        pytest.param("https://192.168.1.1/", r"192\.168\.1\.1, a private", id="192.168/16"),
        pytest.param("https://169.254.169.254/", r"a link-local address", id="metadata"),
        pytest.param("https://100.100.100.200/", r"a carrier-grade NAT address", id="cgnat"),
        pytest.param("https://[::1]/", r"::1, a loopback address", id="ipv6-loopback"),
        pytest.param("https://[fd00::1]/", r"fd00::1, a unique-local address", id="ipv6-ula"),
        pytest.param(
            "https://[::ffff:127.0.0.1]/", r"an IPv4-mapped loopback address", id="ipv4-mapped"
        ),
        pytest.param("https://2130706433/", r"127\.0\.0\.1 \(written 2130706433\)", id="decimal"),
        pytest.param("https://0x7f000001/", r"127\.0\.0\.1 \(written 0x7f000001\)", id="hex"),
        # httpx itself refuses a dotted quad with a leading zero; decoded, it is loopback too.
        pytest.param("https://0177.0.0.1/", r"loopback|not a valid URL", id="octal"),
        pytest.param("https://127.1/", r"127\.0\.0\.1 \(written 127\.1\)", id="short"),
        pytest.param(
            f"https://{INTERNAL_HOST}/hook",
            r"resolves to 10\.1\.2\.3, a private address",
            id="name-to-private",
        ),
    ],
)
async def test_a_refused_callback_url_is_a_400_that_creates_and_charges_nothing(
    api: httpx.AsyncClient, rules_services: Services, callback_url: str, reason: str
) -> None:
    before = await balance(api)
    kinds_before = await ledger_kinds(api)

    response = await api.post(
        "/v1/videos/generations", json={**SEED_REQUEST, "callback_url": callback_url}
    )

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "callback_url"
    assert error["message"].startswith("callback_url")
    assert re.search(reason, error["message"]), error["message"]
    assert await task_count(rules_services) == 0
    assert await balance(api) == before
    assert await ledger_kinds(api) == kinds_before
    assert "reserve" not in kinds_before


async def test_a_callback_url_of_exactly_2048_characters_to_a_public_host_is_accepted(
    api: httpx.AsyncClient, rules_services: Services
) -> None:
    callback_url = url_of_length(MAX_CHARS)
    assert len(callback_url) == MAX_CHARS
    response = await api.post(
        "/v1/videos/generations", json={**SEED_REQUEST, "callback_url": callback_url}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    assert await task_count(rules_services) == 1
    assert "reserve" in await ledger_kinds(api)
