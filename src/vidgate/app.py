"""create_app(services): wiring only: routes, error rendering, background loops in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vidgate.api import (
    admin,
    callbacks,
    credits,
    errors,
    files,
    health,
    keys,
    models,
    tasks,
    videos,
)
from vidgate.queue.worker import Worker
from vidgate.services import Services

log = logging.getLogger(__name__)

REAP_INTERVAL = 5.0


def create_app(
    services: Services, *, workers: int | None = None, background: bool = True
) -> FastAPI:
    """The ASGI app over ``services``.

    Its lifespan runs ``workers`` in-process workers and, with ``background``, the lease reaper
    and the callback dispatcher (both safe to run in every replica at once).
    """
    count = services.settings.workers if workers is None else workers

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        loops = []
        if background:
            loops.append(asyncio.create_task(_reaper(services, stop), name="reaper"))
            loops.append(
                asyncio.create_task(services.dispatcher.run(stop), name="callback-dispatcher")
            )
        scratch = services.files.scratch_dir()
        for index in range(count):
            worker = Worker(
                services.tasks,
                services.engines,
                services.files,
                name=f"inproc-{index}",
                scratch=scratch,
                poll_interval=services.settings.poll_interval_seconds,
            )
            loops.append(asyncio.create_task(worker.run(stop), name=worker.name))
        try:
            yield
        finally:
            stop.set()
            services.tasks.wakeup.notify()
            services.dispatcher.notify()
            for loop in loops:
                loop.cancel()
            for loop in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await loop

    app = FastAPI(
        title="vidgate",
        summary="A self-hosted video-generation API speaking the evolink.ai video interface.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.services = services
    errors.install(app)
    for module in (videos, tasks, callbacks, models, credits, keys, admin, files, health):
        app.include_router(module.router)
    return app


async def _reaper(services: Services, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await services.tasks.reap()
        except Exception:
            log.exception("lease reaper failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REAP_INTERVAL)
