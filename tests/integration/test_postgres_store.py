"""What PostgreSQL does differently from SQLite, made to answer the same: races that SQLite's
single writer never lets happen, and text it stores but PostgreSQL refuses."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from vidgate.errors import Conflict
from vidgate.services import Services

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


async def test_racing_creates_of_one_account_name_make_one_account_and_409s(
    services: Services,
) -> None:
    results = await asyncio.gather(
        *(services.accounts.create_account("twin") for _ in range(8)), return_exceptions=True
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(made) == 1
    assert len(refused) == 7
    assert [a.name for a in await services.accounts.list_accounts()].count("twin") == 1


async def test_racing_writes_of_one_new_group_all_succeed_and_the_last_one_wins(
    services: Services,
) -> None:
    await asyncio.gather(
        *(
            services.accounts.set_group_limits("pro", price_ratio="0.5", max_active_tasks=n)
            for n in range(8)
        )
    )
    groups = [g for g in await services.accounts.list_groups() if g.name == "pro"]
    assert len(groups) == 1
    assert groups[0].max_active_tasks in range(8)


async def test_a_nul_character_in_text_is_a_400_not_a_crash(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": "a\u0000b"}
    )
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]["message"]
    listed = await client.get("/v1/tasks")
    assert listed.json()["data"] == []
