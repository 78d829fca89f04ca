"""What the admin commands share: the services they run on, and how they print.

They open the configured database directly (like ``serve``), so they run on an API host. The
server's modules are imported only when a command runs, so ``vidgate --help`` and the HTTP
client commands start quickly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vidgate.engines.config import ConfigError
from vidgate.errors import VidgateError

if TYPE_CHECKING:
    from vidgate.services import Services

console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def run(action: Callable[[Services], Awaitable[T]]) -> T:
    """Run one management action against the configured database, with clean errors."""

    from vidgate.services import open_services
    from vidgate.settings import Settings

    async def go() -> T:
        services = await open_services(Settings(workers=0))
        try:
            return await action(services)
        finally:
            await services.close()

    logging.basicConfig(level=logging.WARNING)
    try:
        return asyncio.run(go())
    except VidgateError as error:
        errors.print(f"[red]error:[/red] {error.message}", highlight=False)
        raise typer.Exit(2) from None
    except ConfigError as error:  # the models file, or a setting's missing extra
        errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def emit(data: Any, as_json: bool, table: Table | str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        console.print(table)


def time_to_minute(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M")
