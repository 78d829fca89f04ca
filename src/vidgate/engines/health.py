"""Which engines are healthy: consecutive failures open a circuit; it closes after a cool-off.

Kept in each process's memory: every worker learns from its own calls, and a replica that has
not used an engine recently treats it as healthy until its own calls say otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vidgate.engines.base import TaskErrorCode

# Failures that say the engine, not the request, is at fault.
ENGINE_FAULTS: frozenset[TaskErrorCode] = frozenset(
    {"service_error", "service_unavailable", "resource_exhausted", "generation_timeout"}
)


@dataclass
class _State:
    failures: int = 0
    opened_at: float | None = None


class EngineHealth:
    def __init__(
        self,
        *,
        threshold: int = 3,
        cooldown_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown_seconds
        self.clock = clock
        self._states: dict[str, _State] = {}

    def succeeded(self, engine: str) -> None:
        self._states[engine] = _State()

    def failed(self, engine: str) -> None:
        state = self._states.setdefault(engine, _State())
        state.failures += 1
        if state.failures >= self.threshold:
            state.opened_at = self.clock()

    def healthy(self, engine: str) -> bool:
        """False while the circuit is open; after the cool-off one call may try again."""
        state = self._states.get(engine)
        if state is None or state.opened_at is None:
            return True
        return self.clock() - state.opened_at >= self.cooldown

    def order(self, engines: Iterable[str]) -> list[str]:
        """The engines in preference order, healthy ones first."""
        listed = list(engines)
        return [e for e in listed if self.healthy(e)] + [e for e in listed if not self.healthy(e)]
