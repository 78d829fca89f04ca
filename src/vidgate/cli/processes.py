"""What ``vidgate serve`` and ``vidgate worker`` run; only they import the server's modules."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from rich.console import Console
from sqlalchemy.engine import make_url

from vidgate.app import create_app
from vidgate.http_server import guarded_protocol, raise_descriptor_limit
from vidgate.queue.remote_host import RemoteSetup, run_remote_workers
from vidgate.services import bootstrap, open_services
from vidgate.settings import Settings

console = Console()
log = logging.getLogger("vidgate")


async def serve(settings: Settings, listeners: list[socket.socket]) -> None:
    """Serve on ``listeners``, bound already (a busy port never got this far)."""
    services = await open_services(settings)
    try:
        created = await bootstrap(services)
        if created is not None and settings.bootstrap_key:
            console.print("vidgate created the admin account with VIDGATE_BOOTSTRAP_KEY.")
        elif created is not None:
            console.print(
                "\n[bold]vidgate created the admin account.[/bold] Its API key, shown only now:"
                f"\n\n    [bold green]{created.key}[/bold green]\n",
                highlight=False,
                soft_wrap=True,
            )
        for spec in services.registry:
            embedded = " (the embedded default: a CPU preview renderer)"
            note = embedded if spec.engine == "preview" else ""
            log.info("model %s runs on engine %s%s", spec.name, spec.engine, note)
        config = uvicorn.Config(
            create_app(services),
            # Read head deadlines and the connection cap live in the protocol; uvicorn's own
            # limit_concurrency stays off (it answers plain text and counts requests too).
            http=guarded_protocol(
                header_timeout=settings.header_timeout_seconds,
                max_connections=settings.max_connections,
            ),
            timeout_keep_alive=settings.keep_alive_seconds,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        raise_descriptor_limit(settings.max_connections)
        # What is loaded by now lives as long as the process: the garbage collector need not
        # walk it over and over (a GET took 13% less CPU in-process with this, measured).
        gc.collect()
        gc.freeze()
        where = ", ".join(_address(listener) for listener in listeners)
        server = DrainingServer(config, services.gateway.drain, f"{settings.base_url} ({where})")
        await server.serve(sockets=listeners)
    finally:
        await services.close()


async def work_remote(
    settings: Settings, server: str, token: str, setup: RemoteSetup, count: int
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_remote_workers(
        settings, server=server, token=token, setup=setup, count=count, stop=stop
    )


async def work(settings: Settings, count: int) -> None:
    services = await open_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = services.background(workers=count)
    try:
        await runner.start()
        database = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
        log.info("vidgate worker: %d worker(s) on %s", count, database)
        await stop.wait()
        log.info("vidgate worker: stopping")
        await runner.shutdown()
    finally:
        await services.close()


def _address(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"[{host}]:{port}" if listener.family == socket.AF_INET6 else f"{host}:{port}"


class DrainingServer(uvicorn.Server):
    """Tells the worker protocol's open claims to end as soon as shutdown begins, so a
    restart never waits for long polls; says it listens once it does."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], None], where: str) -> None:
        super().__init__(config)
        self.drain = drain
        self.where = where
        self.loop = asyncio.get_running_loop()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:  # said once the app has started and the socket accepts
            log.info("vidgate listening on %s", self.where)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self.loop.call_soon_threadsafe(self.drain)
