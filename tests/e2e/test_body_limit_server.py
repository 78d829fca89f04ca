"""The JSON body cap and the key-before-body order on the real server, over raw sockets.

A raw socket shows what an HTTP client library hides: that the answer arrives while the body
has not been sent (so the server did not wait for it) or is still being sent.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import E2E_KEY, ServerProcess

CREATE = b"POST /v1/videos/generations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
JSON = b"Content-Type: application/json\r\n"
AUTH = f"Authorization: Bearer {E2E_KEY}\r\n".encode()
MIB = 1024 * 1024
# A bound on each wait, so a server that waits for a body that never comes fails the test
# instead of hanging it; nothing here is timed.
WAIT = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = Path(tmp_path_factory.mktemp("body-limit")) / "data"
    with ServerProcess(data, {"VIDGATE_WORKERS": "0"}) as process:
        yield process


def read_status(sock: socket.socket) -> int:
    """The status of the answer on ``sock``, read up to the end of its head."""
    head = b""
    sock.settimeout(WAIT)
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            break
        head += chunk
    assert head.startswith(b"HTTP/1.1 "), head[:200]
    return int(head.split(b" ", 2)[1])


def test_a_declared_length_over_the_cap_is_413_before_the_body_is_sent(
    server: ServerProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(CREATE + AUTH + JSON + b"Content-Length: 200000000\r\n\r\n")
        assert read_status(sock) == 413


def test_a_create_without_a_key_is_401_before_the_body_is_sent(server: ServerProcess) -> None:
    for auth in (b"", b"Authorization: Bearer sk-wrong\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
            sock.sendall(CREATE + auth + JSON + b"Content-Length: 1000\r\n\r\n")
            assert read_status(sock) == 401


def test_a_chunked_body_is_refused_while_it_is_still_being_sent(server: ServerProcess) -> None:
    total = 64 * MIB
    chunk = b"a" * (64 * 1024)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(CREATE + AUTH + JSON + b"Transfer-Encoding: chunked\r\n\r\n")
        start = b'{"model": "veo3.1-fast", "prompt": "a", "x": "'
        sock.sendall(f"{len(start):x}\r\n".encode() + start + b"\r\n")
        answered = False
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], WAIT)
            if readable:
                answered = True
                break
            assert writable, "the server neither read nor answered"
            try:
                sock.sendall(framed)
            except (BrokenPipeError, ConnectionResetError):
                answered = True  # it hung up after answering; the answer is still to read
                break
            sent += len(chunk)
        assert answered, "the whole body was sent before any answer"
        assert read_status(sock) == 413
    # The server stopped reading at the cap; what was sent beyond it sat in socket buffers.
    assert sent < total


def test_a_small_create_still_works(server: ServerProcess) -> None:
    with server.client() as client:
        response = client.post(
            "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": "a cat"}
        )
    assert response.status_code == 200, response.text
