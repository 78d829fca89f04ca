"""The shared retry policy: Retry-After parsing, backoff growth, cap, jitter, when it gives up."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from vidgate.client.retry import (
    RETRY_AFTER_CEILING,
    TRANSIENT_STATUSES,
    UPSTREAM_STATUSES,
    RetryPolicy,
    header_retry_after,
    parse_retry_after,
)

NOW = datetime(2025, 9, 6, 12, 0, 0, tzinfo=UTC)


def clock() -> float:
    return NOW.timestamp()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("7", 7.0), (" 120 ", 120.0), ("0.05", 0.05), ("1.5", 1.5)],
)
def test_delay_seconds_are_read_as_given(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=clock) == seconds


def test_an_http_date_is_the_time_left_until_it() -> None:
    later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert later.endswith("GMT")
    assert parse_retry_after(later, now=clock) == 90.0
    # The obsolete "-0000" zone and RFC 850 dates are HTTP dates too, in GMT all the same.
    assert parse_retry_after("Sat, 06 Sep 2025 12:00:30 -0000", now=clock) == 30.0
    assert parse_retry_after("Saturday, 06-Sep-25 12:01:00 GMT", now=clock) == 60.0


def test_a_date_in_the_past_means_now() -> None:
    earlier = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(earlier, now=clock) == 0.0


@pytest.mark.parametrize(
    "junk",
    [None, "", "  ", "soon", "-5", "+5", "1e3", "inf", "nan", "0x10", "5 seconds", "Sat, 99 Foo"],
)
def test_junk_is_no_retry_after(junk: str | None) -> None:
    assert parse_retry_after(junk, now=clock) is None


def test_huge_values_are_capped_at_a_day() -> None:
    assert parse_retry_after("9" * 40, now=clock) == RETRY_AFTER_CEILING
    far = format_datetime(NOW + timedelta(days=400), usegmt=True)
    assert parse_retry_after(far, now=clock) == RETRY_AFTER_CEILING


def test_the_header_is_found_in_any_case() -> None:
    assert header_retry_after({"RETRY-AFTER": "3"}) == 3.0
    assert header_retry_after({"retry-after": "4", "x": "y"}) == 4.0
    assert header_retry_after({"Content-Type": "text/plain"}) is None


def test_the_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(max_retries=None, base_delay=0.5, max_delay=8.0, rand=lambda: 1.0)
    assert [policy.backoff(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert policy.backoff(10_000) == 8.0  # no overflow however long a loop goes on


def test_equal_jitter_keeps_each_pause_between_half_and_all_of_its_step() -> None:
    seeded = random.Random(20250906)
    policy = RetryPolicy(max_retries=None, base_delay=1.0, max_delay=30.0, rand=seeded.random)
    for attempt in range(8):
        step = min(30.0, 2.0**attempt)
        pauses = [policy.backoff(attempt) for _ in range(200)]
        assert all(step / 2 <= pause <= step for pause in pauses)
        assert max(pauses) - min(pauses) > step / 4  # spread out, not a constant
    lowest = RetryPolicy(rand=lambda: 0.0)
    assert [lowest.backoff(n) for n in range(3)] == [0.25, 0.5, 1.0]


def test_pauses_never_shrink_from_one_retry_to_the_next() -> None:
    seeded = random.Random(7)
    policy = RetryPolicy(max_retries=None, base_delay=0.1, max_delay=5.0, rand=seeded.random)
    for _ in range(50):
        pauses = [policy.backoff(n) for n in range(6)]  # steps 0.1 to 3.2 s: below the cap
        assert pauses == sorted(pauses)


def test_retry_after_replaces_the_backoff_up_to_its_maximum() -> None:
    policy = RetryPolicy(rand=lambda: 0.5)
    assert policy.delay(0, 7.0) == 7.0
    assert policy.delay(2, 0.0) == 0.0
    assert policy.delay(0, None) == 0.375
    assert policy.delay(0, 60.0) == 60.0
    assert policy.delay(0, 61.0) is None  # the caller gets the error and its retry_after


def test_a_clamping_policy_waits_its_maximum_instead_of_giving_up() -> None:
    policy = RetryPolicy(max_retry_after=30.0, clamp_retry_after=True)
    assert policy.delay(0, 3600.0) == 30.0
    assert policy.delay(0, 12.0) == 12.0


def test_the_retries_end_at_max_retries() -> None:
    policy = RetryPolicy(max_retries=2, rand=lambda: 0.0)
    assert policy.delay(0) is not None
    assert policy.delay(1, 1.0) == 1.0
    assert policy.delay(2) is None
    assert policy.delay(2, 1.0) is None
    assert policy.exhausted(2)
    assert not policy.exhausted(1)
    unbounded = RetryPolicy(max_retries=None)
    assert not unbounded.exhausted(10**9)
    assert unbounded.delay(10**9) is not None
    assert RetryPolicy(max_retries=0).delay(0) is None


def test_which_statuses_are_retried() -> None:
    sdk = RetryPolicy()
    statuses = (400, 401, 404, 408, 409, 425, 429, 500, 502, 503, 504)
    retried = [status for status in statuses if sdk.retryable_status(status)]
    assert retried == [408, 425, 429, 502, 503, 504]
    assert sdk.statuses == TRANSIENT_STATUSES
    upstream = RetryPolicy(statuses=UPSTREAM_STATUSES)
    assert upstream.retryable_status(500)
    assert not upstream.retryable_status(501)


@pytest.mark.parametrize(
    "options",
    [
        {"max_retries": -1},
        {"base_delay": -1.0},
        {"base_delay": 10.0, "max_delay": 5.0},
        {"max_delay": float("inf")},
        {"base_delay": float("nan")},
        {"max_retry_after": -1.0},
        {"max_retry_after": RETRY_AFTER_CEILING + 1},
    ],
)
def test_a_nonsensical_policy_is_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**options)  # type: ignore[arg-type]


def test_the_upstream_policy_retries_500_and_waits_out_a_long_retry_after() -> None:
    policy = RetryPolicy.upstream(
        max_retries=5, base_delay=1.0, max_delay=30.0, max_retry_after=60.0
    )
    assert policy.statuses == UPSTREAM_STATUSES
    assert policy.retryable_status(500)
    assert policy.delay(0, 3600.0) == 60.0
    assert policy.delay(5, 1.0) is None
