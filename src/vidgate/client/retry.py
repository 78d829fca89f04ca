"""The one retry policy: exponential backoff with equal jitter, ``Retry-After``, what to retry.

The SDK retries with it, and so does everything in vidgate that calls another server (the
engines' providers, the relay's upstream, a remote worker's API server), which imports it from
here: the SDK needs nothing of the server, the server may use the SDK.

Jitter. Retry number ``n + 1`` waits ``d / 2 + random(0, d / 2)`` with ``d = min(max_delay,
base_delay * 2**n)``: "equal jitter" in the terms of the AWS Architecture Blog's "Exponential
Backoff And Jitter" (Marc Brooker, 2015). That article finds "full jitter" (``random(0, d)``)
spreads many competing clients best, but full jitter may spend a small retry budget in the
first instant after a failure, and every caller here has a small budget that has to outlast a
server restart or a provider's bad minute: equal jitter still spreads clients that failed
together over half of each step, and guarantees the budget its length (the SDK's three retries
wait at least 1.75 s in all). While the steps double (below the cap), each pause is also at
least the one before.

``Retry-After``, when the answer has one, replaces the backoff: exactly that pause, up to
``max_retry_after``. Past it, a policy either gives up (the SDK: the caller gets the error, with
``retry_after`` saying how long, rather than a silent hang) or waits ``max_retry_after`` (work
that must go on, such as an engine polling a job already paid for).
"""

from __future__ import annotations

import email.utils
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Final

__all__ = [
    "RETRY_AFTER_CEILING",
    "TRANSIENT_STATUSES",
    "UPSTREAM_STATUSES",
    "RetryPolicy",
    "header_retry_after",
    "parse_retry_after",
]

TRANSIENT_STATUSES: Final = frozenset({408, 425, 429, 502, 503, 504})
"""Answers that mean "not now": a timeout, too early, a rate limit, a gateway, an overload."""

UPSTREAM_STATUSES: Final = TRANSIENT_STATUSES | {500}
"""What vidgate retries of the servers it calls on a task's behalf: a 500 as well, since the task
is already accepted here and one more try is cheaper than failing it. The SDK leaves 500 out: it
is a bug, which its caller should see."""

RETRY_AFTER_CEILING: Final = 86_400.0
"""The longest ``Retry-After`` read as given (a day); anything longer is read as this."""

# RFC 9110 delay-seconds is digits; a decimal fraction is accepted as well (some servers send
# one), a sign, an exponent, "inf" or "nan" are not.
_DELAY_SECONDS: Final = re.compile(r"\d+(?:\.\d+)?")


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """The seconds a ``Retry-After`` value asks for: delay-seconds or an HTTP date (a past date
    is 0), at most ``RETRY_AFTER_CEILING``; None for a missing or malformed value."""
    text = (value or "").strip()
    if not text:
        return None
    if _DELAY_SECONDS.fullmatch(text):
        return min(float(text), RETRY_AFTER_CEILING)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": an HTTP date is in GMT all the same
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now()), RETRY_AFTER_CEILING)


def header_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """``parse_retry_after`` of the ``Retry-After`` in ``headers`` (its name in any case)."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return parse_retry_after(value, now=now)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. The defaults are the SDK's.

    ``max_retries`` counts the tries after the first (None: no limit, for a loop that ends on
    its own terms). Connection errors and timeouts are retryable wherever the request is safe
    to send again; which requests are is the caller's business (a create without an
    idempotency key is not). ``rand`` gives floats in [0, 1); tests pass their own.
    """

    max_retries: int | None = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    clamp_retry_after: bool = False
    """False: a longer ``Retry-After`` ends the retries; True: it is shortened to the maximum."""
    statuses: frozenset[int] = TRANSIENT_STATUSES
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if not (0 <= self.base_delay <= self.max_delay) or not math.isfinite(self.max_delay):
            raise ValueError("the delays must satisfy 0 <= base_delay <= max_delay < inf")
        if not 0 <= self.max_retry_after <= RETRY_AFTER_CEILING:
            raise ValueError(f"max_retry_after must be between 0 and {RETRY_AFTER_CEILING:g}")

    @classmethod
    def upstream(
        cls,
        *,
        max_retries: int | None,
        base_delay: float,
        max_delay: float,
        max_retry_after: float,
        rand: Callable[[], float] = random.random,
    ) -> RetryPolicy:
        """The policy toward a server vidgate calls on a task's behalf (an engine's provider,
        the relay's upstream, the API a remote worker reports to): ``UPSTREAM_STATUSES`` are
        retried, and a longer ``Retry-After`` is waited at ``max_retry_after``, since giving up
        would fail a task that is already accepted (and maybe paid for upstream)."""
        return cls(
            max_retries=max_retries,
            base_delay=base_delay,
            max_delay=max_delay,
            max_retry_after=max_retry_after,
            clamp_retry_after=True,
            statuses=UPSTREAM_STATUSES,
            rand=rand,
        )

    def retryable_status(self, status: int) -> bool:
        return status in self.statuses

    def exhausted(self, retries: int) -> bool:
        """True once ``retries`` retries have been made and no more are allowed."""
        return self.max_retries is not None and retries >= self.max_retries

    def backoff(self, attempt: int) -> float:
        """The jittered pause before retry number ``attempt + 1`` (``attempt`` from 0)."""
        # The exponent is bounded so that a loop without a retry limit never overflows.
        step = min(self.max_delay, self.base_delay * 2.0 ** min(attempt, 64))
        return step / 2 + step / 2 * self.rand()

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """The pause before retry number ``attempt + 1``, or None when there is to be none:
        the retries are used up, or the server asked for more than ``max_retry_after``."""
        if self.exhausted(attempt):
            return None
        if retry_after is None:
            return self.backoff(attempt)
        if retry_after <= self.max_retry_after:
            return retry_after
        return self.max_retry_after if self.clamp_retry_after else None
