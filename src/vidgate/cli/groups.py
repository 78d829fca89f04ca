"""``vidgate groups``: the user groups, each with a price ratio and its own limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from vidgate.cli.admin import JsonOption, emit, run

if TYPE_CHECKING:
    from vidgate.auth.model import GroupLimits

app = typer.Typer(help="User groups: price ratio and limits.", no_args_is_help=True)


def _group_data(group: GroupLimits) -> dict[str, Any]:
    return {
        "name": group.name,
        "price_ratio": str(group.price_ratio),
        "rate_limit_per_minute": group.rate_limit_per_minute,
        "max_active_tasks": group.max_active_tasks,
    }


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


@app.command("set")
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
    group = run(
        lambda services: services.accounts.set_group_limits(
            name,
            price_ratio=price_ratio,
            rate_limit_per_minute=rate_limit,
            max_active_tasks=max_active,
        )
    )
    emit(_group_data(group), as_json, _groups_table([group]))


@app.command("list")
def groups_list(as_json: JsonOption = False) -> None:
    """List the user groups."""
    groups = run(lambda services: services.accounts.list_groups())
    emit([_group_data(g) for g in groups], as_json, _groups_table(groups))
