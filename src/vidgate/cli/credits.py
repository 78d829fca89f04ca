"""``vidgate credits``: your account's remaining, used and reserved credits on a server."""

from __future__ import annotations

from vidgate.cli.client_options import ApiKeyOption, BaseUrlOption, JsonOption, open_client
from vidgate.cli.failures import reported_failures
from vidgate.cli.output import console, print_json


def credits(
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Show your remaining and used credits."""
    with reported_failures(), open_client(base_url, api_key) as client:
        balance = client.credits()
        if as_json:
            print_json(
                {"remaining": balance.remaining, "used": balance.used, "reserved": balance.reserved}
            )
            return
        lines = [f"Remaining credits: {balance.remaining:.2f}", f"Used credits: {balance.used:.2f}"]
        if balance.reserved:
            lines.append(f"Reserved by unfinished tasks: {balance.reserved:.2f}")
        console.print("\n".join(lines), highlight=False)
