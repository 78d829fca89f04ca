"""``vidgate accounts``: create and list accounts, add or correct credits, change a group."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from vidgate.billing.model import cents_to_credits
from vidgate.cli.admin import AdminServices, JsonOption, emit, run

if TYPE_CHECKING:
    from vidgate.auth.model import Account

app = typer.Typer(help="Accounts and their credits.", no_args_is_help=True)


def _credits(value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not a number of credits") from None


def _account_data(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "user_group": account.user_group,
        "is_admin": account.is_admin,
        "balance": float(cents_to_credits(account.balance_cents)),
    }


def _accounts_table(accounts: list[Account]) -> Table:
    table = Table("id", "name", "group", "admin", "balance")
    for a in accounts:
        balance = str(cents_to_credits(a.balance_cents))
        table.add_row(a.id, a.name, a.user_group, "yes" if a.is_admin else "", balance)
    return table


@app.command("create")
def accounts_create(
    name: str,
    credits: Annotated[str, typer.Option(help="Opening credits.")] = "0",
    group: Annotated[str, typer.Option(help="User group.")] = "default",
    admin: Annotated[bool, typer.Option("--admin", help="May manage every account.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create an account with one API key, printed once."""
    amount = _credits(credits)

    async def action(services: AdminServices) -> tuple[Account, str]:
        created = await services.accounts.create_account(
            name, credits=amount, group=group, is_admin=admin
        )
        return await services.accounts.get_account(created.account_id), created.key

    account, key = run(action)
    data = {**_account_data(account), "key": key}
    emit(
        data,
        as_json,
        f"Created account {account.name} ({account.id}). Its key, shown once:\n\n    {key}\n",
    )


@app.command("list")
def accounts_list(as_json: JsonOption = False) -> None:
    """List every account with its group and balance."""
    accounts = run(lambda services: services.accounts.list_accounts())
    emit([_account_data(a) for a in accounts], as_json, _accounts_table(accounts))


@app.command("topup")
def accounts_topup(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    credits: Annotated[str, typer.Argument(help="Credits to add.")],
    reason: Annotated[str | None, typer.Option(help="Kept on the ledger entry.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add credits to an account."""
    amount = _credits(credits)

    async def action(services: AdminServices) -> Account:
        await services.ledger.top_up(account, amount, reason=reason)
        return await services.accounts.get_account(account)

    found = run(action)
    emit(_account_data(found), as_json, _accounts_table([found]))


@app.command("adjust")
def accounts_adjust(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    credits: Annotated[str, typer.Argument(help="Credits to add (negative: to take away).")],
    reason: Annotated[str, typer.Option(help="Why: kept on the ledger entry.")],
    as_json: JsonOption = False,
) -> None:
    """Correct an account's balance up or down, with a reason."""
    amount = _credits(credits)

    async def action(services: AdminServices) -> Account:
        await services.ledger.adjust(account, amount, reason=reason)
        return await services.accounts.get_account(account)

    found = run(action)
    emit(_account_data(found), as_json, _accounts_table([found]))


@app.command("set-group")
def accounts_set_group(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    group: str,
    as_json: JsonOption = False,
) -> None:
    """Move an account to another user group."""
    found = run(lambda services: services.accounts.set_group(account, group))
    emit(_account_data(found), as_json, _accounts_table([found]))
