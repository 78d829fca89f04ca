"""The per-key rate limiter on its in-memory storage: limits, buckets, unlimited keys, changes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from vidgate.auth.rate_limit import RateLimiter


@pytest.fixture(autouse=True)
def away_from_a_window_edge() -> None:
    # In memory the windows are whole clock minutes, and `limits` reads the wall clock with no
    # way to inject one. A test that straddled a minute would see its first requests move to
    # the previous window and, rounded down, free one slot. These tests take milliseconds, so
    # waiting out the last two seconds of a minute (on one run in thirty) keeps them exact.
    while time.time() % 60 > 58:
        time.sleep(0.05)


@pytest.fixture
async def limiter() -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter()
    yield limiter
    await limiter.aclose()


async def hits(
    limiter: RateLimiter, bucket: str, per_minute: int, count: int
) -> list[float | None]:
    return [await limiter.hit(bucket, per_minute) for _ in range(count)]


async def test_requests_up_to_the_limit_are_allowed_and_the_next_is_refused(
    limiter: RateLimiter,
) -> None:
    assert await hits(limiter, "key_a", 5, 5) == [None] * 5

    retry_after = await limiter.hit("key_a", 5)

    assert retry_after is not None
    assert 1 <= retry_after <= 60
    assert retry_after == int(retry_after)  # whole seconds, ready for a Retry-After header


async def test_refused_requests_keep_being_refused(limiter: RateLimiter) -> None:
    await hits(limiter, "key_a", 3, 3)

    assert None not in await hits(limiter, "key_a", 3, 10)


async def test_buckets_are_counted_independently(limiter: RateLimiter) -> None:
    await hits(limiter, "key_a", 2, 2)
    assert await limiter.hit("key_a", 2) is not None

    assert await hits(limiter, "key_b", 2, 2) == [None, None]
    assert await limiter.hit("key_b", 2) is not None


async def test_separate_in_memory_limiters_do_not_share_counts() -> None:
    first, second = RateLimiter(), RateLimiter()
    await hits(first, "key_a", 2, 2)

    assert await second.hit("key_a", 2) is None

    await first.aclose()
    await second.aclose()


@pytest.mark.parametrize("per_minute", [0, -1])
async def test_zero_or_negative_per_minute_is_unlimited_and_counts_nothing(
    limiter: RateLimiter, per_minute: int
) -> None:
    assert await hits(limiter, "key_a", per_minute, 500) == [None] * 500

    # Nothing was counted: a limit set afterwards starts from an empty bucket.
    assert await hits(limiter, "key_a", 2, 2) == [None, None]
    assert await limiter.hit("key_a", 2) is not None


async def test_a_lowered_limit_applies_to_requests_already_counted(limiter: RateLimiter) -> None:
    assert await hits(limiter, "key_a", 10, 3) == [None] * 3

    assert await limiter.hit("key_a", 3) is not None


async def test_a_raised_limit_allows_only_the_difference(limiter: RateLimiter) -> None:
    await hits(limiter, "key_a", 3, 3)
    assert await limiter.hit("key_a", 3) is not None

    assert await hits(limiter, "key_a", 5, 2) == [None, None]
    assert await limiter.hit("key_a", 5) is not None


async def test_memory_storage_is_healthy(limiter: RateLimiter) -> None:
    assert await limiter.check_health()


def test_a_redis_url_without_a_port_is_accepted() -> None:
    # Nothing connects until the first hit, so this needs no server.
    RateLimiter("redis://localhost/0")


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "127.0.0.1:6379", "memcached://h:1"])
def test_a_non_redis_url_is_refused_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="redis://"):
        RateLimiter(url)


def test_the_refusal_does_not_echo_a_password() -> None:
    with pytest.raises(ValueError) as raised:
        RateLimiter("http://user:hunter2@127.0.0.1:6379/0")

    assert "hunter2" not in str(raised.value)
