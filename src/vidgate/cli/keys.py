"""``vidgate keys``: create an account's API keys, list them by prefix, revoke them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vidgate.cli.admin import JsonOption, emit, prefix_table, run

if TYPE_CHECKING:
    from vidgate.auth.model import KeyRecord

app = typer.Typer(help="API keys.", no_args_is_help=True)


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


@app.command("create")
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
    created = run(
        lambda services: services.accounts.create_key(account, name=name, expires_at=expires_at)
    )
    data = {**_key_data(created.record), "key": created.secret}
    emit(data, as_json, f"Created key {created.record.id}. Shown once:\n\n    {created.secret}\n")


@app.command("list")
def keys_list(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    as_json: JsonOption = False,
) -> None:
    """List an account's keys (prefixes only: full keys are never stored)."""
    records = run(lambda services: services.accounts.list_keys(account))
    times = [
        ("created", "created_at"),
        ("last used", "last_used_at"),
        ("expires", "expires_at"),
        ("revoked", "revoked_at"),
    ]
    table = prefix_table(records, times)
    emit([_key_data(r) for r in records], as_json, table)


@app.command("revoke")
def keys_revoke(key_id: str, as_json: JsonOption = False) -> None:
    """Revoke a key: the next request with it is refused."""
    record = run(lambda services: services.accounts.revoke_key(key_id))
    emit(_key_data(record), as_json, f"Revoked key {record.id} ({record.prefix}…).")
