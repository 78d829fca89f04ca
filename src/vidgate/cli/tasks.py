"""``vidgate tasks``: show, list, cancel, wait for and download your tasks on a server."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from vidgate.cli.client_options import (
    ApiKeyOption,
    BaseUrlOption,
    JsonOption,
    OutOption,
    TimeoutOption,
    check_out,
    open_client,
)
from vidgate.cli.failures import EXIT_TASK_FAILED, fail, reported_failures
from vidgate.cli.output import (
    console,
    error_text,
    print_json,
    print_table,
    task_data,
    task_table,
    time_text,
)
from vidgate.cli.waiting import Interrupted, ask_cancel, report_finished, wait
from vidgate.client import Task

app = typer.Typer(help="Your tasks on a vidgate server.", no_args_is_help=True)

TaskIdArgument = Annotated[str, typer.Argument(metavar="ID", help="The task id.")]


@app.command("get")
def tasks_get(
    task_id: TaskIdArgument,
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Show one task."""
    with reported_failures(), open_client(base_url, api_key) as client:
        task = client.tasks.get(task_id)
        if as_json:
            print_json(task_data(task))
        else:
            print_table(task_table(task))


@app.command("list")
def tasks_list(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only tasks with this status (pending, processing, ...)."),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only tasks of this model.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", help="Tasks per page (1-100).", min=1, max=100)
    ] = 20,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Start after this page (next_cursor).")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Follow the pages to the last task.")
    ] = False,
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List your tasks, newest first."""
    with reported_failures(), open_client(base_url, api_key) as client:
        tasks: list[Task] = []
        while True:
            page = client.tasks.list(status=status, model=model, limit=limit, cursor=cursor)
            tasks.extend(page.data)
            cursor = page.next_cursor
            if not every or not page.has_more or cursor is None:
                break
        more = cursor is not None and not every
        if as_json:
            print_json(
                {
                    "object": "list",
                    "data": [task_data(task) for task in tasks],
                    "has_more": more,
                    "next_cursor": cursor if more else None,
                }
            )
            return
        table = Table("id", "status", "progress", "model", "created", "error", box=SIMPLE_HEAD)
        for task in tasks:
            error = task.error.code if task.error is not None else ""
            created = time_text(task.created)[:-3]  # to the minute
            table.add_row(task.id, task.status, f"{task.progress}%", task.model, created, error)
        print_table(table)
        if more:
            console.print(f"More: --cursor {cursor}", highlight=False, soft_wrap=True)


@app.command("cancel")
def tasks_cancel(
    task_id: TaskIdArgument,
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Cancel a pending or processing task (its credits are released)."""
    with reported_failures(), open_client(base_url, api_key) as client:
        task = client.tasks.cancel(task_id)
        if as_json:
            print_json(task_data(task))
        elif task.status == "failed":
            console.print(f"Cancelled {task.id}.", highlight=False, soft_wrap=True)
        else:
            console.print(
                f"Asked {task.id} to stop; it is {task.status} until its worker does.",
                highlight=False,
                soft_wrap=True,
            )


@app.command("download")
def tasks_download(
    task_id: TaskIdArgument,
    out: OutOption = None,
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Download a completed task's video (it does not wait: see `tasks wait`)."""
    with reported_failures():
        target = check_out(out)
        with open_client(base_url, api_key) as client:
            task = client.tasks.get(task_id)
            if task.status in ("pending", "processing"):
                fail(
                    f"task {task.id} is {task.status} ({task.progress}%), not completed:"
                    f" `vidgate tasks wait {task.id}` first",
                    EXIT_TASK_FAILED,
                )
            report_finished(client, task, out=target, as_json=as_json, show=not as_json)


@app.command("wait")
def tasks_wait(
    task_id: TaskIdArgument,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Wait for a task to finish, with a progress bar (Ctrl-C stops waiting, not the task)."""
    with reported_failures(), open_client(base_url, api_key) as client:
        try:
            task = wait(client, client.tasks.get(task_id), timeout=timeout, show=not as_json)
        except Interrupted as interrupted:
            ask_cancel(client, interrupted.task, interactive=False, as_json=as_json)
        if as_json:
            print_json(task_data(task))
        if task.status != "completed":
            fail(f"task {task.id} failed: {error_text(task)}", EXIT_TASK_FAILED)
        if not as_json:
            console.print(f"{task.id} completed: {task.video_url}", highlight=False, soft_wrap=True)
