"""Hostile create bodies and links against the app: capped, parsed strictly, never a 500.

Each test runs on SQLite and on PostgreSQL (whose JSON types refuse NaN, Infinity and lone
surrogates that SQLite would store).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from support import (
    ADMIN_KEY,
    StaticServer,
    admin_services,
    asgi_client,
    assert_error,
    free_port,
)
from vidgate.errors import ServiceUnavailable
from vidgate.media.s3 import S3FileStore
from vidgate.services import Services
from vidgate.settings import Settings
from vidgate.store.tables import tasks

CREATE = "/v1/videos/generations"
SEED = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}
MIB = 1024 * 1024


async def task_count(services: Services) -> int:
    async with services.db.read() as conn:
        count: int = (await conn.execute(select(func.count()).select_from(tasks))).scalar_one()
        return count


async def post_raw(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        CREATE, content=body, headers={"Content-Type": "application/json", **(headers or {})}
    )


class Chunks:
    """A chunked (length-less) request body of valid JSON, counting what the server pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.head = b'{"model": "veo3.1-fast", "prompt": "a", "padding": "'
        self.tail = b'"}'
        self.total = total
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.pulled += len(self.head)
        yield self.head
        while self.pulled < self.total:
            self.pulled += self.chunk
            yield b"a" * self.chunk
        self.pulled += len(self.tail)
        yield self.tail


# --- the body cap -------------------------------------------------------------------------


async def test_a_body_over_1_mib_is_413_and_stores_nothing(
    client: httpx.AsyncClient, services: Services
) -> None:
    body = json.dumps({**SEED, "padding": "a" * MIB}).encode()
    response = await post_raw(client, body)
    error = assert_error(response, 413, "request_too_large")
    assert error["type"] == "request_too_large_error"
    assert "1 MiB" in error["message"]
    assert await task_count(services) == 0


async def test_a_chunked_body_is_cut_off_just_past_the_cap(
    client: httpx.AsyncClient, services: Services
) -> None:
    body = Chunks(total=20 * MIB)
    response = await client.post(CREATE, content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "request_too_large")
    # Reading stopped at the first chunk past the cap, not at the end of the 20 MiB.
    assert body.pulled <= MIB + 2 * body.chunk
    assert await task_count(services) == 0


async def test_a_body_just_under_the_cap_is_parsed(client: httpx.AsyncClient) -> None:
    # Past the 16 KiB bound of unknown fields, so a 400 that proves it was read and parsed.
    body = json.dumps({**SEED, "padding": "a" * (MIB - 200)}).encode()
    assert len(body) <= MIB
    assert_error(await post_raw(client, body), 400, "invalid_request", "padding")


async def test_the_cap_is_the_max_body_bytes_setting(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 4096})
    async with admin_services(small) as services, asgi_client(services) as client:
        refused = await client.post(CREATE, json={**SEED, "seed": "x" * 4096})
        error = assert_error(refused, 413, "request_too_large")
        assert "4 KiB (4096 bytes)" in error["message"]
        accepted = await client.post(CREATE, json={**SEED, "seed": "x" * 3000})
        assert accepted.status_code == 200, accepted.text


async def test_other_json_routes_are_capped_too(client: httpx.AsyncClient) -> None:
    body = json.dumps({"name": "k" * (2 * MIB)}).encode()
    response = await client.post("/v1/keys", content=body)
    assert_error(response, 413, "request_too_large")


async def test_an_upload_over_1_mib_keeps_its_10_mb_cap(client: httpx.AsyncClient) -> None:
    # A valid 2.3 MB PNG: noise does not compress.
    import numpy as np
    from PIL import Image

    from support import image_bytes

    pixels = np.random.default_rng(3).integers(0, 256, (900, 900, 3), dtype=np.uint8)
    png = image_bytes(Image.fromarray(pixels, "RGB"))
    assert len(png) > 2 * MIB
    response = await client.post("/v1/files", files={"file": ("big.png", png, "image/png")})
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == len(png)


async def test_a_worker_result_over_1_mib_keeps_its_own_cap(client: httpx.AsyncClient) -> None:
    made = await client.post("/admin/worker-tokens", json={"name": "gpu-body-cap"})
    assert made.status_code == 200, made.text
    worker = {"Authorization": f"Bearer {made.json()['token']}"}
    task_id = (await client.post(CREATE, json=SEED)).json()["id"]
    claimed = await client.post(
        "/worker/v1/claim",
        json={"worker": "w0", "models": ["veo3.1-fast"], "wait": 0},
        headers=worker,
    )
    assert claimed.status_code == 200, claimed.text
    attempt = claimed.json()["task"]["attempt"]
    # Read whole (2 MiB), then refused as what it is: not a video, rather than too large.
    response = await client.put(
        f"/worker/v1/tasks/{task_id}/result?attempt={attempt}",
        content=b"\x00" * (2 * MIB),
        headers=worker,
    )
    error = assert_error(response, 400, "invalid_request")
    assert "video" in error["message"]


# --- the key before the body --------------------------------------------------------------


async def test_a_create_without_a_valid_key_is_401_without_reading_the_body(
    services: Services,
) -> None:
    for key in (None, "sk-not-a-key"):
        body = Chunks(total=512 * 1024)
        async with asgi_client(services, key=key) as client:
            response = await client.post(
                CREATE, content=body, headers={"Content-Type": "application/json"}
            )
        assert_error(response, 401, "unauthorized")
        assert body.pulled == 0


# --- unknown fields, bounded --------------------------------------------------------------


async def test_unknown_fields_within_16_kib_are_recorded(
    client: httpx.AsyncClient, services: Services
) -> None:
    extra = {"seed": 7, "style": "s" * 15000, "nested": {"a": [1, 2.5, None, True]}}
    response = await client.post(CREATE, json={**SEED, **extra})
    assert response.status_code == 200, response.text
    admin = await services.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    task = await services.tasks.get(admin, response.json()["id"])
    assert task.extra == extra


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"huge": "x" * (50 * 1024)}, "huge"),
        ({"a": "x" * 6000, "b": "x" * 7000, "c": "x" * 5000}, "b"),
        ({f"f{index}": index for index in range(3000)}, None),
    ],
)
async def test_unknown_fields_past_16_kib_are_400_naming_the_field(
    client: httpx.AsyncClient, services: Services, extra: dict[str, Any], param: str | None
) -> None:
    response = await client.post(CREATE, json={**SEED, **extra})
    error = assert_error(response, 400, "invalid_request", param)
    assert error["param"] in extra
    assert "16384 bytes" in error["message"]
    assert await task_count(services) == 0


# --- lone surrogates ----------------------------------------------------------------------

LONE = "\\ud800"  # as the JSON escape: json.loads makes it a str that UTF-8 cannot encode


@pytest.mark.parametrize(
    ("body", "headers", "param"),
    [
        (f'{{"model": "veo3.1-fast", "prompt": "a{LONE}"}}', {}, "prompt"),
        (
            f'{{"model": "veo3.1-fast", "prompt": "a", "image_urls": ["http://x/{LONE}"]}}',
            {},
            "image_urls",
        ),
        (
            f'{{"model": "veo3.1-fast", "prompt": "a", "callback_url": "https://x/{LONE}"}}',
            {},
            "callback_url",
        ),
        (
            f'{{"model": "veo3.1-fast", "prompt": "a", "note": "{LONE}"}}',
            {"Idempotency-Key": "surrogate-1"},
            "note",
        ),
        (
            f'{{"model": "veo3.1-fast", "prompt": "a{LONE}"}}',
            {"Idempotency-Key": "surrogate-2"},
            "prompt",
        ),
        (f'{{"model": "veo3.1-fast", "prompt": "a", "note": "{LONE}"}}', {}, "note"),
        (f'{{"model": "veo3.1-fast", "prompt": "a", "deep": [{{"x": "{LONE}"}}]}}', {}, "deep"),
        (f'{{"model": "veo3.1-fast", "prompt": "a", "{LONE}": 1}}', {}, "\\ud800"),
        (f'{{"model": "veo3.1-fast", "prompt": "a", "aspect_ratio": "{LONE}"}}', {}, None),
        (f'{{"model": "{LONE}", "prompt": "a"}}', {}, "model"),
        (f'{{"model": "veo3.1-fast", "prompt": "a", "quality": "{LONE}"}}', {}, "quality"),
        (
            f'{{"model": "veo3.1-fast", "prompt": "a", "generation_type": "{LONE}"}}',
            {},
            "generation_type",
        ),
        (
            f'{{"model": "veo3.1-fast", "prompt": "a", "enhance_prompt": "{LONE}"}}',
            {},
            "enhance_prompt",
        ),
    ],
)
async def test_a_lone_surrogate_anywhere_is_a_400(
    client: httpx.AsyncClient,
    services: Services,
    body: str,
    headers: dict[str, str],
    param: str | None,
) -> None:
    response = await post_raw(client, body.encode(), headers)
    error = assert_error(response, 400, "invalid_request", param)
    assert "surrogate" in error["message"]
    assert await task_count(services) == 0


async def test_a_surrogate_encoded_as_utf_8_bytes_is_a_400(
    client: httpx.AsyncClient, services: Services
) -> None:
    body = '{"model": "veo3.1-fast", "prompt": "a\ud800"}'.encode("utf-8", "surrogatepass")
    assert_error(await post_raw(client, body), 400, "invalid_request", "prompt")
    assert await task_count(services) == 0


async def test_a_refused_body_frees_its_idempotency_key(client: httpx.AsyncClient) -> None:
    bad = f'{{"model": "veo3.1-fast", "prompt": "a{LONE}"}}'.encode()
    headers = {"Idempotency-Key": "reused-after-400"}
    assert_error(await post_raw(client, bad, headers), 400, "invalid_request", "prompt")
    good = await client.post(CREATE, json=SEED, headers=headers)
    assert good.status_code == 200, good.text


# --- numbers JSON cannot carry ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fragment", "param"),
    [
        ('"seed": NaN', "seed"),
        ('"seed": Infinity', "seed"),
        ('"seed": -Infinity', "seed"),
        ('"seed": 1e999', "seed"),
        ('"options": {"scale": [1, -1e999]}', "options"),
        ('"options": {"n": ' + "7" * 5000 + "}", "options"),
        ('"seed": ' + "9" * 5000, "seed"),
        ('"seed": 18446744073709551616', "seed"),
        ('"enhance_prompt": NaN', "enhance_prompt"),
        ('"quality": Infinity', "quality"),
        ('"image_urls": [NaN]', "image_urls"),
    ],
)
async def test_nan_infinity_and_huge_numbers_are_a_400(
    client: httpx.AsyncClient, services: Services, fragment: str, param: str
) -> None:
    body = f'{{"model": "veo3.1-fast", "prompt": "a", {fragment}}}'.encode()
    error = assert_error(await post_raw(client, body), 400, "invalid_request", param)
    assert "Traceback" not in error["message"]
    assert await task_count(services) == 0


async def test_numbers_json_carries_are_recorded_as_sent(
    client: httpx.AsyncClient, services: Services
) -> None:
    extra = {"seed": 2**63 - 1, "low": -(2**63), "scale": 1.5e308, "ratio": 0.25}
    response = await client.post(CREATE, json={**SEED, **extra})
    assert response.status_code == 200, response.text
    admin = await services.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    task = await services.tasks.get(admin, response.json()["id"])
    assert task.extra == extra


# --- Cancel-After -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["1_0", "nan", "inf", "Infinity", " 10", "10 ", "+10", "-10", "1e3", "0x10", "²", ""]
)
async def test_cancel_after_takes_plain_decimal_numbers_only(
    client: httpx.AsyncClient, services: Services, value: str
) -> None:
    headers = {"Cancel-After": value.encode("latin-1")}  # as the server decodes headers
    response = await client.post(CREATE, json=SEED, headers=headers)
    assert_error(response, 400, "invalid_request", "Cancel-After")
    assert await task_count(services) == 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10", 10.0), ("1.5", 1.5), ("0010", 10.0), ("1.0000000000", 1.0), ("604800", 604800.0)],
)
async def test_cancel_after_in_plain_decimals_sets_the_deadline(
    client: httpx.AsyncClient, services: Services, value: str, seconds: float
) -> None:
    response = await client.post(CREATE, json=SEED, headers={"Cancel-After": value})
    assert response.status_code == 200, response.text
    admin = await services.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    task = await services.tasks.get(admin, response.json()["id"])
    assert task.deadline_at == pytest.approx(task.created_at + seconds)


# --- link expiries ------------------------------------------------------------------------

BAD_QUERIES = [
    "expires=%C2%B2&signature=" + "0" * 64,  # "²": isdigit() but not int()
    "expires=" + "9" * 5000 + "&signature=" + "0" * 64,  # past int()'s 4300 digits
    "expires=99999999999&signature=%C3%A9",  # compare_digest refuses non-ASCII strings
]


@pytest.mark.parametrize("query", BAD_QUERIES)
async def test_a_files_link_with_a_bad_expiry_or_signature_is_403(
    client: httpx.AsyncClient, query: str
) -> None:
    response = await client.get(f"/files/results/task-unified-1-abcdefgh.mp4?{query}")
    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("query", BAD_QUERIES)
async def test_an_upload_link_with_a_bad_expiry_in_image_urls_is_400(
    client: httpx.AsyncClient, services: Services, query: str
) -> None:
    url = f"http://testserver/files/uploads/9999999/file-abc.png?{query}"
    response = await client.post(CREATE, json={**SEED, "image_urls": [url]})
    error = assert_error(response, 400, "invalid_request", "image_urls")
    assert "upload link" in error["message"]
    assert len(error["message"]) < 600
    assert await task_count(services) == 0


# --- messages without library internals or whole URLs ------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A PNG header claiming width x height 1-bit pixels, a few hundred bytes in all."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * (1 + (width + 7) // 8)))
        + _png_chunk(b"IEND", b"")
    )


INTERNALS = ("0x", "BytesIO", "<_io", "Error", "DOS attack", "Traceback", "Exception")


def assert_plain(message: str) -> None:
    for word in INTERNALS:
        assert word not in message, message


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("garbage.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
        ("cut.png", bomb_png(64, 64)[:40]),
        ("bomb.png", bomb_png(20000, 20000)),
    ],
)
async def test_a_broken_or_bomb_image_is_explained_without_pillow_internals(
    client: httpx.AsyncClient, static_server: StaticServer, name: str, data: bytes
) -> None:
    url = static_server.add(f"/{name}", data, content_type="image/png")
    fetched = await client.post(CREATE, json={**SEED, "image_urls": [url]})
    assert_plain(assert_error(fetched, 400, "invalid_request", "image_urls")["message"])
    uploaded = await client.post("/v1/files", files={"file": (name, data, "image/png")})
    assert_plain(assert_error(uploaded, 400, "invalid_request", "file")["message"])


async def test_a_200_kb_image_url_is_not_echoed_whole(
    client: httpx.AsyncClient, static_server: StaticServer
) -> None:
    url = static_server.base_url + "/missing.png?" + "q" * 200_000
    response = await client.post(CREATE, json={**SEED, "image_urls": [url]})
    error = assert_error(response, 400, "invalid_request", "image_urls")
    assert len(error["message"]) < 600
    assert f"({len(url)} characters)" in error["message"]


async def test_a_200_kb_redirect_target_is_not_echoed_whole(
    client: httpx.AsyncClient, static_server: StaticServer
) -> None:
    target = "http://10.0.0.1/" + "r" * 60_000
    static_server.add("/hop.png", b"", status=302)
    static_server.routes["/hop.png"].headers["Location"] = target
    response = await client.post(
        CREATE, json={**SEED, "image_urls": [static_server.base_url + "/hop.png"]}
    )
    error = assert_error(response, 400, "invalid_request", "image_urls")
    assert len(error["message"]) < 800
    assert "characters)" in error["message"]


async def test_connection_failures_are_told_without_httpx_or_openssl_names(
    client: httpx.AsyncClient, static_server: StaticServer
) -> None:
    # TLS to a plain-HTTP server: OpenSSL says WRONG_VERSION_NUMBER.
    tls = f"https://127.0.0.1:{static_server.port}/a.png"
    # Two differing Content-Length headers: httpx raises RemoteProtocolError.
    static_server.add("/framing.png", b"x")
    static_server.routes["/framing.png"].headers["Content-Length"] = "1000"
    framing = static_server.base_url + "/framing.png"
    for url in (tls, framing):
        response = await client.post(CREATE, json={**SEED, "image_urls": [url]})
        message = assert_error(response, 400, "invalid_request", "image_urls")["message"]
        assert_plain(message)
        assert "_" not in message.partition("): ")[2], message


def test_an_unreachable_bucket_is_told_without_botocore_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = S3FileStore(
        "nowhere",
        scratch=tmp_path / "scratch",
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )
    with pytest.raises(ServiceUnavailable) as caught:
        store.put_bytes("uploads/1/a.png", b"x")
    assert caught.value.message == "The file store is unavailable; retry shortly."
    assert endpoint in caplog.text  # the operator still learns what failed
