"""The real server against slow and idle clients: a deadline on request heads, idle keep-alive
connections closed, a cap on open connections answered 503, long polls untouched."""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import E2E_KEY, ServerProcess, assert_error, wait_until

HEAD = (
    f"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {E2E_KEY}\r\n\r\n"
).encode()
# Closing is expected within the 1 s head timeout and keep-alive; this bounds a wait on a
# loaded machine, and stays under uvicorn's own 5 s keep-alive default.
CLOSE_WITHIN = 4.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("connections") / "data"
    with ServerProcess(
        data,
        {
            "VIDGATE_WORKERS": "0",  # tasks stay pending: a ?wait= long poll holds its time
            "VIDGATE_HEADER_TIMEOUT_SECONDS": "1",
            "VIDGATE_KEEP_ALIVE_SECONDS": "1",
            "VIDGATE_RATE_LIMIT_PER_MINUTE": "0",
        },
    ) as process:
        yield process


@contextlib.contextmanager
def connection(server: ServerProcess) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        yield sock
    finally:
        sock.close()


def closed_by_server(sock: socket.socket, within: float = CLOSE_WITHIN) -> bytes:
    """Everything the server sent until it closed the connection; fails if it is still open
    after ``within`` seconds."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open; it sent {received!r}") from None
    except ConnectionResetError:
        pass
    return received


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) from a keep-alive connection."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def pending_task(server: ServerProcess, prompt: str = "A cat") -> str:
    """A task that stays pending (no worker runs here): its ?wait= long polls hold their time."""
    with server.client() as client:
        created = client.post(
            "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": prompt}
        )
    assert created.status_code == 200, created.text
    task_id: str = created.json()["id"]
    return task_id


def long_poll(task_id: str, wait: int) -> bytes:
    """The raw request head of a ?wait= long poll of ``task_id``."""
    return (
        f"GET /v1/tasks/{task_id}?wait={wait} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {E2E_KEY}\r\n\r\n"
    ).encode()


def test_a_half_sent_request_head_is_closed_by_the_server(server: ServerProcess) -> None:
    with connection(server) as sock:
        sock.sendall(HEAD[:40])  # the request line and part of a header, never the blank line
        assert closed_by_server(sock) == b""


def test_a_connection_that_never_sends_a_byte_is_closed_by_the_server(
    server: ServerProcess,
) -> None:
    with connection(server) as sock:
        assert closed_by_server(sock) == b""


def test_many_stalled_heads_are_all_closed(server: ServerProcess) -> None:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(connection(server)) for _ in range(30)]
        for index, sock in enumerate(socks):
            if index % 2:
                sock.sendall(HEAD[:25])
        for sock in socks:
            assert closed_by_server(sock) == b""
        # And the server still answers.
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_a_slow_but_complete_head_is_answered(server: ServerProcess) -> None:
    with connection(server) as sock:
        pieces = [HEAD[i : i + 20] for i in range(0, len(HEAD), 20)]
        for piece in pieces[:-1]:
            sock.sendall(piece)
            # The server neither answers nor hangs up on a head that is still arriving.
            readable, _, _ = select.select([sock], [], [], 0.05)
            assert not readable
        sock.sendall(pieces[-1])
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 200 "), response[:200]


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_time(
    server: ServerProcess,
) -> None:
    with connection(server) as sock:
        sock.sendall(HEAD)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(HEAD)  # the connection was kept for a second request
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        assert closed_by_server(sock) == b""


def test_a_long_poll_longer_than_the_head_timeout_still_answers(server: ServerProcess) -> None:
    task_id = pending_task(server)
    with server.client() as client:
        # No worker runs here, so the task stays pending and the poll holds all 3 s: three
        # head timeouts, while the response is in progress.
        polled = client.get(f"/v1/tasks/{task_id}", params={"wait": 3})
    assert polled.status_code == 200, polled.text
    assert polled.json()["status"] == "pending"


def test_a_long_poll_whose_client_leaves_ends_at_once(server: ServerProcess) -> None:
    """It used to hold its whole ?wait= time (and a shutdown behind it) for nobody."""
    poll = long_poll(pending_task(server), 30)
    with server.client() as client:

        def gone_polls() -> str:
            metrics = client.get("/metrics").text
            return "\n".join(
                line
                for line in metrics.splitlines()
                if line.startswith("vidgate_http_request_duration_seconds_count")
                and 'route="/v1/tasks/{task_id}"' in line
                and 'status="499"' in line
            )

        assert gone_polls() == ""
        with connection(server) as sock:
            sock.sendall(poll)
            # The poll is under way (its task is pending: nothing answers it for 30 s).
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                sock.recv(1)
        # Counted as ended by its client well before its 30 s were up.
        line = wait_until(gone_polls, "the abandoned long poll to end", timeout=15)
        assert line.endswith(" 1.0"), line


def test_a_stalled_head_behind_a_long_poll_lets_the_poll_answer_then_closes(
    server: ServerProcess,
) -> None:
    poll = long_poll(pending_task(server, "A dog"), 3)
    with connection(server) as sock:
        sock.sendall(poll + HEAD[:30])  # a pipelined second head that never completes
        answer = closed_by_server(sock, within=10)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert b'"status":"pending"' in answer
    assert answer.count(b"HTTP/1.1 ") == 1  # the stalled head was never answered


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        tmp_path / "data",
        {
            "VIDGATE_WORKERS": "0",
            "VIDGATE_MAX_CONNECTIONS": "3",
            "VIDGATE_RATE_LIMIT_PER_MINUTE": "0",
        },
    ) as process:
        yield process


def test_connections_past_the_cap_get_503_with_retry_after_and_later_ones_work(
    capped: ServerProcess,
) -> None:
    poll = long_poll(pending_task(capped), 20)
    with contextlib.ExitStack() as stack:
        # Three connections, each busy with a long poll: the cap is reached.
        for _ in range(3):
            stack.enter_context(connection(capped)).sendall(poll)
        over = stack.enter_context(connection(capped))
        over.sendall(HEAD)
        answer = closed_by_server(over, within=10)  # answered, then closed
        head, _, body = answer.partition(b"\r\n\r\n")
        response = httpx.Response(
            int(head.split(b" ")[1]),
            headers=[
                tuple(line.decode().split(": ", 1))  # type: ignore[misc]
                for line in head.split(b"\r\n")[1:]
            ],
            content=body,
        )
        assert_error(response, 503, "service_unavailable")
        assert response.headers["retry-after"] == "1"
        assert response.headers["connection"] == "close"
    # The long polls' connections are closed: new connections are served again.
    wait_until(
        lambda: httpx.get(f"{capped.url}/healthz", timeout=10).status_code == 200,
        "a connection under the cap to be served",
        timeout=30,
    )
