"""Awaiting an engine's network work and pauses so that a cancel of its task cuts them short.

A cancel arrives as a ``threading.Event`` set by another thread (the worker's), which cannot wake
an event loop: the event is looked at every ``CHECK_SECONDS`` instead.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from vidgate.engines.base import GenerationCancelled

T = TypeVar("T")

CHECK_SECONDS: Final = 0.05


async def _watch(cancelled: threading.Event) -> None:
    while not cancelled.is_set():  # noqa: ASYNC110 - a threading.Event, which cannot be awaited
        await asyncio.sleep(CHECK_SECONDS)


async def until_cancelled(work: Awaitable[T], cancelled: threading.Event) -> T:
    """Await ``work``; stop it and raise ``GenerationCancelled`` as soon as ``cancelled`` is set."""
    if cancelled.is_set():
        if inspect.iscoroutine(work):
            work.close()  # never started: closing it spares a "never awaited" warning
        raise GenerationCancelled
    job = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_watch(cancelled))
    try:
        await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (job, watcher):
            pending.cancel()
        # Let a cancelled request close its connection before going on.
        await asyncio.gather(job, watcher, return_exceptions=True)
    if job.done() and not job.cancelled():
        return job.result()
    raise GenerationCancelled


async def sleep_unless_cancelled(
    seconds: float,
    cancelled: threading.Event,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Sleep (with ``sleep``, which tests replace), raising GenerationCancelled at a cancel."""
    await until_cancelled(sleep(seconds), cancelled)
