"""The client commands of ``vidgate`` (generate, tasks, credits): HTTP to a server via the SDK.

Their exit statuses are in ``cli_errors``; waiting, the cancel prompt and the download in
``cli_waiting``; what they print in ``cli_output``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from vidgate.cli_errors import (
    EXIT_INTERRUPTED,
    EXIT_TASK_FAILED,
    EXIT_USAGE,
    fail,
    reported_failures,
)
from vidgate.cli_output import (
    console,
    error_text,
    print_json,
    print_table,
    task_data,
    task_table,
    time_text,
)
from vidgate.cli_waiting import Interrupted, ask_cancel, report_finished, wait
from vidgate.client import Client, Task, VidgateError

ASPECT_RATIOS = ("16:9", "9:16", "auto")
MAX_IMAGES = 2

tasks_app = typer.Typer(help="Your tasks on a vidgate server.", no_args_is_help=True)

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


def _client(base_url: str | None, api_key: str | None) -> Client:
    if not api_key:
        fail("no API key: pass --api-key or set VIDGATE_API_KEY", EXIT_USAGE)
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        fail(f"--base-url {base_url}: must start with http:// or https://", EXIT_USAGE)
    try:
        return Client(api_key=api_key, base_url=base_url)
    except VidgateError as error:
        fail(error.message, EXIT_USAGE)


# --- input checks (before any request) ---------------------------------------------------------


def check_aspect(aspect: str | None) -> str | None:
    if aspect is not None and aspect not in ASPECT_RATIOS:
        fail(f"--aspect {aspect}: must be one of {', '.join(ASPECT_RATIOS)}", EXIT_USAGE)
    return aspect


def check_images(images: list[str]) -> list[str | Path]:
    """Each ``--image``: an http(s) URL as it is, or a readable local file, in order."""
    if len(images) > MAX_IMAGES:
        fail("at most two --image (the first and the last frame)", EXIT_USAGE)
    checked: list[str | Path] = []
    for image in images:
        if image.startswith(("http://", "https://")):
            checked.append(image)
            continue
        path = Path(image).expanduser()
        if not path.exists():
            fail(f"--image {image}: not found", EXIT_USAGE)
        if not path.is_file():
            fail(f"--image {image}: not a file", EXIT_USAGE)
        try:
            with path.open("rb"):
                pass
        except OSError as error:
            fail(f"--image {image}: {error.strerror or 'cannot be read'}", EXIT_USAGE)
        checked.append(path)
    return checked


def check_out(out: Path | None) -> Path | None:
    if out is None:
        return None
    out = out.expanduser()
    if not out.is_dir() and not out.parent.is_dir():
        fail(f"--out {out}: directory {out.parent} does not exist", EXIT_USAGE)
    return out


# --- commands -----------------------------------------------------------------------------------


def generate(
    prompt: Annotated[str, typer.Argument(help="What the video shows.")],
    image: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            help="A local image (uploaded) or an http(s) URL; once: the first frame,"
            " twice: the first and the last frame.",
            show_default=False,
        ),
    ] = None,
    aspect: Annotated[
        str | None,
        typer.Option("--aspect", help="16:9 (the server's default), 9:16 or auto."),
    ] = None,
    model: Annotated[str, typer.Option("--model", help="The model.")] = "veo3.1-fast",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where to save the video (default: <task id>.mp4).", show_default=False
        ),
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the task id at once; do not wait.")
    ] = False,
    callback_url: Annotated[
        str | None,
        typer.Option("--callback-url", help="An https URL the server POSTs the finished task to."),
    ] = None,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Create a video: upload the images, wait with a progress bar, download the MP4.

    Ctrl-C while waiting asks whether to cancel the task (only at a terminal).
    """
    with reported_failures():
        aspect_ratio = check_aspect(aspect)
        images = check_images(image or [])
        target = check_out(out)
        show = not as_json
        with _client(base_url, api_key) as client:
            try:
                urls = [
                    item if isinstance(item, str) else client.files.upload(item).url
                    for item in images
                ]
                task = client.videos.generate(
                    prompt,
                    model=model,
                    image_urls=urls or None,
                    aspect_ratio=aspect_ratio,
                    callback_url=callback_url,
                )
            except KeyboardInterrupt:
                fail(
                    "interrupted; a task may exist already: `vidgate tasks list`", EXIT_INTERRUPTED
                )
            if no_wait:
                if as_json:
                    print_json(task_data(task))
                else:
                    console.print(task.id, highlight=False, soft_wrap=True)
                return
            try:
                final = wait(client, task, timeout=timeout, show=show)
            except Interrupted as interrupted:
                interactive = not as_json and sys.stdin.isatty()
                ask_cancel(client, interrupted.task, interactive=interactive, as_json=as_json)
            report_finished(client, final, out=target, as_json=as_json, show=show)


@tasks_app.command("get")
def tasks_get(
    task_id: Annotated[str, typer.Argument(metavar="ID", help="The task id.")],
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Show one task."""
    with reported_failures(), _client(base_url, api_key) as client:
        task = client.tasks.get(task_id)
        if as_json:
            print_json(task_data(task))
        else:
            print_table(task_table(task))


@tasks_app.command("list")
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
    with reported_failures(), _client(base_url, api_key) as client:
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


@tasks_app.command("cancel")
def tasks_cancel(
    task_id: Annotated[str, typer.Argument(metavar="ID", help="The task id.")],
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Cancel a pending or processing task (its credits are released)."""
    with reported_failures(), _client(base_url, api_key) as client:
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


@tasks_app.command("download")
def tasks_download(
    task_id: Annotated[str, typer.Argument(metavar="ID", help="The task id.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where to save the video (default: <task id>.mp4).", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Download a completed task's video (it does not wait: see `tasks wait`)."""
    with reported_failures():
        target = check_out(out)
        with _client(base_url, api_key) as client:
            task = client.tasks.get(task_id)
            if task.status in ("pending", "processing"):
                fail(
                    f"task {task.id} is {task.status} ({task.progress}%), not completed:"
                    f" `vidgate tasks wait {task.id}` first",
                    EXIT_TASK_FAILED,
                )
            report_finished(client, task, out=target, as_json=as_json, show=not as_json)


@tasks_app.command("wait")
def tasks_wait(
    task_id: Annotated[str, typer.Argument(metavar="ID", help="The task id.")],
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Wait for a task to finish, with a progress bar (Ctrl-C stops waiting, not the task)."""
    with reported_failures(), _client(base_url, api_key) as client:
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


def credits(
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Show your remaining and used credits."""
    with reported_failures(), _client(base_url, api_key) as client:
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
