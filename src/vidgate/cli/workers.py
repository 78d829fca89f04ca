"""``vidgate workers token``: the tokens remote workers reach the API with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from vidgate.cli.admin import JsonOption, emit, prefix_table, run

if TYPE_CHECKING:
    from vidgate.auth.model import WorkerTokenRecord

app = typer.Typer(help="Remote workers and their tokens.", no_args_is_help=True)
tokens_app = typer.Typer(help="Worker tokens (wk-...).", no_args_is_help=True)
app.add_typer(tokens_app, name="token")


def _worker_token_data(record: WorkerTokenRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "created": int(record.created_at),
        "last_used": None if record.last_used_at is None else int(record.last_used_at),
        "revoked": None if record.revoked_at is None else int(record.revoked_at),
    }


@tokens_app.command("create")
def worker_tokens_create(
    name: Annotated[str, typer.Option(help="A name to tell tokens (hosts) apart.")] = "worker",
    as_json: JsonOption = False,
) -> None:
    """Create a worker token for `vidgate worker --server URL --token ...`, printed once."""
    created = run(lambda services: services.worker_tokens.create(name))
    data = {**_worker_token_data(created.record), "token": created.secret}
    emit(
        data,
        as_json,
        f"Created worker token {created.record.id}. Shown once:\n\n    {created.secret}\n",
    )


@tokens_app.command("list")
def worker_tokens_list(as_json: JsonOption = False) -> None:
    """List worker tokens (prefixes only: full tokens are never stored)."""
    records = run(lambda services: services.worker_tokens.list())
    times = [("created", "created_at"), ("last used", "last_used_at"), ("revoked", "revoked_at")]
    table = prefix_table(records, times)
    emit([_worker_token_data(r) for r in records], as_json, table)


@tokens_app.command("revoke")
def worker_tokens_revoke(token_id: str, as_json: JsonOption = False) -> None:
    """Revoke a worker token: its next call is refused."""
    record = run(lambda services: services.worker_tokens.revoke(token_id))
    emit(
        _worker_token_data(record), as_json, f"Revoked worker token {record.id} ({record.prefix}…)."
    )
