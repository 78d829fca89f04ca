"""Per-key request rate limits, in process memory or shared by all API processes through Redis."""

# Strategy: the `limits` library's sliding window counter over 60 s, `per_minute` requests.
#
# What is asked for is a token bucket of `per_minute` capacity refilling over a minute: a burst
# of up to `per_minute` goes through, then capacity comes back a little at a time, one request
# every 60 / per_minute seconds. Of the three strategies `limits` offers:
#
# - the fixed window refills all at once at each window edge and lets twice the limit through
#   across an edge;
# - the moving window is exact (never more than `per_minute` in any 60 s) but gives capacity
#   back in the shape it was spent: a burst of N comes back as a burst of N exactly 60 s later,
#   so a client that keeps trying gets lumps rather than a rate. It also keeps N timestamps per
#   key, stamped by each API host's own clock;
# - the sliding window counter weights the previous window's count by how much of that window
#   still overlaps the last 60 s. Once a burst's window is over, its count drains linearly, one
#   request every 60 / per_minute seconds: the token bucket's refill. It keeps two counters per
#   key, and on Redis its windows are timed by Redis's own key expiry, so the API hosts' clocks
#   do not have to agree.
#
# So the sliding window counter. Its costs, accepted: it assumes the previous window's requests
# were spread evenly, so some 60 s spans see a little more or less than `per_minute` (a token
# bucket, too, lets up to twice its capacity through in a minute); and right after a burst the
# refill starts only when that burst's window ends, up to 60 s later, where a token bucket's
# would start at once.
#
# When the storage fails (Redis down, slow or refusing) the limiter fails open: the request is
# allowed, because an outage of the limiter must not become an outage of the API. Storage is
# then left alone for STORAGE_RETRY_AFTER seconds, so a hung Redis costs one slow request per
# process per few seconds instead of a timeout on every request, and the warning is logged at
# most once per WARNING_INTERVAL with the number of requests let through unchecked.

from __future__ import annotations

import logging
import math
import time
import urllib.parse
from collections.abc import Callable

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.coredis import CoredisBridge
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from limits.limits import safe_string

__all__ = ["RateLimiter"]

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# After a storage failure, requests are let through without asking storage for this long.
STORAGE_RETRY_AFTER = 5.0
# While storage stays down, the warning is repeated at most this often.
WARNING_INTERVAL = 60.0
# Redis answers a rate-limit script in well under a millisecond; waiting longer than this only
# adds latency to the request being limited. coredis retries twice on top of these.
REDIS_CONNECT_TIMEOUT = 0.5
REDIS_STREAM_TIMEOUT = 0.5

# StorageError is what limits turns coredis's errors into (wrap_exceptions=True below); OSError
# covers socket and TLS errors should one ever escape the wrapping.
_STORAGE_ERRORS = (StorageError, OSError)

# Plain Redis URL schemes as users write them, and the `limits` async storage scheme for each.
_REDIS_SCHEMES = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}
_REDIS_DEFAULT_PORT = 6379


class _PerMinute(RateLimitItemPerMinute):
    """A per-minute limit whose storage key leaves the amount out.

    `limits` puts the amount in the key, so a key whose limit changes would start again from
    zero; without it, a lowered limit applies at once to the requests already counted and a
    raised one adds only the difference.
    """

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        return "/".join([self.namespace, *(safe_string(part) for part in identifiers)])


def _storage_uri(redis_url: str) -> str:
    """The `limits` async storage URI for a plain ``redis://host:port/db`` URL."""
    parsed = urllib.parse.urlsplit(redis_url)
    scheme = _REDIS_SCHEMES.get(parsed.scheme)
    if scheme is None:
        # The scheme alone: the rest of the URL may carry a password.
        raise ValueError(
            "rate limit storage needs a redis://, rediss:// or unix:// URL, "
            f"got scheme {parsed.scheme!r}"
        )
    # limits refuses a TCP location without a port, where Redis clients assume the default.
    if parsed.scheme != "unix" and parsed.hostname and parsed.port is None:
        netloc = f"{parsed.netloc}:{_REDIS_DEFAULT_PORT}"
        redis_url = urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
    return scheme + redis_url[len(parsed.scheme) :]


class RateLimiter:
    """Counts requests per bucket (an API key id, say) against a per-minute limit.

    With no ``redis_url`` the counts live in this process's memory; with one, every limiter
    pointed at the same Redis and ``namespace`` shares them. ``clock`` (monotonic seconds) only
    times the storage-outage handling.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        namespace: str = "vidgate",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._namespace = namespace
        self._clock = clock
        self._storage: Storage
        if redis_url is None:
            self._storage = MemoryStorage()
        else:
            # Nothing connects here: coredis opens its connection on the first command.
            self._storage = RedisStorage(
                _storage_uri(redis_url),
                wrap_exceptions=True,
                connect_timeout=REDIS_CONNECT_TIMEOUT,
                stream_timeout=REDIS_STREAM_TIMEOUT,
            )
        self._strategy = SlidingWindowCounterRateLimiter(self._storage)
        self._storage_down = False
        self._skip_storage_until = 0.0
        self._next_warning_at = 0.0
        self._unchecked = 0  # requests let through unchecked since the storage failed

    async def hit(self, bucket: str, per_minute: int) -> float | None:
        """Count one request against ``bucket``; None when allowed, else seconds to wait.

        The wait is for a ``Retry-After`` header: whole seconds, at least 1, at most 60.
        ``per_minute <= 0`` means unlimited and touches no storage.
        """
        if per_minute <= 0:
            return None
        if self._storage_down and self._clock() < self._skip_storage_until:
            self._unchecked += 1
            return None
        limit = _PerMinute(per_minute, namespace=self._namespace)
        try:
            if await self._strategy.hit(limit, bucket):
                self._storage_answered()
                return None
            stats = await self._strategy.get_window_stats(limit, bucket)
        except _STORAGE_ERRORS as exc:
            self._storage_failed(exc)
            return None
        self._storage_answered()
        # reset_time is wall-clock (the library stamps it with time.time() itself).
        wait = math.ceil(stats.reset_time - time.time())
        return float(min(max(wait, 1), WINDOW_SECONDS))

    async def check_health(self) -> bool:
        """Whether the storage answers now (always True in memory)."""
        try:
            return await self._storage.check()
        except _STORAGE_ERRORS:
            return False

    async def aclose(self) -> None:
        # limits has no close of its own; the coredis client behind it holds the sockets.
        if isinstance(self._storage, RedisStorage) and isinstance(
            self._storage.bridge, CoredisBridge
        ):
            self._storage.bridge.storage.connection_pool.disconnect()

    def _storage_failed(self, exc: Exception) -> None:
        now = self._clock()
        self._storage_down = True
        self._skip_storage_until = now + STORAGE_RETRY_AFTER
        self._unchecked += 1
        if now >= self._next_warning_at:
            self._next_warning_at = now + WARNING_INTERVAL
            log.warning(
                "rate limit storage failed, allowing requests unchecked "
                "(%d so far, retrying every %.0f s): %s",
                self._unchecked,
                STORAGE_RETRY_AFTER,
                exc,
            )

    def _storage_answered(self) -> None:
        if self._storage_down:
            log.info(
                "rate limit storage answers again; %d requests went unchecked", self._unchecked
            )
            self._storage_down = False
            self._next_warning_at = 0.0
            self._unchecked = 0
