"""The task object carries its own inputs to its owner: the prompt, the aspect ratio it was made
in, and signed links to the images stored with it (what the dashboard shows to tell tasks apart).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from support import StaticServer, assert_error, image_bytes, structured_image
from vidgate.services import Services

# Every kind of text a prompt may hold, whole: no spaces, CJK, emoji, combining marks, RTL.
PROMPT = ("海辺の灯台🌊 e\u0301 مرحبا " * 63)[:1000]
PORTRAIT = image_bytes(structured_image(180, 320, seed=3))
LANDSCAPE = image_bytes(structured_image(320, 180, seed=4), "JPEG")


def local(url: str) -> str:
    """A link the server handed out, as a path on the in-process app."""
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("http", "testserver"), url
    return f"{parts.path}?{parts.query}"


async def two_image_task(client: httpx.AsyncClient, static_server: StaticServer) -> dict[str, Any]:
    """A task whose first image was uploaded and whose last was fetched, aspect left to auto."""
    uploaded = await client.post("/v1/files", files={"file": ("first.png", PORTRAIT, "image/png")})
    assert uploaded.status_code == 200, uploaded.text
    fetched = static_server.add("/last.jpg", LANDSCAPE, content_type="image/jpeg")
    created = await client.post(
        "/v1/videos/generations",
        json={
            "model": "veo3.1-fast",
            "prompt": PROMPT,
            "aspect_ratio": "auto",
            "image_urls": [uploaded.json()["url"], fetched],
        },
    )
    assert created.status_code == 200, created.text
    body: dict[str, Any] = created.json()
    return body


async def test_the_owner_reads_the_prompt_aspect_and_images_of_a_task(
    client: httpx.AsyncClient, static_server: StaticServer
) -> None:
    created = await two_image_task(client, static_server)
    task = (await client.get(f"/v1/tasks/{created['id']}")).json()
    assert task["prompt"] == PROMPT  # whole, every code point
    assert len(task["prompt"]) == 1000
    assert task["aspect_ratio"] == "9:16"  # auto, resolved from the portrait first image
    assert task["engine"] == "preview"
    assert created["input_images"] == task["input_images"]  # the create answers them too
    first, last = task["input_images"]
    # The links serve the stored images, first frame then last, byte for byte.
    for url, stored, media in ((first, PORTRAIT, "image/png"), (last, LANDSCAPE, "image/jpeg")):
        assert f"/files/inputs/{task['id']}/" in url
        served = await client.get(local(url), headers={"Authorization": ""})
        assert served.status_code == 200, served.text
        assert served.content == stored
        assert served.headers["content-type"] == media


async def test_a_text_task_has_no_images_and_the_default_aspect(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": "A cat playing piano"}
    )
    task = (await client.get(f"/v1/tasks/{created.json()['id']}")).json()
    assert (task["prompt"], task["aspect_ratio"], task["input_images"]) == (
        "A cat playing piano",
        "16:9",
        [],
    )


async def test_the_list_carries_the_same_inputs_as_each_task(
    client: httpx.AsyncClient, static_server: StaticServer
) -> None:
    with_images = await two_image_task(client, static_server)
    text = await client.post(
        "/v1/videos/generations",
        json={"model": "veo3.1-fast", "prompt": "A red fox in snow", "aspect_ratio": "9:16"},
    )
    listed = (await client.get("/v1/tasks", params={"limit": 10})).json()["data"]
    assert [task["id"] for task in listed] == [text.json()["id"], with_images["id"]]
    for task in listed:
        one = (await client.get(f"/v1/tasks/{task['id']}")).json()
        for field in ("prompt", "aspect_ratio", "input_images"):
            assert task[field] == one[field], field
    assert listed[0]["aspect_ratio"] == "9:16"
    assert len(listed[1]["input_images"]) == 2


async def test_another_account_sees_neither_the_task_nor_its_inputs(
    client: httpx.AsyncClient, services: Services, static_server: StaticServer
) -> None:
    created = await two_image_task(client, static_server)
    other = await services.accounts.create_account("other")
    stranger = {"Authorization": f"Bearer {other.key}"}
    error = assert_error(
        await client.get(f"/v1/tasks/{created['id']}", headers=stranger), 404, "task_not_found"
    )
    assert PROMPT[:20] not in error["message"]
    theirs = await client.get("/v1/tasks", headers=stranger)
    assert theirs.status_code == 200
    assert theirs.json()["data"] == []
    # An image link is as good as its signature, like a result link: altered, it is refused.
    first = local(created["input_images"][0])
    forged = first.replace(f"inputs/{created['id']}/0", f"inputs/{created['id']}/1")
    forged = forged.replace(".png", ".jpg")
    assert_error(await client.get(forged), 403, "forbidden")
