"""Numbers past what the database can store are a 400 naming the field, never a 500 from the
driver (schemathesis found these: PostgreSQL's INTEGER is 32 bits, SQLite's 64)."""

from __future__ import annotations

import httpx
import pytest

from support import assert_error


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rate_limit_per_minute", 3_000_000_000),
        ("max_active_tasks", 10**20),
    ],
)
async def test_a_group_limit_past_the_column_is_400(
    client: httpx.AsyncClient, field: str, value: int
) -> None:
    response = await client.put("/admin/groups/bounded", json={"price_ratio": 1, field: value})
    assert_error(response, 400, "invalid_request", param=field)
    largest = await client.put("/admin/groups/bounded", json={"price_ratio": 1, field: 2**31 - 1})
    assert largest.status_code == 200
    assert largest.json()[field] == 2**31 - 1


@pytest.mark.parametrize("value", ["1" + "0" * 30, "1" + "0" * 400])
async def test_a_key_expiry_past_the_year_9999_is_400(
    client: httpx.AsyncClient, value: str
) -> None:
    for path in ("/v1/keys", "/admin/accounts/admin/keys"):
        response = await client.post(
            path,
            content='{"expires_at": ' + value + "}",
            headers={"Content-Type": "application/json"},
        )
        assert_error(response, 400, "invalid_request", param="expires_at")
    latest = await client.post("/v1/keys", json={"expires_at": 253_402_300_799})
    assert latest.status_code == 200
    assert latest.json()["expires"] == 253_402_300_799
