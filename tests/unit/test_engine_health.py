"""The circuit per engine: opens after consecutive failures, lets one try after a cool-off."""

from __future__ import annotations

from support import Clock
from vidgate.engines.health import EngineHealth


def test_three_failures_in_a_row_open_the_circuit_and_a_success_closes_it() -> None:
    clock = Clock(0.0)
    health = EngineHealth(threshold=3, cooldown_seconds=60, clock=clock)
    health.failed("veo")
    health.failed("veo")
    assert health.healthy("veo")
    health.succeeded("veo")
    for _ in range(3):
        health.failed("veo")
    assert not health.healthy("veo")
    assert health.order(["veo", "relay"]) == ["relay", "veo"]
    clock.now = 59
    assert not health.healthy("veo")
    clock.now = 60
    assert health.healthy("veo")  # one may try again
    health.succeeded("veo")
    assert health.order(["veo", "relay"]) == ["veo", "relay"]
    assert health.healthy("never-used")
