"""The JSON body cap (an ASGI middleware, driven here by hand) and strict JSON parsing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from vidgate.api.bodies import MAX_DEPTH, BodyLimit, parse_object, takes_files
from vidgate.errors import InvalidRequest

CAP = 1000


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body like a JSON route, then answers with its size."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


class Exchange:
    """One request through BodyLimit(reading_app): the chunks it pulled and what it answered."""

    def __init__(self, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> None:
        self.chunks = chunks
        self.headers = headers
        self.pulled = 0
        self.sent: list[Message] = []

    async def run(self, path: str = "/v1/videos/generations", method: str = "POST") -> None:
        async def receive() -> Message:
            index = self.pulled
            self.pulled += 1
            more = index + 1 < len(self.chunks)
            return {"type": "http.request", "body": self.chunks[index], "more_body": more}

        async def send(message: Message) -> None:
            self.sent.append(message)

        scope: dict[str, Any] = {
            "type": "http",
            "method": method,
            "path": path,
            "headers": self.headers,
        }
        await BodyLimit(reading_app, max_bytes=CAP)(scope, receive, send)

    @property
    def status(self) -> int:
        [start] = [m for m in self.sent if m["type"] == "http.response.start"]
        status: int = start["status"]
        return status

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    exchange = Exchange([b"x" * 600] * 4, [(b"content-length", b"2400")])
    asyncio.run(exchange.run())
    assert exchange.status == 413
    assert exchange.pulled == 0
    error = json.loads(exchange.body)["error"]
    assert error["code"] == "request_too_large"
    assert error["type"] == "request_too_large_error"
    assert "1000 bytes" in error["message"]


def test_a_chunked_body_is_cut_off_at_the_first_chunk_past_the_cap() -> None:
    exchange = Exchange([b"x" * 300] * 100, [(b"transfer-encoding", b"chunked")])
    asyncio.run(exchange.run())
    assert exchange.status == 413
    assert exchange.pulled == 4  # 1200 bytes: the fourth chunk passed the cap
    assert json.loads(exchange.body)["error"]["code"] == "request_too_large"


def test_a_body_at_the_cap_goes_through() -> None:
    exchange = Exchange([b"x" * 500, b"x" * 500], [(b"content-length", b"1000")])
    asyncio.run(exchange.run())
    assert (exchange.status, exchange.body) == (200, b"1000")


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/v1/files"), ("PUT", "/worker/v1/tasks/task-unified-1-a/result")]
)
def test_routes_that_take_files_keep_their_own_caps(method: str, path: str) -> None:
    assert takes_files(method, path)
    exchange = Exchange([b"x" * 600] * 4, [(b"content-length", b"2400")])
    asyncio.run(exchange.run(path, method))
    assert (exchange.status, exchange.body) == (200, b"2400")


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/v1/files"), ("POST", "/v1/files/x"), ("POST", "/worker/v1/tasks/a/result")],
)
def test_only_those_routes_are_exempt(method: str, path: str) -> None:
    assert not takes_files(method, path)


@pytest.mark.parametrize(
    ("raw", "param", "fragment"),
    [
        (b'{"prompt": "a\\ud800"}', "prompt", "lone surrogate"),
        (b'{"image_urls": ["http://x/\\udfff"]}', "image_urls", "image_urls[0]"),
        (b'{"\\ud800": 1}', "\\ud800", "field name"),
        ('{"prompt": "a\ud800"}'.encode("utf-8", "surrogatepass"), "prompt", "lone surrogate"),
        (b'{"x": NaN}', "x", "NaN"),
        (b'{"x": {"y": [1, Infinity]}}', "x", "x.y[1] is Infinity"),
        (b'{"x": -Infinity}', "x", "-Infinity"),
        (b'{"x": 1e999}', "x", "64-bit floating-point"),
        (b'{"x": -1e999}', "x", "64-bit floating-point"),
        (b'{"x": ' + b"9" * 5000 + b"}", "x", "5000 digits"),
        (b'{"x": 9223372036854775808}', "x", "64-bit range"),
        (b'{"x": -9223372036854775809}', "x", "64-bit range"),
        (b'{"x": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}", "x", "nested"),
    ],
)
def test_what_json_cannot_carry_is_refused_naming_the_field(
    raw: bytes, param: str, fragment: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_object(raw)
    assert raised.value.param == param
    assert fragment in raised.value.message
    raised.value.message.encode("utf-8")  # the message itself is valid text


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested"),  # the reader's own recursion limit
        (b'{"a": 1', "not valid JSON"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"[1]", "JSON object"),
        (b"NaN", "JSON object"),
    ],
)
def test_bodies_that_are_not_an_object_are_refused(raw: bytes, fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=fragment):
        parse_object(raw)


def test_representable_values_pass_unchanged() -> None:
    nested: Any = "deep"
    for _ in range(MAX_DEPTH - 1):
        nested = [nested]
    document = {
        "big": 2**63 - 1,
        "small": -(2**63),
        "float": 1.5e308,
        "tiny": 1e-999,  # underflows to 0.0, which JSON carries
        "text": "emoji \U0001f3b9 and \u00e9",
        "nested": nested,
    }
    parsed = parse_object(json.dumps(document).encode())
    assert parsed == {**document, "tiny": 0.0}
