"""The SDK's options for programs built on it: a retry policy, a download cap, a held poll."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from vidgate.client import AsyncClient, Client, InternalServerError, RetryPolicy, VidgateError
from vidgate.client.retry import UPSTREAM_STATUSES

KEY = "sk-options-test"
BASE = "http://upstream.test"
TASK = {"id": "task-unified-1-abc", "status": "processing", "progress": 40}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler answering a script in order (the last answer repeats)."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answers[min(len(self.seen), len(self.answers)) - 1]


def client(handler: Handler, sleeps: list[float], **options: object) -> Client:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Client(KEY, BASE, http_client=http, sleep=sleeps.append, **options)  # type: ignore[arg-type]


def chunks(size: int, count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield b"v" * size


# -- the retry policy ----------------------------------------------------------------------------


def test_a_policy_of_the_callers_decides_what_is_retried_and_how_long_it_waits() -> None:
    server = Recorder(httpx.Response(500), httpx.Response(500), httpx.Response(200, json=TASK))
    sleeps: list[float] = []
    policy = RetryPolicy(statuses=UPSTREAM_STATUSES, base_delay=1.0, rand=lambda: 1.0)
    with client(server, sleeps, retry_policy=policy) as sdk:
        assert sdk.tasks.get(TASK["id"]).progress == 40
    assert sleeps == [1.0, 2.0]
    with client(server, [], retry_policy=policy, max_retries=0) as sdk:
        server.seen.clear()
        with pytest.raises(InternalServerError):
            sdk.tasks.get(TASK["id"])
    assert len(server.seen) == 1  # max_retries overrides the policy's


def test_a_clamping_policy_waits_out_a_long_retry_after() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "3600"})
    server = Recorder(limited, httpx.Response(200, json=TASK))
    sleeps: list[float] = []
    policy = RetryPolicy(max_retry_after=30.0, clamp_retry_after=True)
    with client(server, sleeps, retry_policy=policy) as sdk:
        sdk.tasks.get(TASK["id"])
    assert sleeps == [30.0]


def test_a_policy_without_a_retry_limit_is_refused() -> None:
    with pytest.raises(VidgateError, match="max_retries"):
        Client(KEY, BASE, retry_policy=RetryPolicy(max_retries=None))


# -- a held poll ---------------------------------------------------------------------------------


def test_get_with_wait_asks_the_server_to_hold_the_poll() -> None:
    server = Recorder(httpx.Response(200, json=TASK))
    with client(server, [], timeout=10) as sdk:
        sdk.tasks.get(TASK["id"], wait=20)
        sdk.tasks.get(TASK["id"])
    held, plain = server.seen
    assert held.url.params["wait"] == "20"
    assert held.extensions["timeout"]["read"] == 30  # the hold comes on top of the timeout
    assert "wait" not in plain.url.params
    assert plain.extensions["timeout"]["read"] == 10


# -- a download cap ------------------------------------------------------------------------------


def test_an_announced_size_over_max_bytes_is_refused_before_any_byte_is_written(
    tmp_path: Path,
) -> None:
    server = Recorder(httpx.Response(200, content=b"v" * 1001))
    target = tmp_path / "v.mp4"
    with client(server, []) as sdk, pytest.raises(VidgateError) as caught:
        sdk.download(f"{BASE}/files/v.mp4", target, max_bytes=1000)
    assert caught.value.code == "download_too_large"
    assert list(tmp_path.iterdir()) == []
    assert len(server.seen) == 1  # not retried


def test_a_body_without_a_length_is_cut_off_at_max_bytes(tmp_path: Path) -> None:
    written: list[int] = []

    def endless(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks(4096, 1000))  # chunked: no Content-Length

    target = tmp_path / "v.mp4"
    with client(endless, []) as sdk, pytest.raises(VidgateError) as caught:
        sdk.download(
            f"{BASE}/files/v.mp4",
            target,
            max_bytes=10_000,
            on_progress=lambda d, t: written.append(d),
        )
    assert caught.value.code == "download_too_large"
    assert list(tmp_path.iterdir()) == []
    assert max(written) <= 10_000


def test_a_file_at_max_bytes_is_downloaded(tmp_path: Path) -> None:
    # A streamed body: MockTransport reads a bytes body at once, and a download reads it raw.
    server = Recorder(httpx.Response(200, content=chunks(100, 10)))
    with client(server, []) as sdk:
        path = sdk.download(f"{BASE}/files/v.mp4", tmp_path / "v.mp4", max_bytes=1000)
    assert path.read_bytes() == b"v" * 1000


async def test_the_async_client_caps_downloads_too(tmp_path: Path) -> None:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks(4096, 1000):
            yield chunk

    def endless(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    http = httpx.AsyncClient(transport=httpx.MockTransport(endless))
    async with http, AsyncClient(KEY, BASE, http_client=http) as sdk:
        with pytest.raises(VidgateError) as caught:
            await sdk.download(f"{BASE}/files/v.mp4", tmp_path / "v.mp4", max_bytes=10_000)
    assert caught.value.code == "download_too_large"
    assert not (tmp_path / "v.mp4").exists()
    assert not (tmp_path / "v.mp4.part").exists()
