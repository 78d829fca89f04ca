"""The rate limiter on a real Redis: one limit shared by several processes, and Redis outages."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from support import Clock
from vidgate.auth.rate_limit import STORAGE_RETRY_AFTER, WARNING_INTERVAL, RateLimiter

REDIS_URL = os.environ.get("VIDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LOGGER = "vidgate.auth.rate_limit"


@pytest.fixture
async def redis_url() -> str:
    probe = RateLimiter(REDIS_URL)
    try:
        reachable = await probe.check_health()
    finally:
        await probe.aclose()
    if not reachable:
        where = urllib.parse.urlsplit(REDIS_URL)
        pytest.skip(
            f"no Redis answers at {where.hostname}:{where.port} "
            "(set VIDGATE_TEST_REDIS_URL to a reachable redis:// URL)"
        )
    return REDIS_URL


@pytest.fixture
def namespace() -> str:
    # A fresh namespace per test, so runs (and parallel runs) never see each other's counts.
    return f"vidgate-test-{uuid.uuid4().hex}"


@pytest.fixture
def closed_port() -> int:
    """A loopback port that was just free: nothing listens on it, connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def limiters(url: str, namespace: str, count: int) -> AsyncIterator[list[RateLimiter]]:
    """Several limiters on one Redis, each with its own client, as separate processes have."""
    opened = [RateLimiter(url, namespace=namespace) for _ in range(count)]
    try:
        yield opened
    finally:
        for limiter in opened:
            await limiter.aclose()


class Relay:
    """A TCP relay from a chosen loopback port to Redis, counting the connections it takes."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self.connections = 0
        self._handlers: set[asyncio.Task[None]] = set()

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Relay]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()
            # The client closed its side first, so the pipes are already draining to an end.
            if self._handlers:
                await asyncio.wait(self._handlers, timeout=5)
            for task in self._handlers:
                task.cancel()


def on_port(url: str, port: int) -> str:
    """The same Redis URL (credentials, database) pointed at 127.0.0.1:port."""
    parts = urllib.parse.urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def caplog_limiter(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


# --- a limit shared through Redis -----------------------------------------------------------


async def test_two_limiters_on_one_redis_share_the_limit(redis_url: str, namespace: str) -> None:
    async with limiters(redis_url, namespace, 2) as (a, b):
        allowed = [await (a if i % 2 else b).hit("key_a", 5) for i in range(5)]
        assert allowed == [None] * 5

        through_a = await a.hit("key_a", 5)
        through_b = await b.hit("key_a", 5)

    assert through_a is not None
    assert through_b is not None
    assert 1 <= through_a <= 60
    assert 1 <= through_b <= 60


async def test_concurrent_hits_from_two_limiters_never_exceed_the_limit(
    redis_url: str, namespace: str
) -> None:
    async with limiters(redis_url, namespace, 2) as (a, b):
        results = await asyncio.gather(*((a, b)[i % 2].hit("key_a", 5) for i in range(30)))

    assert results.count(None) == 5


async def test_buckets_on_one_redis_are_counted_independently(
    redis_url: str, namespace: str
) -> None:
    async with limiters(redis_url, namespace, 2) as (a, b):
        assert [await a.hit("key_a", 2) for _ in range(2)] == [None, None]
        assert await b.hit("key_a", 2) is not None

        assert await b.hit("key_b", 2) is None


async def test_namespaces_on_one_redis_do_not_share_counts(redis_url: str, namespace: str) -> None:
    async with (
        limiters(redis_url, namespace, 1) as (a,),
        limiters(redis_url, f"{namespace}-other", 1) as (b,),
    ):
        await a.hit("key_a", 1)
        assert await a.hit("key_a", 1) is not None

        assert await b.hit("key_a", 1) is None


async def test_a_lowered_limit_applies_to_what_other_processes_counted(
    redis_url: str, namespace: str
) -> None:
    async with limiters(redis_url, namespace, 2) as (a, b):
        assert [await a.hit("key_a", 10) for _ in range(3)] == [None] * 3

        assert await b.hit("key_a", 3) is not None


async def test_redis_is_healthy_when_it_answers(redis_url: str, namespace: str) -> None:
    async with limiters(redis_url, namespace, 1) as (limiter,):
        assert await limiter.check_health()


# --- Redis unreachable: fail open -----------------------------------------------------------


async def test_an_unreachable_redis_fails_open_without_raising(
    closed_port: int, caplog_limiter: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter(f"redis://127.0.0.1:{closed_port}/0")

    results = [await limiter.hit("key_a", 1) for _ in range(5)]
    healthy = await limiter.check_health()
    await limiter.aclose()

    assert results == [None] * 5  # over a limit of 1, yet all allowed
    assert not healthy
    [warning] = records(caplog_limiter, logging.WARNING)
    assert "allowing requests unchecked" in warning


async def test_an_outage_is_warned_about_at_most_once_per_interval(
    closed_port: int, caplog_limiter: pytest.LogCaptureFixture
) -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(f"redis://127.0.0.1:{closed_port}/0", clock=clock)

    await limiter.hit("key_a", 1)  # fails: warns
    await limiter.hit("key_a", 1)  # storage skipped
    clock.now += STORAGE_RETRY_AFTER
    await limiter.hit("key_a", 1)  # fails again, within the interval: quiet
    assert len(records(caplog_limiter, logging.WARNING)) == 1

    clock.now += WARNING_INTERVAL
    await limiter.hit("key_a", 1)  # fails, a new interval: warns with the running count
    await limiter.aclose()

    warnings = records(caplog_limiter, logging.WARNING)
    assert len(warnings) == 2
    assert "(4 so far" in warnings[1]


async def test_limits_are_enforced_again_once_redis_answers(
    redis_url: str,
    namespace: str,
    closed_port: int,
    caplog_limiter: pytest.LogCaptureFixture,
) -> None:
    parts = urllib.parse.urlsplit(redis_url)
    if parts.scheme != "redis" or parts.hostname is None:
        pytest.skip("the relay standing in for a recovered Redis speaks plain TCP only")
    clock = Clock(1000.0)
    limiter = RateLimiter(on_port(redis_url, closed_port), namespace=namespace, clock=clock)
    relay = Relay(closed_port, (parts.hostname, parts.port or 6379))

    try:
        assert await limiter.hit("key_a", 1) is None  # refused connection: fails open

        async with relay.running():
            # Within the retry delay the storage is not even tried.
            assert await limiter.hit("key_a", 1) is None
            assert relay.connections == 0

            clock.now += STORAGE_RETRY_AFTER
            assert await limiter.hit("key_a", 1) is None
            assert await limiter.hit("key_a", 1) is not None
            assert relay.connections >= 1
            # Closed before the relay stops, so its pipes see the client hang up and end.
            await limiter.aclose()
    finally:
        await limiter.aclose()

    [recovered] = records(caplog_limiter, logging.INFO)
    assert "2 requests went unchecked" in recovered
