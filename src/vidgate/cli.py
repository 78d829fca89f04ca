"""The ``vidgate`` command: serve, and (in later issues) accounts, keys, workers, generate."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from vidgate.app import create_app
from vidgate.services import bootstrap, open_services
from vidgate.settings import Settings

app = typer.Typer(help="vidgate: a self-hosted video-generation API.", no_args_is_help=True)
console = Console()
log = logging.getLogger("vidgate")


@app.callback()
def _root() -> None:
    """vidgate: a self-hosted video-generation API."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [VIDGATE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [VIDGATE_PORT].")] = None,
) -> None:
    """Migrate the database and run the API with its in-process workers."""
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
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
        app = create_app(services)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        log.info("vidgate listening on %s", settings.base_url)
        await server.serve()
    finally:
        await services.close()


def main() -> None:
    app()
