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

from vidgate.queue.worker import Worker
from vidgate.services import Services

log = logging.getLogger(__name__)

REAP_INTERVAL = 2.0
RETENTION_INTERVAL = 300.0


class BackgroundRunner:
    def __init__(self, services: Services, *, workers: int, background: bool = True) -> None:
        self.services = services
        self.background = background
        self.stop = asyncio.Event()
        scratch = services.files.scratch_dir()
        prefix = f"{socket.gethostname()}-{os.getpid()}"
        self.workers = [
            Worker(
                services.runs,
                services.engines,
                services.files,
                name=f"{prefix}-{index}",
                scratch=scratch,
                poll_interval=services.settings.poll_interval_seconds,
                health=services.health,
            )
            for index in range(workers)
        ]
        self._workers: list[asyncio.Task[None]] = []
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.background:
            self._loops.append(asyncio.create_task(self._reap(), name="reaper"))
            self._loops.append(
                asyncio.create_task(
                    self.services.dispatcher.run(self.stop), name="callback-dispatcher"
                )
            )
        self._workers = [
            asyncio.create_task(worker.run(self.stop), name=worker.name) for worker in self.workers
        ]

    async def shutdown(self, grace: float | None = None) -> None:
        grace = self.services.settings.shutdown_grace_seconds if grace is None else grace
        self.stop.set()
        self.services.tasks.wakeup.notify()
        self.services.dispatcher.notify()
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
        retention = self.services.settings.retention_days * 86400
        swept = 0.0
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            try:
                await self.services.reaper.reap()
                if loop.time() - swept >= RETENTION_INTERVAL:
                    swept = loop.time()
                    await self.services.reaper.purge_expired(retention)
                    await self.services.idempotency.forget_expired()
                    await self.services.uploads.purge_expired()
            except Exception:
                log.exception("lease reaper failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), REAP_INTERVAL)
