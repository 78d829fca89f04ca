"""What the admin commands share: the database they open, and nothing else; how they print.

They open the configured database directly (like ``serve``), so they run on an API host. They
leave closed what only serving needs (the engines and their models file, the file store or
bucket, the outbound client): a wrong models file or an unreachable bucket stops ``serve``, not
the commands that manage accounts. The database's modules are imported only when a command
runs, so ``vidgate --help`` and the HTTP client commands start quickly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vidgate.engines.config import ConfigError
from vidgate.errors import VidgateError

if TYPE_CHECKING:
    from vidgate.auth.accounts import AccountService
    from vidgate.auth.worker_tokens import WorkerTokenService
    from vidgate.billing.ledger import LedgerService
    from vidgate.settings import Settings

console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@dataclass(frozen=True)
class AdminServices:
    """The services the admin commands use, all on the one database."""

    accounts: AccountService
    ledger: LedgerService
    worker_tokens: WorkerTokenService


def run(action: Callable[[AdminServices], Awaitable[T]]) -> T:
    """Run one management action against the configured database, with clean errors."""
    from vidgate.settings import Settings

    logging.basicConfig(level=logging.WARNING)
    try:
        return asyncio.run(_on_database(Settings(), action))
    except VidgateError as error:
        errors.print(f"[red]error:[/red] {error.message}", highlight=False)
        raise typer.Exit(2) from None
    except ConfigError as error:  # the database's driver is not installed
        errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


async def _on_database(settings: Settings, action: Callable[[AdminServices], Awaitable[T]]) -> T:
    """Migrate the database (as ``serve`` does at start), run ``action`` on it, close it."""
    from vidgate.auth.accounts import AccountService
    from vidgate.auth.worker_tokens import WorkerTokenService
    from vidgate.billing.ledger import LedgerService
    from vidgate.extras import POSTGRES, importable, require_extras
    from vidgate.store.database import Database

    # Only the database's driver must be installed: the bucket's and Redis' stay unused here.
    require_extras(
        settings, installed=lambda module: module != POSTGRES.module or importable(module)
    )
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
        services = AdminServices(
            accounts=AccountService(db),
            ledger=LedgerService(db),
            worker_tokens=WorkerTokenService(db),
        )
        return await action(services)
    finally:
        await db.close()


def emit(data: Any, as_json: bool, table: Table | str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        console.print(table)


def time_to_minute(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M")


def prefix_table(records: Sequence[Any], times: Sequence[tuple[str, str]]) -> Table:
    """Credentials (API keys, worker tokens) as stored: id, name, the visible prefix, and the
    ``(heading, attribute)`` times given, to the minute."""
    table = Table("id", "name", "prefix", *(heading for heading, _ in times))
    for record in records:
        moments = (time_to_minute(getattr(record, attribute)) for _, attribute in times)
        table.add_row(record.id, record.name, record.prefix + "…", *moments)
    return table
