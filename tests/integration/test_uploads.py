"""``POST /v1/files``: uploads usable in ``image_urls`` without hosting them anywhere."""

from __future__ import annotations

import io
import os

import httpx
from PIL import Image

from support import ADMIN_KEY, assert_error, image_bytes, structured_image
from vidgate.services import Services

PNG = image_bytes(structured_image(320, 180, seed=7))


async def upload(
    client: httpx.AsyncClient, data: bytes, name: str = "first.png", mime: str = "image/png"
) -> httpx.Response:
    return await client.post("/v1/files", files={"file": (name, data, mime)})


async def test_upload_answers_a_signed_url_that_serves_the_same_bytes(
    client: httpx.AsyncClient, services: Services
) -> None:
    now = services.clock()
    response = await upload(client, PNG)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "file"
    assert body["id"].startswith("file-")
    assert len(body["id"]) == 29
    assert body["filename"] == "first.png"
    assert body["bytes"] == len(PNG)
    assert (body["content_type"], body["width"], body["height"]) == ("image/png", 320, 180)
    # Valid at least a day, at most a day and an hour (the expiry is rounded up to the hour).
    assert now + 24 * 3600 <= body["expires_at"] <= now + 25 * 3600
    assert body["url"].startswith("http://testserver/files/uploads/")
    served = await client.get(body["url"].removeprefix("http://testserver"))
    assert served.status_code == 200
    assert served.content == PNG
    assert served.headers["content-type"] == "image/png"


async def test_an_uploaded_image_is_used_in_image_urls_without_a_network_fetch(
    client: httpx.AsyncClient, services: Services
) -> None:
    # The egress allow-list holds only the tests' static server: "testserver" is not even a
    # resolvable host, so the create can only succeed by reading the upload from the store.
    url = (await upload(client, PNG)).json()["url"]
    created = await client.post(
        "/v1/videos/generations",
        json={"model": "veo3.1-fast", "prompt": "a harbour at dawn", "image_urls": [url]},
    )
    assert created.status_code == 200, created.text
    admin = await services.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    task = await services.tasks.get(admin, created.json()["id"])
    [key] = task.image_keys
    assert key.startswith(f"inputs/{task.id}/")
    stored = services.files.read_bytes(key)
    assert stored is not None
    assert stored == PNG


async def test_a_tampered_upload_link_is_refused_by_the_create(client: httpx.AsyncClient) -> None:
    url = (await upload(client, PNG)).json()["url"]
    tampered = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    response = await client.post(
        "/v1/videos/generations",
        json={"model": "veo3.1-fast", "prompt": "a harbour", "image_urls": [tampered]},
    )
    error = assert_error(response, 400, "invalid_request", "image_urls")
    assert "signature" in error["message"]


async def test_an_expired_upload_is_refused_and_then_purged(
    client: httpx.AsyncClient, services: Services
) -> None:
    body = (await upload(client, PNG)).json()
    key = body["url"].split("/files/", 1)[1].split("?", 1)[0]
    assert services.files.read_bytes(key) is not None
    later = body["expires_at"] + 1
    services.uploads.clock = lambda: later
    response = await client.post(
        "/v1/videos/generations",
        json={"model": "veo3.1-fast", "prompt": "a harbour", "image_urls": [body["url"]]},
    )
    error = assert_error(response, 400, "invalid_request", "image_urls")
    assert "expired" in error["message"]
    assert await services.uploads.purge_expired() > 0
    assert services.files.read_bytes(key) is None


async def test_a_fresh_upload_survives_the_purge(
    client: httpx.AsyncClient, services: Services
) -> None:
    body = (await upload(client, PNG)).json()
    key = body["url"].split("/files/", 1)[1].split("?", 1)[0]
    await services.uploads.purge_expired()
    assert services.files.read_bytes(key) is not None


async def test_not_an_image_is_refused_naming_what_it_is(client: httpx.AsyncClient) -> None:
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    response = await upload(client, gif.getvalue(), "cat.png", "image/png")
    error = assert_error(response, 400, "invalid_request", "file")
    assert "GIF" in error["message"]


async def test_an_animated_image_is_refused(client: httpx.AsyncClient) -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in ("red", "blue")]
    data = io.BytesIO()
    frames[0].save(data, format="PNG", save_all=True, append_images=frames[1:])
    error = assert_error(await upload(client, data.getvalue()), 400, "invalid_request", "file")
    assert "animated" in error["message"]


async def test_an_upload_over_10_mb_is_413(client: httpx.AsyncClient) -> None:
    big = PNG + os.urandom(10 * 1024 * 1024)
    assert_error(await upload(client, big), 413, "request_too_large", "file")


async def test_an_empty_file_and_a_form_without_a_file_are_400(
    client: httpx.AsyncClient,
) -> None:
    assert_error(await upload(client, b""), 400, "invalid_request", "file")
    no_file = await client.post("/v1/files", data={"name": "x"}, files={"other": ("a", b"b")})
    assert_error(no_file, 400, "invalid_request", "file")
    not_multipart = await client.post("/v1/files", json={"file": "x"})
    assert_error(not_multipart, 400, "invalid_request", "file")


async def test_uploading_needs_an_api_key(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/files",
        files={"file": ("a.png", PNG, "image/png")},
        headers={"Authorization": "Bearer sk-nope"},
    )
    assert_error(response, 401, "unauthorized")
