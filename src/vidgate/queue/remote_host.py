"""A worker host's process (``vidgate worker --server``): this host's engines, and remote
workers that run them for an API server until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from vidgate.engines.base import Engine
from vidgate.engines.config import ConfigError, load_model_config
from vidgate.engines.factory import build_engines
from vidgate.engines.health import EngineHealth
from vidgate.engines.registry import ModelRegistry
from vidgate.media.scratch import ScratchSpace
from vidgate.queue.remote import RemoteRuns
from vidgate.queue.worker import Worker
from vidgate.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteSetup:
    """What a worker host runs: its registry, its engines, and the models it claims."""

    registry: ModelRegistry
    engines: dict[str, Engine]
    models: list[str]


def load_remote_setup(settings: Settings, models: Sequence[str] | None) -> RemoteSetup:
    """This host's registry and engines; ``models`` (default: every model it can serve)."""
    config = load_model_config(settings.models, environ=settings.environment())
    registry = config.registry
    if models:
        chosen = []
        for name in models:
            spec = registry.models.get(name) or next(
                (s for s in registry if name in s.aliases), None
            )
            if spec is None:
                known = ", ".join(sorted(registry.models))
                raise ConfigError(f"--models: {name!r} is not in the model registry ({known})")
            chosen.append(spec.name)
    else:
        chosen = sorted(registry.models)
    engines = build_engines(config.engines)
    return RemoteSetup(registry, engines, sorted(set(chosen)))


async def run_remote_workers(
    settings: Settings,
    *,
    server: str,
    token: str,
    setup: RemoteSetup,
    count: int,
    stop: asyncio.Event,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Run ``count`` workers against ``server`` until ``stop``; then, like a local worker
    process, give running tasks the grace period and hand back what is still running."""
    # The same scratch space as a server's (files/tmp there, tmp here): its own locked folder,
    # and a start sweeps what killed workers on this host left behind.
    space = ScratchSpace(settings.data_dir / "tmp")
    swept = await asyncio.to_thread(space.sweep)
    if swept:
        log.info("swept %d scratch folder(s) or file(s) left by stopped processes", swept)
    scratch = space.folder()
    # A heartbeat a second would make httpx's per-request INFO line most of the log.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    health = EngineHealth()
    prefix = f"{socket.gethostname()}-{os.getpid()}"
    async with httpx.AsyncClient(
        base_url=server.rstrip("/"),
        headers={"Authorization": f"Bearer {token}", "User-Agent": "vidgate-worker"},
        timeout=httpx.Timeout(30),
        transport=transport,
        trust_env=False,
    ) as client:
        workers = [
            Worker(
                RemoteRuns(
                    client,
                    setup.registry,
                    setup.models,
                    claim_wait=settings.worker_claim_wait_seconds,
                    stop=stop,
                ),
                setup.engines,
                name=f"{prefix}-{index}",
                scratch=scratch,
                poll_interval=settings.poll_interval_seconds,
                health=health,
            )
            for index in range(count)
        ]
        running = [asyncio.create_task(w.run(stop), name=w.name) for w in workers]
        log.info(
            "vidgate worker: %d remote worker(s) on %s for %s",
            count,
            server,
            ", ".join(setup.models),
        )
        try:
            await stop.wait()
            log.info("vidgate worker: stopping")
            await _shutdown(workers, running, settings.shutdown_grace_seconds)
        finally:
            for task in running:
                task.cancel()
            for engine in setup.engines.values():
                closing = getattr(engine, "aclose", None)
                if closing is not None:
                    await closing()
            space.release()


async def _shutdown(workers: list[Worker], running: list[asyncio.Task[None]], grace: float) -> None:
    if any(w.current is not None for w in workers):
        log.info("shutting down: running tasks get %.0f s to finish", grace)
    _, late = await asyncio.wait(running, timeout=grace) if running else (set(), set())
    if late:
        for worker in workers:
            worker.abandon()
        _, late = await asyncio.wait(late, timeout=10)
    for task in late:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
