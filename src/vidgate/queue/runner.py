"""The background work of one process: workers, the lease reaper and the callback dispatcher.

``vidgate serve`` runs it beside the API, ``vidgate worker`` alone. On shutdown workers stop
claiming, running tasks get a grace period to finish, and whatever is still running then is
stopped and handed back to the queue without using up an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vidgate.engines.base import Engine
from vidgate.engines.health import EngineHealth
from vidgate.queue.reaper import Reaper
from vidgate.queue.worker import RunSource, Worker
from vidgate.tasks.signals import TaskSignals
from vidgate.webhooks.dispatcher import CallbackDispatcher

log = logging.getLogger(__name__)

REAP_INTERVAL = 2.0
RETENTION_INTERVAL = 300.0


@dataclass(frozen=True)
class Timings:
    poll_interval: float = 0.5
    shutdown_grace: float = 30.0
    retention_seconds: float = 7 * 86400.0


class BackgroundRunner:
    def __init__(
        self,
        source: RunSource,
        engines: Mapping[str, Engine],
        signals: TaskSignals,
        reaper: Reaper,
        dispatcher: CallbackDispatcher,
        *,
        scratch: Path,
        health: EngineHealth,
        housekeeping: Sequence[Callable[[], Awaitable[object]]] = (),
        timings: Timings | None = None,
        workers: int,
        background: bool = True,
    ) -> None:
        self.signals = signals
        self.reaper = reaper
        self.dispatcher = dispatcher
        # Sweeps of expired rows besides tasks (idempotency keys, uploads), with retention's.
        self.housekeeping = housekeeping
        self.timings = timings or Timings()
        self.background = background
        self.stop = asyncio.Event()
        prefix = f"{socket.gethostname()}-{os.getpid()}"
        self.workers = [
            Worker(
                source,
                engines,
                name=f"{prefix}-{index}",
                scratch=scratch,
                poll_interval=self.timings.poll_interval,
                health=health,
            )
            for index in range(workers)
        ]
        self._workers: list[asyncio.Task[None]] = []
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.background:
            self._loops.append(asyncio.create_task(self._reap(), name="reaper"))
            self._loops.append(
                asyncio.create_task(self.dispatcher.run(self.stop), name="callback-dispatcher")
            )
        self._workers = [
            asyncio.create_task(worker.run(self.stop), name=worker.name) for worker in self.workers
        ]

    async def shutdown(self, grace: float | None = None) -> None:
        grace = self.timings.shutdown_grace if grace is None else grace
        self.stop.set()
        self.signals.wakeup.notify()
        self.dispatcher.notify()
        if self._workers:
            running = [w.current.task.id for w in self.workers if w.current is not None]
            if running:
                log.info("shutting down: %d task(s) get %.0f s to finish", len(running), grace)
            _, late = await asyncio.wait(self._workers, timeout=grace)
            if late:
                for worker in self.workers:
                    worker.abandon()
                # The engines stop between frames; handing back is one write each.
                _, late = await asyncio.wait(late, timeout=10)
            for task in late:
                task.cancel()
        for loop in self._loops:
            loop.cancel()
        for task in (*self._workers, *self._loops):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _reap(self) -> None:
        swept = 0.0
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            try:
                await self.reaper.reap()
                if loop.time() - swept >= RETENTION_INTERVAL:
                    swept = loop.time()
                    await self.reaper.purge_expired(self.timings.retention_seconds)
                    for sweep in self.housekeeping:
                        await sweep()
            except Exception:
                log.exception("lease reaper failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), REAP_INTERVAL)
