"""The ``vidgate`` command: serve, and manage accounts, keys and user groups."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from vidgate.app import create_app
from vidgate.engines.config import ConfigError
from vidgate.errors import VidgateError
from vidgate.queue.runner import BackgroundRunner
from vidgate.services import Services, bootstrap, open_services
from vidgate.settings import Settings
from vidgate.store.account_rows import Account, GroupLimits, KeyRecord
from vidgate.tasks.model import cents_to_credits

app = typer.Typer(help="vidgate: a self-hosted video-generation API.", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts and their credits.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
groups_app = typer.Typer(help="User groups: price ratio and limits.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(groups_app, name="groups")

console = Console()
errors = Console(stderr=True)
log = logging.getLogger("vidgate")
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.callback()
def _root() -> None:
    """vidgate: a self-hosted video-generation API."""


@app.command()
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
    with _config_errors():
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
        config = uvicorn.Config(
            create_app(services),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        log.info("vidgate listening on %s", settings.base_url)
        await uvicorn.Server(config).serve()
    finally:
        await services.close()


@app.command()
def worker(
    count: Annotated[
        int | None, typer.Option("--count", help="Workers in this process [VIDGATE_WORKERS].")
    ] = None,
) -> None:
    """Run workers (with the lease reaper and the callback dispatcher) on the database, no API.

    SIGTERM or Ctrl-C stops claiming, gives running tasks VIDGATE_SHUTDOWN_GRACE_SECONDS to
    finish, then hands the rest back to the queue.
    """
    settings = Settings()
    _configure_logging(settings)
    with _config_errors():
        asyncio.run(_work(settings, count if count is not None else max(1, settings.workers)))


async def _work(settings: Settings, count: int) -> None:
    services = await open_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = BackgroundRunner(services, workers=count)
    try:
        await runner.start()
        log.info("vidgate worker: %d worker(s) on %s", count, settings.resolved_database_url)
        await stop.wait()
        log.info("vidgate worker: stopping")
        await runner.shutdown()
    finally:
        await services.close()


@contextlib.contextmanager
def _config_errors() -> Iterator[None]:
    """A wrong model registry file is one clear line and exit status 2, not a traceback."""
    try:
        yield
    except ConfigError as error:
        errors.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(2) from None


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _run(action: Callable[[Services], Awaitable[T]]) -> T:
    """Run one management action against the configured database, with clean errors."""

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


def _emit(data: Any, as_json: bool, table: Table | str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        console.print(table)


def _credits(value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not a number of credits") from None


def _time(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M")


def _account_data(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "user_group": account.user_group,
        "is_admin": account.is_admin,
        "balance": float(cents_to_credits(account.balance_cents)),
    }


def _key_data(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "account_id": record.account_id,
        "name": record.name,
        "prefix": record.prefix,
        "created": int(record.created_at),
        "last_used": None if record.last_used_at is None else int(record.last_used_at),
        "expires": None if record.expires_at is None else int(record.expires_at),
        "revoked": None if record.revoked_at is None else int(record.revoked_at),
    }


def _group_data(group: GroupLimits) -> dict[str, Any]:
    return {
        "name": group.name,
        "price_ratio": str(group.price_ratio),
        "rate_limit_per_minute": group.rate_limit_per_minute,
        "max_active_tasks": group.max_active_tasks,
    }


def _accounts_table(accounts: list[Account]) -> Table:
    table = Table("id", "name", "group", "admin", "balance")
    for a in accounts:
        balance = str(cents_to_credits(a.balance_cents))
        table.add_row(a.id, a.name, a.user_group, "yes" if a.is_admin else "", balance)
    return table


@accounts_app.command("create")
def accounts_create(
    name: str,
    credits: Annotated[str, typer.Option(help="Opening credits.")] = "0",
    group: Annotated[str, typer.Option(help="User group.")] = "default",
    admin: Annotated[bool, typer.Option("--admin", help="May manage every account.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create an account with one API key, printed once."""
    amount = _credits(credits)

    async def action(services: Services) -> tuple[Account, str]:
        created = await services.accounts.create_account(
            name, credits=amount, group=group, is_admin=admin
        )
        return await services.accounts.get_account(created.account_id), created.key

    account, key = _run(action)
    data = {**_account_data(account), "key": key}
    _emit(
        data,
        as_json,
        f"Created account {account.name} ({account.id}). Its key, shown once:\n\n    {key}\n",
    )


@accounts_app.command("list")
def accounts_list(as_json: JsonOption = False) -> None:
    """List every account with its group and balance."""
    accounts = _run(lambda services: services.accounts.list_accounts())
    _emit([_account_data(a) for a in accounts], as_json, _accounts_table(accounts))


@accounts_app.command("topup")
def accounts_topup(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    credits: Annotated[str, typer.Argument(help="Credits to add.")],
    reason: Annotated[str | None, typer.Option(help="Kept on the ledger entry.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add credits to an account."""
    amount = _credits(credits)

    async def action(services: Services) -> Account:
        await services.ledger.top_up(account, amount, reason=reason)
        return await services.accounts.get_account(account)

    found = _run(action)
    _emit(_account_data(found), as_json, _accounts_table([found]))


@accounts_app.command("adjust")
def accounts_adjust(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    credits: Annotated[str, typer.Argument(help="Credits to add (negative: to take away).")],
    reason: Annotated[str, typer.Option(help="Why: kept on the ledger entry.")],
    as_json: JsonOption = False,
) -> None:
    """Correct an account's balance up or down, with a reason."""
    amount = _credits(credits)

    async def action(services: Services) -> Account:
        await services.ledger.adjust(account, amount, reason=reason)
        return await services.accounts.get_account(account)

    found = _run(action)
    _emit(_account_data(found), as_json, _accounts_table([found]))


@accounts_app.command("set-group")
def accounts_set_group(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    group: str,
    as_json: JsonOption = False,
) -> None:
    """Move an account to another user group."""
    found = _run(lambda services: services.accounts.set_group(account, group))
    _emit(_account_data(found), as_json, _accounts_table([found]))


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    name: Annotated[str, typer.Option(help="A name to tell keys apart.")] = "default",
    expires_days: Annotated[
        float | None, typer.Option(help="Expire after this many days.", min=0.001)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key for an account, printed once."""
    expires_at = None
    if expires_days is not None:
        expires_at = (datetime.now(UTC) + timedelta(days=expires_days)).timestamp()
    created = _run(
        lambda services: services.accounts.create_key(account, name=name, expires_at=expires_at)
    )
    data = {**_key_data(created.record), "key": created.secret}
    _emit(data, as_json, f"Created key {created.record.id}. Shown once:\n\n    {created.secret}\n")


@keys_app.command("list")
def keys_list(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    as_json: JsonOption = False,
) -> None:
    """List an account's keys (prefixes only: full keys are never stored)."""
    records = _run(lambda services: services.accounts.list_keys(account))
    table = Table("id", "name", "prefix", "created", "last used", "expires", "revoked")
    for r in records:
        table.add_row(
            r.id,
            r.name,
            r.prefix + "…",
            _time(r.created_at),
            _time(r.last_used_at),
            _time(r.expires_at),
            _time(r.revoked_at),
        )
    _emit([_key_data(r) for r in records], as_json, table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, as_json: JsonOption = False) -> None:
    """Revoke a key: the next request with it is refused."""
    record = _run(lambda services: services.accounts.revoke_key(key_id))
    _emit(_key_data(record), as_json, f"Revoked key {record.id} ({record.prefix}…).")


@groups_app.command("set")
def groups_set(
    name: str,
    price_ratio: Annotated[str, typer.Option("--ratio", help="Price multiplier.")] = "1.0",
    rate_limit: Annotated[
        int | None, typer.Option(help="Requests per minute per key (default: the server's).")
    ] = None,
    max_active: Annotated[
        int | None, typer.Option(help="Unfinished tasks per account (default: the server's).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create or change a user group."""
    group = _run(
        lambda services: services.accounts.set_group_limits(
            name,
            price_ratio=price_ratio,
            rate_limit_per_minute=rate_limit,
            max_active_tasks=max_active,
        )
    )
    _emit(_group_data(group), as_json, _groups_table([group]))


@groups_app.command("list")
def groups_list(as_json: JsonOption = False) -> None:
    """List the user groups."""
    groups = _run(lambda services: services.accounts.list_groups())
    _emit([_group_data(g) for g in groups], as_json, _groups_table(groups))


def _groups_table(groups: list[GroupLimits]) -> Table:
    table = Table("name", "price ratio", "requests/min", "max unfinished")
    for g in groups:
        table.add_row(
            g.name,
            str(g.price_ratio),
            "default" if g.rate_limit_per_minute is None else str(g.rate_limit_per_minute),
            "default" if g.max_active_tasks is None else str(g.max_active_tasks),
        )
    return table


def main() -> None:
    app()
