"""HEAD on a download link, trailing slashes and odd methods on the real server, over raw
sockets: what the HTTP server itself puts on the wire, which an in-process client cannot see."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from support import ServerProcess
from vidgate.services import open_services
from vidgate.settings import Settings

WAIT = 20.0  # a bound on each read, so a server that never answers fails instead of hanging
KEY = "results/task-unified-1-wirehead.mp4"
SIZE = 5000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = Path(tmp_path_factory.mktemp("http-surface")) / "data"
    with ServerProcess(data, {"VIDGATE_WORKERS": "0"}) as process:
        yield process


def signed_link(server: ServerProcess) -> str:
    """A stored file and its signed path, made through the server's own database and files."""

    async def make() -> str:
        services = await open_services(
            Settings(data_dir=server.data_dir, workers=0, public_url=server.url)
        )
        try:
            services.files.put_bytes(KEY, b"v" * SIZE)
            url = services.signer.sign(KEY, expires=int(time.time()) + 600)
        finally:
            await services.close()
        parts = urlsplit(url)
        return f"{parts.path}?{parts.query}"

    return asyncio.run(make())


def exchange(server: ServerProcess, *requests: bytes) -> bytes:
    """Send the requests on one keep-alive connection; everything the server wrote until it
    answered the last one (the last must be ``GET /healthz``, whose body ends in ``"ok"}``)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(b"".join(requests))
        received = b""
        while received.count(b"HTTP/1.1 ") < len(requests) or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def request(method: str, target: str, *extra: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *extra, "", ""]
    return "\r\n".join(lines).encode()


HEALTH = request("GET", "/healthz")


def heads(wire: bytes) -> list[str]:
    """The response heads on the wire, in order (each up to its blank line)."""
    found = []
    for part in wire.split(b"HTTP/1.1 ")[1:]:
        found.append(part.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower())
    return found


def test_head_sends_gets_headers_and_no_body_on_a_kept_alive_connection(
    server: ServerProcess,
) -> None:
    link = signed_link(server)
    wire = exchange(
        server,
        request("HEAD", link),
        request("HEAD", link, "Range: bytes=10-19"),
        HEALTH,
    )
    whole, ranged, health = heads(wire)
    assert whole.startswith("200 ")
    assert f"content-length: {SIZE}" in whole
    assert "accept-ranges: bytes" in whole
    assert "etag: " in whole
    assert ranged.startswith("206 ")
    assert "content-length: 10" in ranged
    assert f"content-range: bytes 10-19/{SIZE}" in ranged
    # No body bytes after either HEAD: the next answer's status line follows its head at once.
    first_end = wire.index(b"\r\n\r\n") + 4
    assert wire[first_end:].startswith(b"HTTP/1.1 206 ")
    assert b"v" * 10 not in wire
    assert health.startswith("200 ")


def test_a_bad_signature_is_403_for_head_too(server: ServerProcess) -> None:
    link = signed_link(server).replace("signature=", "signature=0")
    refused, health = heads(exchange(server, request("HEAD", link), HEALTH))
    assert refused.startswith("403 ")
    assert "x-content-type-options: nosniff" in refused
    assert health.startswith("200 ")


def test_a_trailing_slash_gets_no_redirect_whatever_the_host(server: ServerProcess) -> None:
    wire = exchange(
        server,
        b"GET /v1/models/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        HEALTH,
    )
    answer, _ = heads(wire)
    assert answer.startswith("404 ")
    assert "location:" not in answer
    assert b"evil.example" not in wire


def test_a_wrong_method_is_405_with_the_whole_allow(server: ServerProcess) -> None:
    answer, _ = heads(exchange(server, request("DELETE", "/v1/keys"), HEALTH))
    assert answer.startswith("405 ")
    assert "allow: get, post" in answer
