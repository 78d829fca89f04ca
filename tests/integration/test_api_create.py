"""The create and query API through httpx against the app, on a real SQLite file per test."""

from __future__ import annotations

import re

import httpx
import pytest

from support import ADMIN_KEY, StaticServer, assert_error, image_bytes, structured_image
from vidgate.services import Services
from vidgate.store.ledger_rows import balance_cents

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}


async def test_seed_request_creates_a_pending_task(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/videos/generations", json=SEED_REQUEST)
    assert response.status_code == 200, response.text
    task = response.json()
    assert re.fullmatch(r"task-unified-\d{10}-[a-z0-9]{8}", task["id"])
    assert str(task["created"]) in task["id"]
    assert task["model"] == "veo3.1-fast"
    assert task["object"] == "video.generation.task"
    assert task["progress"] == 0
    assert task["status"] == "pending"
    assert task["type"] == "video"
    assert task["task_info"]["can_cancel"] is True
    assert task["task_info"]["video_duration"] == 8
    assert task["task_info"]["estimated_time"] > 0
    assert task["usage"] == {
        "billing_rule": "per_call",
        "credits_reserved": 25.7,
        "user_group": "default",
    }
    fetched = await client.get(f"/v1/tasks/{task['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == task


async def test_alias_resolves_to_its_model(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/videos/generations", json={**SEED_REQUEST, "model": "veo3.1-fast-beta"}
    )
    assert response.status_code == 200
    assert response.json()["model"] == "veo3.1-fast"


async def test_creating_reserves_credits(client: httpx.AsyncClient, services: Services) -> None:
    async with services.db.read() as conn:
        before = await balance_cents(conn, "")  # no such account: zero
        assert before == 0
    admin = await services.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    async with services.db.read() as conn:
        start = await balance_cents(conn, admin.account_id)
    await client.post("/v1/videos/generations", json=SEED_REQUEST)
    async with services.db.read() as conn:
        assert await balance_cents(conn, admin.account_id) == start - 2570


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"prompt": "x"}, "model", "required"),
        ({"model": "veo9", "prompt": "x"}, "model", "not served"),
        ({"model": 3, "prompt": "x"}, "model", "string"),
        ({"model": "veo3.1-fast"}, "prompt", "required"),
        ({"model": "veo3.1-fast", "prompt": "   "}, "prompt", "blank"),
        ({"model": "veo3.1-fast", "prompt": "x" * 1001}, "prompt", "1001"),
        ({"model": "veo3.1-fast", "prompt": "x", "aspect_ratio": "4:3"}, "aspect_ratio", "4:3"),
        ({"model": "veo3.1-fast", "prompt": "x", "image_urls": "http://a/b.png"}, "image_urls", ""),
        (
            {"model": "veo3.1-fast", "prompt": "x", "image_urls": ["https://a/1.png"] * 3},
            "image_urls",
            "at most 2",
        ),
        (
            {"model": "veo3.1-fast", "prompt": "x", "image_urls": ["ftp://a/1.png"]},
            "image_urls",
            "http",
        ),
        (
            {"model": "veo3.1-fast", "prompt": "x", "callback_url": "http://example.com/h"},
            "callback_url",
            "https",
        ),
        (
            {
                "model": "veo3.1-fast",
                "prompt": "x",
                "callback_url": "https://example.com/" + "a" * 2029,
            },
            "callback_url",
            "2049",
        ),
        (
            {"model": "veo3.1-fast", "prompt": "x", "callback_url": "https://127.0.0.1/h"},
            "callback_url",
            "loopback",
        ),
        (
            {"model": "veo3.1-fast", "prompt": "x", "generation_type": "FIRST&LAST"},
            "generation_type",
            "image",
        ),
        (
            {"model": "veo3.1-fast", "prompt": "x", "generation_type": "SOMETHING"},
            "generation_type",
            "SOMETHING",
        ),
        ({"model": "veo3.1-fast", "prompt": "x", "quality": "4k"}, "quality", "4k"),
    ],
)
async def test_each_rule_refuses_with_its_param(
    client: httpx.AsyncClient, services: Services, body: dict, param: str, fragment: str
) -> None:
    response = await client.post("/v1/videos/generations", json=body)
    error = assert_error(response, 400, "invalid_request", param)
    assert fragment in error["message"]
    listed = await client.get("/v1/models")
    assert listed.status_code == 200
    async with services.db.read() as conn:
        from sqlalchemy import func, select

        from vidgate.store.tables import tasks

        assert (await conn.execute(select(func.count()).select_from(tasks))).scalar() == 0


async def test_unknown_fields_are_accepted_and_recorded(
    client: httpx.AsyncClient, services: Services
) -> None:
    response = await client.post(
        "/v1/videos/generations",
        json={**SEED_REQUEST, "enhance_prompt": True, "seed": 42, "aspect_ratio": "9:16"},
    )
    assert response.status_code == 200
    admin = await services.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    task = await services.tasks.get(admin, response.json()["id"])
    assert task.extra == {"seed": 42, "enhance_prompt": True}
    assert task.aspect_ratio == "9:16"


async def test_malformed_json_is_a_400_envelope(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/videos/generations",
        content=b'{"model": "veo3.1-fast", ',
        headers={"Content-Type": "application/json"},
    )
    error = assert_error(response, 400, "invalid_request")
    assert "JSON" in error["message"]


async def test_a_body_that_is_not_an_object_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/videos/generations", json=["veo3.1-fast"])
    assert_error(response, 400, "invalid_request")


async def test_unknown_route_and_wrong_method_use_the_envelope(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(await client.delete("/v1/videos/generations"), 405, "method_not_allowed")


async def test_missing_and_bad_keys_are_401(client: httpx.AsyncClient) -> None:
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer sk-nope"},
        {"Authorization": "Basic abc"},
    ):
        response = await client.post("/v1/videos/generations", json=SEED_REQUEST, headers=headers)
        assert_error(response, 401, "unauthorized")
    response = await client.get("/v1/tasks/task-unified-1-abcdefgh", headers={"Authorization": ""})
    assert_error(response, 401, "unauthorized")


async def test_task_ids_are_checked(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/tasks/abc"), 400, "invalid_task_id")
    assert_error(
        await client.get("/v1/tasks/task-unified-1757169743-zzzzzzzz"), 404, "task_not_found"
    )


async def test_another_accounts_task_is_not_found(
    client: httpx.AsyncClient, services: Services
) -> None:
    created = (await client.post("/v1/videos/generations", json=SEED_REQUEST)).json()
    other = await services.accounts.create_account("other")
    response = await client.get(
        f"/v1/tasks/{created['id']}", headers={"Authorization": f"Bearer {other.key}"}
    )
    error = assert_error(response, 404, "task_not_found")
    assert created["id"] in error["message"]


async def test_short_balance_is_402_and_creates_nothing(
    client: httpx.AsyncClient, services: Services
) -> None:
    poor = await services.accounts.create_account("poor")
    response = await client.post(
        "/v1/videos/generations",
        json=SEED_REQUEST,
        headers={"Authorization": f"Bearer {poor.key}"},
    )
    assert_error(response, 402, "insufficient_quota")


async def test_models_lists_the_preview_engine(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models")
    assert response.status_code == 200
    [model] = response.json()["data"]
    assert model["id"] == "veo3.1-fast"
    assert model["engine"] == "preview"
    assert "veo3.1-fast-beta" in model["aliases"]
    assert "preview" in model["description"]


async def test_one_image_is_fetched_and_stored(
    client: httpx.AsyncClient, services: Services, static_server: StaticServer
) -> None:
    png = image_bytes(structured_image(320, 480, seed=1))
    url = static_server.add("/first.png", png, content_type="image/png")
    response = await client.post(
        "/v1/videos/generations", json={**SEED_REQUEST, "image_urls": [url], "aspect_ratio": "auto"}
    )
    assert response.status_code == 200, response.text
    admin = await services.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    task = await services.tasks.get(admin, response.json()["id"])
    assert task.aspect_ratio == "9:16"  # auto: the first image is portrait
    [key] = task.image_keys
    stored = services.files.path(key)
    assert stored is not None
    assert stored.read_bytes() == png


async def test_image_failures_name_the_url(
    client: httpx.AsyncClient, static_server: StaticServer
) -> None:
    page = static_server.add("/page.png", b"<html>hello</html>", content_type="image/png")
    missing = static_server.base_url + "/missing.png"
    for urls, fragment in (([page], "page.png"), ([missing], "404")):
        response = await client.post(
            "/v1/videos/generations", json={**SEED_REQUEST, "image_urls": urls}
        )
        error = assert_error(response, 400, "invalid_request", "image_urls")
        assert fragment in error["message"]
        assert "image_urls[0]" in error["message"]


async def test_an_image_over_10_mb_is_413(
    client: httpx.AsyncClient, static_server: StaticServer
) -> None:
    url = static_server.add("/huge.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024 + 10))
    response = await client.post(
        "/v1/videos/generations", json={**SEED_REQUEST, "image_urls": [url]}
    )
    assert_error(response, 413, "request_too_large", "image_urls")


async def test_loopback_images_are_refused_without_the_allow_list(
    client: httpx.AsyncClient, static_server: StaticServer
) -> None:
    png = image_bytes(structured_image(64, 64, seed=2))
    static_server.add("/x.png", png)
    other_port_url = (
        f"http://127.0.0.1:{static_server.port + 1 if static_server.port < 65535 else 1}/x.png"
    )
    response = await client.post(
        "/v1/videos/generations", json={**SEED_REQUEST, "image_urls": [other_port_url]}
    )
    error = assert_error(response, 400, "invalid_request", "image_urls")
    assert "loopback" in error["message"]
