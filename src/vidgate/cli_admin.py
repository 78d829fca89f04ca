"""The admin commands: accounts, API keys, user groups and worker tokens, on the database.

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
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vidgate.engines.config import ConfigError
from vidgate.errors import VidgateError
from vidgate.tasks.model import cents_to_credits

if TYPE_CHECKING:
    from vidgate.services import Services
    from vidgate.store.account_rows import Account, GroupLimits, KeyRecord
    from vidgate.store.worker_token_rows import WorkerTokenRecord

accounts_app = typer.Typer(help="Accounts and their credits.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
groups_app = typer.Typer(help="User groups: price ratio and limits.", no_args_is_help=True)
workers_app = typer.Typer(help="Remote workers and their tokens.", no_args_is_help=True)
worker_tokens_app = typer.Typer(help="Worker tokens (wk-...).", no_args_is_help=True)
workers_app.add_typer(worker_tokens_app, name="token")

console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _run(action: Callable[[Services], Awaitable[T]]) -> T:
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


def _worker_token_data(record: WorkerTokenRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "created": int(record.created_at),
        "last_used": None if record.last_used_at is None else int(record.last_used_at),
        "revoked": None if record.revoked_at is None else int(record.revoked_at),
    }


@worker_tokens_app.command("create")
def worker_tokens_create(
    name: Annotated[str, typer.Option(help="A name to tell tokens (hosts) apart.")] = "worker",
    as_json: JsonOption = False,
) -> None:
    """Create a worker token for `vidgate worker --server URL --token ...`, printed once."""
    created = _run(lambda services: services.worker_tokens.create(name))
    data = {**_worker_token_data(created.record), "token": created.secret}
    _emit(
        data,
        as_json,
        f"Created worker token {created.record.id}. Shown once:\n\n    {created.secret}\n",
    )


@worker_tokens_app.command("list")
def worker_tokens_list(as_json: JsonOption = False) -> None:
    """List worker tokens (prefixes only: full tokens are never stored)."""
    records = _run(lambda services: services.worker_tokens.list())
    table = Table("id", "name", "prefix", "created", "last used", "revoked")
    for r in records:
        table.add_row(
            r.id,
            r.name,
            r.prefix + "…",
            _time(r.created_at),
            _time(r.last_used_at),
            _time(r.revoked_at),
        )
    _emit([_worker_token_data(r) for r in records], as_json, table)


@worker_tokens_app.command("revoke")
def worker_tokens_revoke(token_id: str, as_json: JsonOption = False) -> None:
    """Revoke a worker token: its next call is refused."""
    record = _run(lambda services: services.worker_tokens.revoke(token_id))
    _emit(
        _worker_token_data(record), as_json, f"Revoked worker token {record.id} ({record.prefix}…)."
    )
