"""The admin API, own keys, credits and the ledger through httpx against the app over ASGI."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from support import asgi_client, assert_error
from vidgate.auth.keys import hash_key
from vidgate.services import Services

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "x"}
SEED_PRICE = 25.7


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def over_asgi(services: Services, *, key: str | None = None) -> httpx.AsyncClient:
    """A client on the app that sends ``key`` (or none) and sees a crash as the 500 it renders."""
    return asgi_client(services, key=key, raise_app_exceptions=False)


async def create_account(
    client: httpx.AsyncClient, name: str, credits: float = 100, group: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "credits": credits}
    if group is not None:
        body["user_group"] = group
    response = await client.post("/admin/accounts", json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


async def remaining(client: httpx.AsyncClient, key: str) -> float:
    response = await client.get("/v1/credits", headers=bearer(key))
    assert response.status_code == 200, response.text
    value: float = response.json()["data"]["user"]["remaining_credits"]
    return value


async def ledger(client: httpx.AsyncClient, account: str) -> list[dict[str, Any]]:
    response = await client.get(f"/admin/accounts/{account}/ledger", params={"limit": 100})
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["has_more"] is False
    entries: list[dict[str, Any]] = page["data"]
    return entries


async def account_names(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/admin/accounts")
    assert response.status_code == 200, response.text
    return [account["name"] for account in response.json()["data"]]


# --- accounts ------------------------------------------------------------------------------


async def test_created_account_gets_its_key_once_and_the_key_spends_its_opening_credits(
    client: httpx.AsyncClient,
) -> None:
    group = await client.put("/admin/groups/partners", json={"price_ratio": 1})
    assert group.status_code == 200, group.text

    created = await create_account(client, "alice", credits=42.5, group="partners")

    assert created["object"] == "account"
    assert created["id"].startswith("acct_")
    assert created["name"] == "alice"
    assert created["user_group"] == "partners"
    assert created["is_admin"] is False
    assert created["balance"] == 42.5
    assert created["key"].startswith("sk-")
    assert len(created["key"]) >= 43
    assert await remaining(client, created["key"]) == 42.5
    # The key is shown at creation only: no later read carries it.
    for path in ("/admin/accounts", "/admin/accounts/alice", f"/admin/accounts/{created['id']}"):
        response = await client.get(path)
        assert response.status_code == 200
        assert created["key"] not in response.text


async def test_admin_lists_accounts_and_fetches_one_by_name_or_by_id(
    client: httpx.AsyncClient,
) -> None:
    created = await create_account(client, "bob", credits=7)
    expected = {k: v for k, v in created.items() if k != "key"}

    listed = await client.get("/admin/accounts")
    by_name = await client.get("/admin/accounts/bob")
    by_id = await client.get(f"/admin/accounts/{created['id']}")

    assert listed.status_code == 200
    assert listed.json()["object"] == "list"
    assert expected in listed.json()["data"]
    assert {a["name"] for a in listed.json()["data"]} == {"admin", "bob"}
    assert by_name.status_code == 200
    assert by_name.json() == expected
    assert by_id.status_code == 200
    assert by_id.json() == expected


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/admin/accounts/nobody", None),
        ("GET", "/admin/accounts/acct_0000000000000000", None),
        ("GET", "/admin/accounts/nobody/ledger", None),
        ("POST", "/admin/accounts/nobody/topup", {"credits": 5}),
        ("POST", "/admin/accounts/nobody/adjustments", {"credits": 5, "reason": "r"}),
        ("PUT", "/admin/accounts/nobody/group", {"user_group": "default"}),
    ],
)
async def test_unknown_account_is_404_in_the_error_envelope(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(method, path, json=body)
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("again", ["carol", "  carol  "])
async def test_duplicate_account_name_is_409(client: httpx.AsyncClient, again: str) -> None:
    await create_account(client, "carol", credits=1)

    response = await client.post("/admin/accounts", json={"name": again, "credits": 5})

    error = assert_error(response, 409, "conflict")
    assert "carol" in error["message"]
    assert (await account_names(client)).count("carol") == 1
    assert [e["amount"] for e in await ledger(client, "carol")] == [1]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "neg", "credits": -1}, "credits"),
        ({"name": "", "credits": 1}, "name"),
        ({"name": "   ", "credits": 1}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"credits": 1}, "name"),
        ({"name": "fine", "credits": 1.005}, "credits"),
        ({"name": "fine", "credits": "1.005"}, "credits"),
        ({"name": "fine", "credits": "NaN"}, "credits"),
        ({"name": "fine", "credits": True}, "credits"),
    ],
)
async def test_invalid_account_body_is_400_naming_the_field_never_422(
    client: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    response = await client.post("/admin/accounts", json=body)

    assert_error(response, 400, "invalid_request", param)
    assert await account_names(client) == ["admin"]


# --- credits: top-ups, adjustments, the ledger --------------------------------------------


async def test_top_up_raises_the_balance_and_is_a_topup_entry(client: httpx.AsyncClient) -> None:
    dora = await create_account(client, "dora", credits=10)

    response = await client.post(
        "/admin/accounts/dora/topup", json={"credits": 50, "reason": "invoice 7"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["balance"] == 60
    assert await remaining(client, dora["key"]) == 60
    newest = (await ledger(client, "dora"))[0]
    assert newest["kind"] == "topup"
    assert newest["amount"] == 50
    assert newest["balance_after"] == 60
    assert newest["reason"] == "invoice 7"
    assert newest["task_id"] is None


@pytest.mark.parametrize("credits", [0, -5, 1.001])
async def test_top_up_of_a_non_positive_or_sub_cent_amount_is_400(
    client: httpx.AsyncClient, credits: float
) -> None:
    await create_account(client, "dora", credits=10)

    response = await client.post("/admin/accounts/dora/topup", json={"credits": credits})

    assert_error(response, 400, "invalid_request", "credits")
    assert len(await ledger(client, "dora")) == 1


async def test_adjustments_up_and_down_are_ledger_entries_newest_first(
    client: httpx.AsyncClient,
) -> None:
    erin = await create_account(client, "erin", credits=10)
    await client.post("/admin/accounts/erin/topup", json={"credits": 5})

    up = await client.post(
        "/admin/accounts/erin/adjustments", json={"credits": 2.5, "reason": "goodwill"}
    )
    down = await client.post(
        "/admin/accounts/erin/adjustments", json={"credits": -7.25, "reason": "refund correction"}
    )

    assert up.status_code == 200, up.text
    assert up.json()["balance"] == 17.5
    assert down.status_code == 200, down.text
    assert down.json()["balance"] == 10.25
    assert await remaining(client, erin["key"]) == 10.25
    entries = await ledger(client, "erin")
    rows = [
        (e["kind"], e["amount"], e["credits"], e["balance_after"], e["reason"]) for e in entries
    ]
    assert rows == [
        ("adjustment", -7.25, 7.25, 10.25, "refund correction"),
        ("adjustment", 2.5, 2.5, 17.5, "goodwill"),
        ("topup", 5, 5, 15, None),
        ("topup", 10, 10, 10, "opening"),
    ]
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)


@pytest.mark.parametrize("body", [{"credits": 5}, {"credits": -1, "reason": "   "}])
async def test_adjustment_without_a_reason_is_400_and_changes_nothing(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    await create_account(client, "frank", credits=10)

    response = await client.post("/admin/accounts/frank/adjustments", json=body)

    assert_error(response, 400, "invalid_request", "reason")
    assert (await client.get("/admin/accounts/frank")).json()["balance"] == 10
    assert len(await ledger(client, "frank")) == 1


async def test_adjustment_below_zero_is_400_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    grace = await create_account(client, "grace", credits=10)

    response = await client.post(
        "/admin/accounts/grace/adjustments", json={"credits": -10.01, "reason": "too much"}
    )

    assert_error(response, 400, "invalid_request", "credits")
    assert await remaining(client, grace["key"]) == 10
    assert [e["kind"] for e in await ledger(client, "grace")] == ["topup"]
    # Down to exactly zero is allowed.
    to_zero = await client.post(
        "/admin/accounts/grace/adjustments", json={"credits": -10, "reason": "closing"}
    )
    assert to_zero.status_code == 200, to_zero.text
    assert to_zero.json()["balance"] == 0


@pytest.mark.parametrize("top_ups", [4, 5])
async def test_ledger_cursor_pages_return_every_entry_once_in_id_order(
    client: httpx.AsyncClient, top_ups: int
) -> None:
    await create_account(client, "heidi", credits=1)
    for amount in range(1, top_ups + 1):
        response = await client.post("/admin/accounts/heidi/topup", json={"credits": amount})
        assert response.status_code == 200
    everything = [e["id"] for e in await ledger(client, "heidi")]
    assert len(everything) == top_ups + 1

    seen: list[int] = []
    pages = 0
    params: dict[str, Any] = {"limit": 2}
    while True:
        response = await client.get("/admin/accounts/heidi/ledger", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert 1 <= len(page["data"]) <= 2
        seen.extend(e["id"] for e in page["data"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        assert page["next_cursor"]
        params = {"limit": 2, "cursor": page["next_cursor"]}
        assert pages < 10, "paging does not end"

    assert seen == everything
    assert seen == sorted(set(seen), reverse=True)
    assert pages == -(-len(everything) // 2)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/admin/accounts/admin/ledger", "/v1/ledger"])
@pytest.mark.parametrize("cursor", ["garbage!", _b64("le:abc"), _b64("xx:5"), "x" * 201])
async def test_garbage_ledger_cursor_is_400_naming_the_cursor(
    client: httpx.AsyncClient, path: str, cursor: str
) -> None:
    response = await client.get(path, params={"cursor": cursor})
    assert_error(response, 400, "invalid_request", "cursor")


# --- user groups ---------------------------------------------------------------------------


async def test_group_price_ratio_halves_the_listed_price_and_the_reservation(
    client: httpx.AsyncClient,
) -> None:
    group = await client.put("/admin/groups/vip", json={"price_ratio": 0.5})
    assert group.status_code == 200, group.text
    assert group.json()["name"] == "vip"
    ivan = await create_account(client, "ivan", credits=100)

    moved = await client.put("/admin/accounts/ivan/group", json={"user_group": "vip"})
    models = await client.get("/v1/models", headers=bearer(ivan["key"]))
    created = await client.post(
        "/v1/videos/generations", json=SEED_REQUEST, headers=bearer(ivan["key"])
    )

    assert moved.status_code == 200, moved.text
    assert moved.json()["user_group"] == "vip"
    assert models.status_code == 200
    prices = {m["id"]: m["price"] for m in models.json()["data"]}
    assert prices["veo3.1-fast"] == SEED_PRICE / 2
    assert created.status_code == 200, created.text
    assert created.json()["usage"] == {
        "billing_rule": "per_call",
        "credits_reserved": 12.85,
        "user_group": "vip",
    }
    assert await remaining(client, ivan["key"]) == 87.15
    reserve = (await ledger(client, "ivan"))[0]
    assert (reserve["kind"], reserve["amount"]) == ("reserve", -12.85)
    assert reserve["task_id"] == created.json()["id"]


async def test_moving_an_account_to_an_unknown_group_is_400_and_keeps_its_group(
    client: httpx.AsyncClient,
) -> None:
    await create_account(client, "judy")

    response = await client.put("/admin/accounts/judy/group", json={"user_group": "nope"})
    creating = await client.post("/admin/accounts", json={"name": "kim", "user_group": "nope"})

    assert_error(response, 400, "invalid_request")
    assert "nope" in response.json()["error"]["message"]
    assert (await client.get("/admin/accounts/judy")).json()["user_group"] == "default"
    assert_error(creating, 400, "invalid_request")
    assert "kim" not in await account_names(client)

    response = await client.put("/admin/accounts/judy/group", json={"user_group": "nope"})
    assert_error(response, 400, "invalid_request", "user_group")


# --- who may call /admin -------------------------------------------------------------------

ADMIN_CALLS = [
    ("GET", "/admin/accounts", None),
    ("POST", "/admin/accounts", {"name": "intruder", "credits": 1000}),
    ("POST", "/admin/accounts/member/topup", {"credits": 1000}),
    ("POST", "/admin/accounts/member/adjustments", {"credits": 1000, "reason": "me"}),
    ("PUT", "/admin/groups/free", {"price_ratio": 0}),
    ("GET", "/admin/accounts/member/ledger", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
async def test_non_admin_key_is_403_on_admin_routes_and_changes_nothing(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    member = await create_account(client, "member", credits=5)

    response = await client.request(method, path, json=body, headers=bearer(member["key"]))

    assert_error(response, 403, "forbidden")
    assert await account_names(client) == ["admin", "member"]
    assert await remaining(client, member["key"]) == 5
    groups = await client.get("/admin/groups")
    assert "free" not in {g["name"] for g in groups.json()["data"]}


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
@pytest.mark.parametrize("key", [None, "sk-not-a-key-0123456789abcdefghijklmnopqrstuvwxyz"])
async def test_admin_routes_without_a_valid_key_are_401(
    services: Services,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    key: str | None,
) -> None:
    await create_account(client, "member", credits=5)
    async with over_asgi(services, key=key) as anonymous:
        response = await anonymous.request(method, path, json=body)
    assert_error(response, 401, "unauthorized")
    assert await account_names(client) == ["admin", "member"]


# --- an account's own keys -----------------------------------------------------------------


async def test_own_key_list_shows_prefixes_but_never_a_full_key_or_its_hash(
    client: httpx.AsyncClient,
) -> None:
    lena = await create_account(client, "lena")

    response = await client.get("/v1/keys", headers=bearer(lena["key"]))

    assert response.status_code == 200
    keys = response.json()["data"]
    assert len(keys) == 1
    assert keys[0]["account_id"] == lena["id"]
    assert keys[0]["object"] == "api_key"
    assert lena["key"].startswith(keys[0]["prefix"])
    assert len("sk-") < len(keys[0]["prefix"]) < len(lena["key"]) // 2
    assert not {"key", "key_hash", "hash", "secret"} & set(keys[0])
    assert lena["key"] not in response.text
    assert hash_key(lena["key"]) not in response.text


async def test_own_key_list_shows_only_the_callers_keys(client: httpx.AsyncClient) -> None:
    lena = await create_account(client, "lena")
    mike = await create_account(client, "mike")

    response = await client.get("/v1/keys", headers=bearer(lena["key"]))

    assert {k["account_id"] for k in response.json()["data"]} == {lena["id"]}
    assert mike["key"][:11] not in response.text


async def test_created_own_key_is_shown_once_and_works(client: httpx.AsyncClient) -> None:
    lena = await create_account(client, "lena", credits=33)

    response = await client.post("/v1/keys", json={"name": "ci"}, headers=bearer(lena["key"]))

    assert response.status_code == 200, response.text
    created = response.json()
    assert created["key"].startswith("sk-")
    assert created["key"] != lena["key"]
    assert created["key"].startswith(created["prefix"])
    assert created["account_id"] == lena["id"]
    assert created["name"] == "ci"
    assert created["revoked"] is None
    assert await remaining(client, created["key"]) == 33
    listed = await client.get("/v1/keys", headers=bearer(created["key"]))
    assert sorted(k["name"] for k in listed.json()["data"]) == ["ci", "default"]
    assert created["key"] not in listed.text


async def test_own_key_with_an_expiry_in_the_past_is_400(client: httpx.AsyncClient) -> None:
    lena = await create_account(client, "lena")

    response = await client.post("/v1/keys", json={"expires_at": 1}, headers=bearer(lena["key"]))

    assert_error(response, 400, "invalid_request", "expires_at")


async def test_revoked_own_key_is_refused_on_the_very_next_request(
    client: httpx.AsyncClient,
) -> None:
    lena = await create_account(client, "lena")
    spare = await client.post("/v1/keys", json={"name": "spare"}, headers=bearer(lena["key"]))
    spare_key = spare.json()
    assert await remaining(client, spare_key["key"]) == 100

    revoked = await client.post(f"/v1/keys/{spare_key['id']}/revoke", headers=bearer(lena["key"]))
    after = await client.get("/v1/credits", headers=bearer(spare_key["key"]))

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == spare_key["id"]
    assert revoked.json()["revoked"] is not None
    assert_error(after, 401, "unauthorized")
    assert await remaining(client, lena["key"]) == 100


async def test_revoking_another_accounts_key_is_404_and_that_key_still_works(
    client: httpx.AsyncClient,
) -> None:
    lena = await create_account(client, "lena")
    mike = await create_account(client, "mike", credits=8)
    mikes_keys = await client.get("/v1/keys", headers=bearer(mike["key"]))
    mikes_key_id = mikes_keys.json()["data"][0]["id"]

    response = await client.post(f"/v1/keys/{mikes_key_id}/revoke", headers=bearer(lena["key"]))

    assert_error(response, 404, "not_found")
    assert await remaining(client, mike["key"]) == 8
    still = await client.get("/v1/keys", headers=bearer(mike["key"]))
    assert still.json()["data"][0]["revoked"] is None


# --- what an account sees of its credits ---------------------------------------------------


async def test_credits_answer_has_the_evolink_shape(client: httpx.AsyncClient) -> None:
    nina = await create_account(client, "nina", credits=100)
    created = await client.post(
        "/v1/videos/generations", json=SEED_REQUEST, headers=bearer(nina["key"])
    )
    assert created.status_code == 200, created.text

    response = await client.get("/v1/credits", headers=bearer(nina["key"]))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "message", "data"}
    assert body["success"] is True
    assert body["message"] == ""
    assert set(body["data"]) == {"user", "token"}
    user, token = body["data"]["user"], body["data"]["token"]
    assert {"remaining_credits", "used_credits"} <= set(user)
    assert {"remaining_credits", "used_credits", "unlimited_credits"} <= set(token)
    assert user["remaining_credits"] == 100 - SEED_PRICE
    assert user["used_credits"] == 0  # reserved, not yet captured
    assert token["remaining_credits"] == user["remaining_credits"]
    assert token["used_credits"] == 0
    assert isinstance(token["unlimited_credits"], bool)
    for value in (*user.values(), token["remaining_credits"], token["used_credits"]):
        assert isinstance(value, int | float)
        assert not isinstance(value, bool)


async def test_own_ledger_shows_only_the_callers_entries(client: httpx.AsyncClient) -> None:
    olga = await create_account(client, "olga", credits=100)
    pete = await create_account(client, "pete", credits=50)
    task = await client.post(
        "/v1/videos/generations", json=SEED_REQUEST, headers=bearer(olga["key"])
    )
    assert task.status_code == 200, task.text
    task_id = task.json()["id"]

    olgas = await client.get("/v1/ledger", headers=bearer(olga["key"]))
    petes = await client.get("/v1/ledger", headers=bearer(pete["key"]))

    assert olgas.status_code == 200
    assert petes.status_code == 200
    olga_entries = olgas.json()["data"]
    assert [(e["kind"], e["task_id"], e["amount"]) for e in olga_entries] == [
        ("reserve", task_id, -SEED_PRICE),
        ("topup", None, 100),
    ]
    pete_entries = petes.json()["data"]
    assert task_id not in {e["task_id"] for e in pete_entries}
    assert [(e["kind"], e["amount"]) for e in pete_entries] == [("topup", 50)]
    assert not {e["id"] for e in olga_entries} & {e["id"] for e in pete_entries}


async def test_balances_stay_in_exact_range(client: httpx.AsyncClient) -> None:
    for _ in range(100):
        response = await client.post("/admin/accounts/admin/topup", json={"credits": "1000000000"})
        if response.status_code != 200:
            break
    else:
        raise AssertionError("a balance grew past the exact range without a refusal")
    assert_error(response, 400, "invalid_request", "credits")
    balance = (await client.get("/admin/accounts/admin")).json()["balance"]
    assert balance == int(balance)  # still a whole, exact number, not a float that drifted
