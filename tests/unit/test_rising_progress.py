"""The progress the remote engines forward: only rises, clamped to 0..1."""

from __future__ import annotations

from vidgate.engines.base import RisingProgress


def test_progress_is_forwarded_only_when_it_rises_and_never_past_one() -> None:
    seen: list[float] = []
    progress = RisingProgress(seen.append)
    for fraction in (0.1, 0.1, 0.05, 0.4, -3.0, 0.39, 1.7, 1.0):
        progress(fraction)
    assert seen == [0.1, 0.4, 1.0]
    assert progress.value == 1.0
