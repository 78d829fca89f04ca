"""The ``vidgate`` command: its Typer app, with one module per command group.

``server``: ``serve`` and ``worker``. On the database: ``accounts``, ``keys``, ``groups`` and
``workers`` (sharing ``admin``). Over HTTP: ``generate``, ``tasks`` and ``credits`` (sharing
``client_options``, ``failures``, ``output``, ``progress`` and ``waiting``). The server's modules
load only when ``serve`` or ``worker`` runs, so the client commands start quickly.
"""

from __future__ import annotations

import typer

from vidgate.cli import accounts, credits, generate, groups, keys, server, tasks, workers

app = typer.Typer(help="vidgate: a self-hosted video-generation API.", no_args_is_help=True)
app.add_typer(accounts.app, name="accounts")
app.add_typer(keys.app, name="keys")
app.add_typer(groups.app, name="groups")
app.add_typer(workers.app, name="workers")
app.command("generate")(generate.generate)
app.add_typer(tasks.app, name="tasks")
app.command("credits")(credits.credits)
app.command("serve")(server.serve)
app.command("worker")(server.worker)


@app.callback()
def _root() -> None:
    """vidgate: a self-hosted video-generation API."""


def main() -> None:
    app()
