"""The server's commands, ``serve`` and ``worker``: their settings, logging and file modes.

The server's own modules (``processes``) are imported only when one of them runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine, Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from vidgate.engines.config import ConfigError
from vidgate.settings import Settings

errors = Console(stderr=True)


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [VIDGATE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [VIDGATE_PORT].")] = None,
) -> None:
    """Migrate the database and run the API with its in-process workers."""
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = Settings(**overrides)
    _configure_logging(settings)
    _private_files()
    from vidgate.http_server import AddressInUse, listen_sockets

    # Bound before anything else starts, so a busy port is one line and nothing said
    # "listening" before it failed.
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    where = f"{shown}:{settings.port}"
    try:
        listeners = listen_sockets(settings.host, settings.port)
    except AddressInUse:
        errors.print(
            f"[red]error:[/red] {where} is already in use (another vidgate or program listens "
            "there); stop it, or choose another port with --port or VIDGATE_PORT.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    except OSError as error:
        errors.print(
            f"[red]error:[/red] cannot listen on {where}: {error}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    from vidgate.cli import processes

    with _config_errors():
        _run_fast(processes.serve(settings, listeners))


def worker(
    count: Annotated[
        int | None, typer.Option("--count", help="Workers in this process [VIDGATE_WORKERS].")
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            help="Work for this API server over HTTP, not on the database [VIDGATE_WORKER_SERVER]."
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="The worker token (wk-...) [VIDGATE_WORKER_TOKEN].")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="With --server: claim only these models (comma-separated)."),
    ] = None,
) -> None:
    """Run workers (with the lease reaper and the callback dispatcher) on the database, no API;
    or, with --server and --token, remote workers that reach the API over HTTP only.

    SIGTERM or Ctrl-C stops claiming, gives running tasks VIDGATE_SHUTDOWN_GRACE_SECONDS to
    finish, then hands the rest back to the queue.
    """
    from vidgate.cli import processes
    from vidgate.queue.remote_host import load_remote_setup

    settings = Settings()
    _configure_logging(settings)
    _private_files()
    number = count if count is not None else max(1, settings.workers)
    server = server or settings.worker_server
    if server is None:
        with _config_errors():
            asyncio.run(processes.work(settings, number))
        return
    token = token or settings.worker_token
    if not token:
        errors.print("[red]error:[/red] --server needs --token (or VIDGATE_WORKER_TOKEN).")
        raise typer.Exit(2)
    chosen = [m.strip() for m in (models or "").split(",") if m.strip()]
    with _config_errors():
        setup = load_remote_setup(settings, chosen)
        asyncio.run(processes.work_remote(settings, server, token, setup, number))


@contextlib.contextmanager
def _config_errors() -> Iterator[None]:
    """A wrong model registry file is one clear line and exit status 2, not a traceback."""
    try:
        yield
    except ConfigError as error:
        # Escaped: a message may quote brackets ([engines.x], vidgate[s3]), not markup.
        errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _configure_logging(settings: Settings) -> None:
    from vidgate import log_redaction

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # No URL's query reaches a log line (callback tokens, signatures): see log_redaction.
    log_redaction.install()


def _private_files() -> None:
    """What the server and workers create is owner-only (the data dir holds the URL-signing
    and webhook secrets): the umask gains 077, and keeps any stricter bits it had."""
    os.umask(os.umask(0o077) | 0o077)


def _run_fast(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop (a dependency, as is httptools, the parser uvicorn serves with)."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)
