"""The one clock a process's services read, so a test moves time for all of them at once."""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    """Unix seconds from ``source`` (``time.time``); tests swap ``source`` for a fixed or
    shifted time, and every service built with this clock sees it."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self.source = source

    def __call__(self) -> float:
        return self.source()
