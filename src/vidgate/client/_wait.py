"""The pacing of ``tasks.wait``: long-poll where the server offers it, else poll with backoff.

A vidgate server says on every ``GET /v1/tasks/{id}`` answer how long it may hold a poll
(``X-Vidgate-Wait-Max``); the next polls then carry ``?wait=`` and the server answers as soon as
the task changes. A server without that header (evolink's own) is polled every second, the
pause growing by half up to ten seconds while nothing changes and back to one second on a
change; a ``Retry-After`` on any answer lengthens the pause to at least what it asks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from vidgate.client.retry import header_retry_after
from vidgate.client.types import Task

WAIT_MAX_HEADER: Final = "x-vidgate-wait-max"
POLL_INTERVAL: Final = 1.0
MAX_POLL_INTERVAL: Final = 10.0
GROWTH: Final = 1.5
# A long-poll shorter than this is not worth holding a request open for.
MIN_LONG_POLL: Final = 0.5


def wait_params(hold: float | None) -> dict[str, str]:
    """The query of a poll the server may hold ``hold`` seconds (none for a plain poll)."""
    return {"wait": f"{hold:g}"} if hold else {}


@dataclass
class Pacer:
    timeout: float | None
    clock: Callable[[], float] = time.monotonic
    poll_interval: float = POLL_INTERVAL
    max_poll_interval: float = MAX_POLL_INTERVAL
    long_poll_max: float | None = None
    interval: float = field(init=False)
    deadline: float | None = field(init=False)
    seen: tuple[str, int] | None = field(init=False, default=None)
    last: Task | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.interval = self.poll_interval
        self.deadline = None if self.timeout is None else self.clock() + self.timeout

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def long_poll(self) -> float:
        """Seconds to ask the server to hold the next poll (0: a plain poll)."""
        if not self.long_poll_max:
            return 0.0
        hold = self.long_poll_max
        left = self.remaining()
        if left is not None:
            hold = min(hold, left)
        hold = math.floor(hold * 10) / 10
        return hold if hold >= MIN_LONG_POLL else 0.0

    def params(self, hold: float) -> dict[str, str]:
        return wait_params(hold)

    def observe(self, task: Task, headers: Mapping[str, str]) -> bool:
        """Record an answer; True when the task changed (status or progress) since the last."""
        offered = headers.get(WAIT_MAX_HEADER)
        if offered is not None:
            try:
                self.long_poll_max = max(0.0, float(offered))
            except ValueError:
                self.long_poll_max = None
        state = (task.status, task.progress)
        changed = state != self.seen
        self.seen = state
        self.last = task
        if changed:
            self.interval = self.poll_interval
        else:
            self.interval = min(self.max_poll_interval, self.interval * GROWTH)
        return changed

    def pause(
        self, *, held: float, elapsed: float, headers: Mapping[str, str] | None = None
    ) -> float:
        """Seconds to sleep before the next poll. A held long-poll already counts as waiting."""
        pause = max(0.0, self.interval - elapsed) if held else self.interval
        after = header_retry_after(headers) if headers is not None else None
        if after is not None:
            pause = max(pause, after)
        left = self.remaining()
        return pause if left is None else max(0.0, min(pause, left))

    def backoff_after_error(self, retry_after: float | None) -> float:
        """The pause after a poll failed in a passing way (connection, 429, 5xx)."""
        pause = self.interval if retry_after is None else max(self.interval, retry_after)
        self.interval = min(self.max_poll_interval, self.interval * GROWTH)
        left = self.remaining()
        return pause if left is None else max(0.0, min(pause, left))
