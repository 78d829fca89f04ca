"""What the client commands share: their options and the SDK client those make.

Their exit statuses are in ``failures``; waiting, the cancel prompt and the download in
``waiting``; what they print in ``output``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidgate.cli.failures import EXIT_USAGE, fail
from vidgate.client import Client, VidgateError

BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar="VIDGATE_BASE_URL",
        help="The vidgate server (default: http://127.0.0.1:8000).",
        show_default=False,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="VIDGATE_API_KEY", help="Your API key.", show_default=False),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print only JSON on stdout, for scripts; no progress bars.")
]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", help="Stop waiting after this many seconds (exit 124).", min=0.1),
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out", help="Where to save the video (default: <task id>.mp4).", show_default=False
    ),
]


def open_client(base_url: str | None, api_key: str | None) -> Client:
    if not api_key:
        fail("no API key: pass --api-key or set VIDGATE_API_KEY", EXIT_USAGE)
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        fail(f"--base-url {base_url}: must start with http:// or https://", EXIT_USAGE)
    try:
        return Client(api_key=api_key, base_url=base_url)
    except VidgateError as error:
        fail(error.message, EXIT_USAGE)


def check_out(out: Path | None) -> Path | None:
    """``--out``, checked before any request: a file in an existing directory, or one."""
    if out is None:
        return None
    out = out.expanduser()
    if not out.is_dir() and not out.parent.is_dir():
        fail(f"--out {out}: directory {out.parent} does not exist", EXIT_USAGE)
    return out
